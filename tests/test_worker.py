"""The pages' worker, headless: bounded points, saving, stop, queue, idle timeout, divergence;
fine-tuning jobs queued, polled, stopped and abandoned like trainings."""

import threading
import time

import numpy as np
import pytest

from scratchnet.datasets import load_sample
from scratchnet.errors import ConfigError, DataError, ScratchnetError
from scratchnet.store import ModelStore
from scratchnet.training import PRESETS, Progress, TrainConfig
from scratchnet.ui import worker
from scratchnet.ui.worker import (
    MAX_POINTS,
    FinetuneJob,
    PointBuffer,
    TrainingJob,
    TrainingManager,
    choose_eval_every,
    choose_val_every,
    format_seconds,
)

TINY = TrainConfig(hidden=(16,), optimizer="adam", lr=3e-3, iterations=60, epochs=None, batch_size=64)
ENDLESS = TINY.replace(iterations=5_000_000)


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_point_buffer_stays_bounded_and_evenly_spaced():
    buf = PointBuffer(limit=100)
    for i in range(10_000):
        buf.add(i)
    assert 50 <= len(buf) <= 100
    items = buf.items
    assert items[0] == 0
    steps = np.diff(items)
    assert (steps == steps[0]).all() and steps[0] == buf.stride
    assert items[-1] >= 10_000 - buf.stride  # spans the whole stream


def test_point_buffer_keeps_everything_below_the_limit():
    buf = PointBuffer(limit=10)
    for i in range(10):
        buf.add(i)
    assert buf.items == list(range(10))
    with pytest.raises(ValueError):
        PointBuffer(limit=1)


def test_choose_eval_every_respects_explicit_and_bounds():
    assert choose_eval_every(TINY.replace(eval_every=7), 4000, 1000, 10_000) == 7
    fast = PRESETS["fast"]
    n_params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    every_mnist = choose_eval_every(fast, 59_000, 1000, n_params)
    # a record about every RECORD_INTERVAL seconds at the assumed speed
    step_seconds = 6 * 128 * n_params / worker.ASSUMED_FLOPS
    assert every_mnist * step_seconds == pytest.approx(worker.RECORD_INTERVAL, rel=0.2)
    # full batch: a step is already expensive, so records come every few steps
    nb = PRESETS["notebook"]
    every_nb = choose_eval_every(nb, 59_000, 1000, 784 * 10 + 10 + 10 * 10 + 10)
    assert 1 <= every_nb <= nb.iterations // worker.MIN_RECORDS
    # short runs still get MIN_RECORDS records
    short = TINY.replace(iterations=40)
    assert choose_eval_every(short, 4000, 1000, 10_000) <= 2


@pytest.mark.parametrize("layers", ["dense256,dense128", "conv16-5,maxpool2,conv32-5,maxpool2,dense128"])
def test_validation_stays_a_small_share_while_records_come_often(layers):
    from scratchnet.architecture import measure

    config = PRESETS["fast"].replace(layers=layers)
    macs = measure(layers).macs_per_row
    every = choose_eval_every(config, 59_000, 1000, macs)
    val_every = choose_val_every(config, 59_000, 1000, every)
    assert val_every & (val_every - 1) == 0  # a power of two: the chart's thinned points stay validated
    val_flops, step_flops = 2 * 1000 * macs, 6 * 128 * macs
    share = val_flops / (every * val_every * step_flops)
    assert share <= worker.VAL_OVERHEAD * 2**0.5 + 1e-9  # the nearest power of two
    assert share >= worker.VAL_OVERHEAD / 2**0.5 or val_every == 1  # not needlessly rare
    # the conv net's record comes within a second at the assumed speed, as the MLP's does
    assert every * step_flops / worker.ASSUMED_FLOPS <= 2 * worker.RECORD_INTERVAL
    assert choose_val_every(config, 59_000, 0, every) == 1  # nothing to validate on


def test_format_seconds():
    assert format_seconds(3.25) == "3.2 s"
    assert format_seconds(9.96) == "10 s" and format_seconds(42.4) == "42 s"
    assert format_seconds(59.6) == "1 min 00 s"  # never "60 s"
    assert format_seconds(75) == "1 min 15 s"
    assert format_seconds(7 * 60 + 43.4) == "7 min 43 s"
    assert format_seconds(3599.7) == "1 h 00 min"
    assert format_seconds(3 * 3600 + 120) == "3 h 02 min"
    assert format_seconds(None) == "?" and format_seconds(float("nan")) == "?"


def test_eta_ignores_the_slow_first_steps_and_follows_the_recent_rate():
    assert worker.eta_seconds([], 100) is None
    assert worker.eta_seconds([(10, 5.0)], 100) is None  # one record: no rate yet
    # the first 10 steps took 5 s (warming up), the next ones 0.1 s each
    records = [(10, 5.0), (20, 6.0), (30, 7.0)]
    assert worker.eta_seconds(records, 100) == pytest.approx(7.0)  # 70 steps x 0.1 s, not x 0.23 s
    assert worker.eta_seconds(records, 30) == 0.0
    # a long run: only the last ETA_RECORDS records count, so a machine that got busier shows
    job_records = [(i * 10, i * 1.0) for i in range(1, 200)]  # 0.1 s a step...
    job_records += [(job_records[-1][0] + i * 10, job_records[-1][1] + i * 3.0) for i in range(1, 40)]  # ...then 0.3
    recent = job_records[-worker.ETA_RECORDS:]
    assert worker.eta_seconds(recent, recent[-1][0] + 1000) == pytest.approx(300.0)


def running_job(sample) -> tuple[TrainingJob, int]:
    """A job marked running that never trains, fed records by hand; and its total steps."""
    job = TrainingJob(TINY, sample, save=False, idle_timeout=None)
    job._set(status="running")
    return job, job.snapshot().total_steps


def test_snapshot_eta_uses_records_after_the_first(sample):
    job, total = running_job(sample)
    job._record(Progress(step=10, total_steps=total, epoch=0.1, loss=1.0, train_accuracy=0.5,
                         val_accuracy=0.5, seconds=5.0))
    assert job.snapshot().eta_seconds is None
    assert "estimating time left" in job.snapshot().progress_text
    job._record(Progress(step=20, total_steps=total, epoch=0.2, loss=1.0, train_accuracy=0.5,
                         val_accuracy=0.5, seconds=5.5))
    assert job.snapshot().eta_seconds == pytest.approx(0.05 * (total - 20))
    assert f"{format_seconds(0.05 * (total - 20))} left" in job.snapshot().progress_text


def test_snapshot_keeps_the_latest_validation_between_validated_records(sample):
    job, total = running_job(sample)
    job._record(Progress(step=10, total_steps=total, epoch=0.1, loss=1.0, train_accuracy=0.5,
                         val_accuracy=0.61, seconds=1.0))
    job._record(Progress(step=20, total_steps=total, epoch=0.2, loss=0.9, train_accuracy=0.6,
                         val_accuracy=None, seconds=2.0))
    snap = job.snapshot()
    assert snap.val_accuracy == 0.61 and snap.step == 20 and snap.loss == 0.9
    assert [pt[4] for pt in snap.points] == [0.61, None]  # the chart sees which points validated


def test_job_trains_saves_activates_with_metadata(tmp_path, sample):
    store = ModelStore(tmp_path)
    job = TrainingJob(TINY, sample, store=store, preset="tiny", idle_timeout=None)
    snap = job.run()
    assert snap.status == "finished" and not snap.active
    assert snap.step == snap.total_steps == 60
    assert snap.points[-1][0] == 60 and len(snap.points) <= MAX_POINTS + 1
    name = snap.result["model_name"]
    assert store.active_name() == name and name.startswith("tiny")
    net, meta = store.load(name)
    assert meta["config"]["hidden"] == [16] and meta["config"]["eval_every"] == job.config.eval_every
    assert TrainConfig.from_dict(meta["config"]).iterations == 60
    assert {k: meta["dataset"][k] for k in ("name", "n_train", "n_val", "n_test")} == {
        "name": "sample", "n_train": 4000, "n_val": 1000, "n_test": 0}
    assert meta["source"] == "train-page" and meta["architecture"] == "dense16" and meta["layers"]
    assert meta["metrics"]["steps"] == 60 and meta["metrics"]["val_accuracy"] == snap.val_accuracy
    assert meta["metrics"]["test_accuracy"] is None  # the sample has no test set
    hist = meta["history"]
    assert hist[-1]["step"] == 60 and set(hist[0]) == set(worker.POINT_FIELDS)
    assert [h["step"] for h in hist] == sorted(h["step"] for h in hist)
    np.testing.assert_array_equal(net.predict(sample.X_val[:50]), job.net.predict(sample.X_val[:50]))
    assert snap.val_accuracy > 0.5  # it learned something


def test_test_accuracy_is_measured_when_there_is_a_test_set(tmp_path, sample):
    import dataclasses

    ds = dataclasses.replace(sample, X_test=sample.X_val[:300], y_test=sample.y_val[:300])
    snap = TrainingJob(TINY, ds, store=ModelStore(tmp_path), idle_timeout=None).run()
    assert snap.result["test_accuracy"] == pytest.approx(ModelStore(tmp_path).load_active()[0].accuracy(ds.X_test, ds.y_test))


def test_bad_config_fails_at_submit_not_in_the_thread(sample):
    with pytest.raises(ConfigError, match="batch size"):
        TrainingJob(TINY.replace(batch_size=10_000), sample)


def test_stop_keeps_and_saves_the_model(tmp_path, sample):
    manager = TrainingManager(max_running=1)
    store = ModelStore(tmp_path)
    job = manager.submit(TrainingJob(ENDLESS, sample, store=store, idle_timeout=None))
    wait_for(lambda: len(job.snapshot().points) >= 2)  # the time left needs two records
    assert job.snapshot().status == "running" and job.snapshot().eta_seconds is not None
    job.request_stop()
    assert job.done.wait(10)
    snap = job.snapshot()
    assert snap.status == "stopped" and 0 < snap.step < snap.total_steps
    assert store.active_name() == snap.result["model_name"]
    assert store.load(snap.result["model_name"])[1]["metrics"]["steps"] == snap.step


def test_admission_queue_runs_one_at_a_time_in_order(tmp_path, sample):
    manager = TrainingManager(max_running=1)
    first = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    wait_for(lambda: first.snapshot().status == "running")
    second = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    third = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    time.sleep(0.3)
    assert (second.snapshot().status, second.snapshot().queue_position) == ("queued", 1)
    assert (third.snapshot().status, third.snapshot().queue_position) == ("queued", 2)
    assert "number 2 in the queue" in third.snapshot().progress_text
    assert manager.active_jobs() == [first, second, third]
    first.request_stop()
    wait_for(lambda: second.snapshot().status == "running")
    assert third.snapshot().queue_position == 1
    third.request_stop()  # leaving the queue never starts it
    assert third.done.wait(5) and third.snapshot().status == "stopped" and third.snapshot().step == 0
    second.request_stop()
    assert second.done.wait(10)
    assert manager.active_jobs() == []


def test_two_slots_run_two_jobs(sample):
    manager = TrainingManager(max_running=2)
    jobs = [manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None)) for _ in range(2)]
    wait_for(lambda: all(j.snapshot().status == "running" for j in jobs))
    manager.stop_all()
    assert all(j.snapshot().status == "stopped" for j in jobs)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_unpolled_job_is_abandoned_saved_but_not_activated(tmp_path, sample):
    clock = FakeClock()
    store = ModelStore(tmp_path)
    manager = TrainingManager(max_running=1)
    job = manager.submit(TrainingJob(ENDLESS, sample, store=store, idle_timeout=60, clock=clock))
    wait_for(lambda: job.snapshot().step > 0)
    clock.now += 30
    job.poll()  # a poll within the timeout keeps it alive
    clock.now += 45
    time.sleep(0.1)
    assert job.snapshot().status == "running"
    clock.now += 61  # nobody polled for more than 60 s
    assert job.done.wait(10)
    snap = job.snapshot()
    assert snap.status == "abandoned" and "without anyone watching" in snap.message
    assert snap.result["model_name"] in store.names() and store.active_name() is None


def test_a_connected_viewer_keeps_an_unpolled_job_alive(sample):
    """A background tab polls rarely but is still connected; once it disconnects, the job stops."""
    clock = FakeClock()
    connected = {"tab": True}
    manager = TrainingManager(max_running=1)
    job = TrainingJob(ENDLESS, sample, save=False, idle_timeout=60, clock=clock)
    job.add_keepalive("tab", lambda: connected["tab"])
    job.add_keepalive("broken", lambda: 1 / 0)  # a check that fails counts as not watching
    manager.submit(job)
    wait_for(lambda: job.snapshot().step > 0)
    clock.now += 61
    step = job.snapshot().step
    wait_for(lambda: job.snapshot().step > step)  # still training: the tab is connected
    assert job.snapshot().status == "running" and job.watched()
    connected["tab"] = False
    clock.now += 61
    assert job.done.wait(10) and job.snapshot().status == "abandoned"


def test_queued_job_nobody_waits_for_leaves_the_queue(sample):
    clock = FakeClock()
    manager = TrainingManager(max_running=1)
    first = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    queued = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=60, clock=clock))
    wait_for(lambda: queued.snapshot().queue_position == 1)
    clock.now += 61
    assert queued.done.wait(5)
    assert queued.snapshot().status == "abandoned" and queued.snapshot().step == 0
    assert manager.active_jobs() == [first]
    first.request_stop()
    assert first.done.wait(10)


def test_divergence_is_not_saved_unless_kept(tmp_path, sample):
    store = ModelStore(tmp_path)
    config = PRESETS["notebook"].replace(lr=100.0, iterations=200)
    job = TrainingJob(config, sample, store=store, idle_timeout=None)
    snap = job.run()
    assert snap.status == "diverged" and "learning rate" in snap.message
    assert snap.result.get("model_name") is None and store.names() == []
    assert all(np.isfinite(p).all() for p in job.net.params())
    kept = job.keep()
    assert store.active_name() == kept["model_name"]
    assert store.load(kept["model_name"])[1]["status"] == "diverged"
    assert job.keep()["model_name"] == kept["model_name"]  # keeping twice does not duplicate
    assert len(store.names()) == 1


def test_keep_refuses_while_running_or_untrained(sample):
    manager = TrainingManager(max_running=1)
    job = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    wait_for(lambda: job.snapshot().status == "running")
    with pytest.raises(ScratchnetError, match="still running"):
        job.keep()
    job.request_stop()
    job.done.wait(10)
    untrained = TrainingJob(TINY, sample, save=False)
    untrained.cancel("stopped", "")
    with pytest.raises(ScratchnetError, match="Nothing was trained"):
        untrained.keep()


def test_failure_in_the_thread_is_reported(sample, monkeypatch):
    job = TrainingJob(TINY, sample, save=False, idle_timeout=None)

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
        yield  # pragma: no cover

    monkeypatch.setattr("scratchnet.training.train", boom)
    snap = job.run()
    assert snap.status == "failed" and "disk on fire" in snap.error and job.done.is_set()


def test_snapshot_is_cached_until_something_changes(sample):
    job = TrainingJob(TINY, sample, save=False, idle_timeout=None)
    a, b = job.snapshot(), job.snapshot()
    assert a is b
    job.run()
    c = job.snapshot()
    assert c is not a and c.status == "finished"


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_MAX_TRAININGS", "3")
    assert worker.max_trainings() == 3 and TrainingManager().max_running == 3
    monkeypatch.setenv("SCRATCHNET_MAX_TRAININGS", "zero")
    assert worker.max_trainings() == 1
    monkeypatch.setenv("SCRATCHNET_MAX_TRAININGS", "0")
    assert worker.max_trainings() == 1
    monkeypatch.delenv("SCRATCHNET_BLAS_THREADS", raising=False)
    assert worker.blas_threads() == 1
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "2")
    assert worker.blas_threads() == 2
    monkeypatch.delenv("SCRATCHNET_IDLE_TIMEOUT", raising=False)
    assert worker.idle_timeout() == worker.DEFAULT_IDLE_TIMEOUT == 60
    monkeypatch.setenv("SCRATCHNET_IDLE_TIMEOUT", "2.5")
    assert worker.idle_timeout() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("SCRATCHNET_IDLE_TIMEOUT", bad)
        assert worker.idle_timeout() == 60


def test_get_manager_is_a_process_wide_singleton():
    results = []
    threads = [threading.Thread(target=lambda: results.append(worker.get_manager())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m is results[0] for m in results) and results[0] is worker.get_manager()
    assert worker.existing_manager() is results[0]


def test_manager_survives_a_reimport_of_the_module():
    import importlib

    manager = worker.get_manager()
    fresh = importlib.reload(worker)  # what Streamlit's file watcher does in development
    assert fresh.get_manager() is manager


# --------------------------------------------------------------------------- fine-tuning jobs


@pytest.fixture(scope="module")
def base_model(sample):
    """A small trained MLP and its metadata, as the store would hold it."""
    job = TrainingJob(TINY.replace(iterations=120), sample, save=False, idle_timeout=None)
    assert job.run().status == "finished"
    return job.net, job.metadata()


@pytest.fixture
def drawings(sample):
    """Eight 'drawings' with their right labels (validation digits stand in for a visitor's)."""
    return sample.X_val[:8].copy(), sample.y_val[:8].astype(np.int64)


def base_store(tmp_path, base_model):
    store = ModelStore(tmp_path)
    store.save(*base_model, name="base")
    store.set_active("base")
    return store


def finetune_job(base_model, drawings, sample, **kw):
    net, meta = base_model
    X, y = drawings
    kw = {"base_name": "base", "base_meta": meta, "steps": 10, "folds": 2, "idle_timeout": None, **kw}
    return FinetuneJob(net, X, y, sample, **kw)


def test_finetune_job_saves_a_personal_model_that_is_not_made_active(tmp_path, base_model, drawings, sample):
    from scratchnet import personal

    store = base_store(tmp_path, base_model)
    arrays = [p.copy() for p in base_model[0].params()]
    job = finetune_job(base_model, drawings, sample, store=store)
    assert job.snapshot().total_steps == 30  # two cross-validation runs, then the final one
    snap = job.run()
    assert snap.status == "finished" and snap.kind == "fine-tuning" and snap.step == snap.total_steps == 30
    p = job.personal
    r = snap.result
    assert not p.refused and r["refused"] is False and snap.message == p.message
    assert r["model_name"] == personal.personal_name("base") and r["activated"] is False
    assert store.active_name() == "base"  # one visitor's model, not everyone's
    for key in ("drawings_before", "drawings_after", "val_before", "val_after", "n_drawings"):
        assert r[key] == getattr(p, key)
    assert r["fixed"] == p.fixed.tolist() and r["broken"] == p.broken.tolist()
    assert r["labels"] == drawings[1].tolist() and len(r["predicted_after"]) == 8
    net, meta = store.load(r["model_name"])
    assert meta["personal"]["base"] == "base" and meta["source"] == "personal" and meta["status"] == "finished"
    X, y = personal.decode_drawings(meta)
    np.testing.assert_allclose(X, drawings[0], atol=1 / 255)
    np.testing.assert_array_equal(net.predict(sample.X_val[:50]), p.net.predict(sample.X_val[:50]))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, base_model[0].params()))  # base untouched


def test_finetune_job_waits_in_the_same_queue_as_trainings(tmp_path, base_model, drawings, sample):
    store = base_store(tmp_path, base_model)
    manager = TrainingManager(max_running=1)
    training = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    wait_for(lambda: training.snapshot().status == "running")
    job = manager.submit(finetune_job(base_model, drawings, sample, store=store))
    time.sleep(0.3)
    assert (job.snapshot().status, job.snapshot().queue_position) == ("queued", 1)
    assert manager.active_jobs() == [training, job]
    training.request_stop()
    assert job.done.wait(30)
    assert job.snapshot().status == "finished" and job.snapshot().result["model_name"] in store.names()
    # and one stopped while it waits never starts
    blocker = manager.submit(TrainingJob(ENDLESS, sample, save=False, idle_timeout=None))
    queued = manager.submit(finetune_job(base_model, drawings, sample, store=store, name="never"))
    wait_for(lambda: queued.snapshot().queue_position == 1)
    queued.request_stop()
    assert queued.done.wait(5) and queued.snapshot().status == "stopped" and queued.snapshot().step == 0
    blocker.request_stop()
    assert blocker.done.wait(10) and "never" not in store.names()


def test_finetune_job_stopped_while_running_keeps_the_base(tmp_path, base_model, drawings, sample):
    store = base_store(tmp_path, base_model)
    manager = TrainingManager(max_running=1)
    job = manager.submit(finetune_job(base_model, drawings, sample, store=store, steps=1000, folds=5))
    wait_for(lambda: job.snapshot().step > 0)
    snap = job.snapshot()
    assert snap.status == "running" and snap.phase == "Cross-validating" and snap.total_steps == 6000
    assert "Iteration" in snap.progress_text
    job.request_stop()
    assert job.done.wait(10)
    snap = job.snapshot()
    assert snap.status == "stopped" and "was stopped" in snap.message and snap.phase == ""
    assert snap.result["refused"] is True and "model_name" not in snap.result
    assert store.names() == ["base"] and job.personal.net is base_model[0]


def test_unpolled_finetune_job_is_abandoned(tmp_path, base_model, drawings, sample):
    clock = FakeClock()
    store = base_store(tmp_path, base_model)
    manager = TrainingManager(max_running=1)
    job = manager.submit(finetune_job(base_model, drawings, sample, store=store, steps=1000, folds=5,
                                      idle_timeout=60, clock=clock))
    wait_for(lambda: job.snapshot().step > 0)
    job.poll()
    clock.now += 61  # nobody polled for more than 60 s
    assert job.done.wait(10)
    snap = job.snapshot()
    assert snap.status == "abandoned" and "without anyone watching" in snap.message
    assert store.names() == ["base"] and store.active_name() == "base"


def test_refused_finetune_job_saves_nothing_and_says_why(tmp_path, base_model, drawings, sample):
    store = base_store(tmp_path, base_model)
    snap = finetune_job(base_model, drawings, sample, store=store, lr=0.5, steps=40).run()
    assert snap.status == "finished" and snap.result["refused"] is True
    assert "refused" in snap.message and "base model was kept" in snap.message
    assert "model_name" not in snap.result and store.names() == ["base"]


def test_finetune_job_refuses_bad_drawings_at_submit(base_model, drawings, sample):
    X, y = drawings
    with pytest.raises(DataError, match="no drawings"):
        finetune_job(base_model, (X[:0], y[:0]), sample)
    with pytest.raises(DataError, match="digit from 0 to 9"):
        finetune_job(base_model, (X, np.full(len(y), 12)), sample)
    with pytest.raises(DataError, match="28x28"):
        finetune_job(base_model, (X[:, :100], y), sample)
    with pytest.raises(ConfigError, match="steps"):
        finetune_job(base_model, drawings, sample, steps=0)


def test_a_finetune_failure_in_the_thread_is_reported(base_model, drawings, sample, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("scratchnet.personal.finetune", boom)
    snap = finetune_job(base_model, drawings, sample, save=False).run()
    assert snap.status == "failed" and "disk on fire" in snap.error
    with pytest.raises(ScratchnetError, match="no model to keep"):
        finetune_job(base_model, drawings, sample).keep()

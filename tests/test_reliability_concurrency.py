"""Many sessions at once (issue #7): predictions keep coming while someone trains, admission
control queues further trainings, an abandoned training stops, and nobody's settings leak.

The crowd test drives the real ``streamlit run`` server (``streamlit_server`` fixture) with
lightweight websocket sessions from ``benchmarks/load_predict.py``: each is a real Streamlit
session whose every drawing is a real script run on the server, as from a browser. Nothing here
asserts on time: only that every answer arrives and is right, and that the training overlapped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from scratchnet.datasets import load_sample
from tools.devserver import running_app
from scratchnet.network import Network
from scratchnet.store import ModelStore
from scratchnet.training import TrainConfig
from scratchnet.ui import worker
from scratchnet.ui.common import JOB_KEY
from scratchnet.ui.worker import TrainingJob, TrainingManager

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 20
ROUNDS = 3


def _load_client():
    spec = importlib.util.spec_from_file_location("load_predict", ROOT / "benchmarks" / "load_predict.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


lp = _load_client()


def _wait(cond, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


@pytest.fixture
def restore_server_models(streamlit_server):
    """Leave the shared server's models as they were: a stopped training is saved (maybe activated)."""
    store = ModelStore(streamlit_server.models_dir)
    before, active = set(store.names()), store.active_name()
    yield store
    for name in set(store.names()) - before:
        store.delete(name)
    store.set_active(active)


def _stop_other_trainings(url: str) -> None:
    """The server is shared with other tests: stop any training they left running (anyone may)."""
    with lp.Session(url, "Train") as s:
        for _ in range(10):
            page = s.run()
            if not any("you are watching it" in a for a in page.alerts("info")):
                return
            s.run([s.state(page.widget_id("tr_stop"), trigger_value=True)])
            time.sleep(0.5)
    raise AssertionError("another training kept running on the shared server")


def test_twenty_sessions_predict_while_one_trains_and_a_second_training_queues(streamlit_server, restore_server_models):
    url = str(streamlit_server)
    _stop_other_trainings(url)
    trainer = lp.Trainer(url, epochs=1000)  # ~32,000 steps on the sample: runs until stopped
    second = None
    try:
        first_view = trainer.start()
        assert not first_view.exceptions(), first_view.exceptions()
        trainer.watch()
        assert _wait(trainer.running), trainer.texts

        values = {d: lp.canvas_value(lp.draw_digit(d)) for d in ("1", "7")}
        go = threading.Event()
        results = [None] * SESSIONS

        def one(i):
            results[i] = lp.drawer(url, ROUNDS, 1.0, start=go, values=values)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads)
        still_running = trainer.running()

        problems = [p for r in results for p in r.problems]
        assert problems == []
        assert sum(r.sent for r in results) == SESSIONS * ROUNDS
        assert sum(r.answered for r in results) == SESSIONS * ROUNDS
        assert sum(r.correct for r in results) == SESSIONS * ROUNDS
        assert still_running, f"the training ended before the predictions did: {trainer.texts}"

        # Admission control: a second person pressing Start waits in line, with their position.
        second = lp.Session(url, "Train")
        page = second.run()
        assert any("you are watching it" in a for a in page.alerts("info")), page.alerts()
        queued = second.run([second.state(page.widget_id("tr_start"), trigger_value=True)])
        assert any("Queued: number 1 in line" in a for a in queued.alerts("info")), queued.alerts()
        assert any("number 1 in the queue" in t for t in queued.progress_texts())
        # ...and leaving the queue never starts it.
        left = second.run([second.state(queued.widget_id("tr_stop"), trigger_value=True)])
        assert not left.exceptions(), left.exceptions()
        assert _wait(lambda: not any("Queued" in a for a in second.run().alerts()), 10)
        after = second.run()
        assert any("you are watching it" in a for a in after.alerts("info")), after.alerts()
        assert trainer.running()
    finally:
        if second is not None:
            second.close()
        stopped = trainer.stop()
    assert any(a.startswith("**Stopped**") for a in stopped.alerts()), stopped.alerts()


def test_shared_model_is_read_only_under_concurrent_prediction_and_training(trained_model_store):
    """20 threads predict with the one cached network while a training runs: same answers, same weights."""
    net, _ = trained_model_store.load("test-model")
    before = [p.copy() for p in net.params()]
    ds = load_sample()
    X = ds.X_val[:64]
    expected = [net.predict_proba(X[k::8]) for k in range(8)]  # BLAS results depend on the batch shape
    manager = TrainingManager(max_running=1)
    job = manager.submit(TrainingJob(TrainConfig(hidden=(64,), iterations=100_000, epochs=None), ds,
                                     save=False, idle_timeout=None))
    assert _wait(lambda: job.snapshot().step > 0)
    errors = []

    def predict_many():
        try:
            for i in range(25):
                rows = X[i % 8 :: 8]
                got = net.predict_proba(rows)
                if not np.array_equal(got, expected[i % 8]):
                    errors.append(f"different probabilities for rows {i % 8}::8")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=predict_many) for _ in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert job.snapshot().status == "running"
    job.request_stop()
    assert job.done.wait(10)
    assert errors == []
    assert all(np.array_equal(a, b) for a, b in zip(before, net.params()))


TRAIN_PAGE = str(ROOT / "pages" / "1_Train.py")
DRAW_PAGE = str(ROOT / "pages" / "2_Draw.py")


def _start_training(at: AppTest) -> TrainingJob:
    at.number_input(key="tr_epochs").set_value(1000.0).run()
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    job = worker.get_manager().get(at.session_state[JOB_KEY])
    assert job is not None
    return job


def test_a_training_whose_session_is_gone_is_stopped_and_not_activated(trained_model_store):
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    job = _start_training(at)
    assert _wait(lambda: job.snapshot().step > 0)
    # The tab is closed: nobody polls any more. The app's timeout is 60 s; a shorter one here
    # exercises the same path (checked between every two gradient steps).
    job.idle_timeout = 0.5
    del at
    assert job.done.wait(20), "an abandoned training kept running"
    snap = job.snapshot()
    assert snap.status == "abandoned" and "without anyone watching" in snap.message
    assert trained_model_store.active_name() == "test-model"  # the abandoned run did not take over


def test_each_session_keeps_its_own_settings(trained_model_store):
    other = Network((784, 16, 10), seed=3)
    trained_model_store.save(other, {"dataset": {"name": "sample"}}, name="other-model")
    trained_model_store.set_active("test-model")

    a = AppTest.from_file(DRAW_PAGE, default_timeout=60).run()
    a.selectbox(key="draw_model").set_value("other-model").run()
    assert not a.exception, a.exception
    ta = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    ta.number_input(key="tr_lr").set_value(0.05).run()
    ta.selectbox(key="tr_arch").set_value("custom").run()
    ta.text_input(key="tr_layers").set_value("64").run()

    b = AppTest.from_file(DRAW_PAGE, default_timeout=60).run()
    tb = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    assert b.selectbox(key="draw_model").value == "test-model"  # still the active one
    assert trained_model_store.active_name() == "test-model"  # A's choice did not change it
    assert tb.number_input(key="tr_lr").value != 0.05
    assert tb.selectbox(key="tr_arch").value != "custom" and ta.text_input(key="tr_layers").value == "64"
    assert a.selectbox(key="draw_model").value == "other-model"


def test_a_stopped_run_scoring_below_the_active_model_does_not_replace_it(trained_model_store):
    ds = load_sample()
    active_acc = trained_model_store.info("test-model").metadata["metrics"]["val_accuracy"]
    config = TrainConfig(hidden=(8,), optimizer="sgd", lr=1e-4, iterations=100_000, epochs=None, eval_every=5)
    job = TrainingJob(config, ds, store=trained_model_store, idle_timeout=None)
    manager = TrainingManager(max_running=1)
    manager.submit(job)
    assert _wait(lambda: job.snapshot().step >= 5)
    job.request_stop()
    assert job.done.wait(20)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.result["val_accuracy"] < active_acc
    assert snap.result["model_name"] in trained_model_store.names()  # kept, nothing lost...
    assert snap.result["activated"] is False  # ...but not put in front of everyone drawing
    assert trained_model_store.active_name() == "test-model"
    assert "'test-model'" in snap.result["not_activated"] and "stays active" in snap.result["not_activated"]

    # Scoring at least as well as the active model, a stopped run does take over.
    weak = Network((784, 8, 10), seed=0)
    trained_model_store.save(weak, {"metrics": {"val_accuracy": 0.05}}, name="weak")
    trained_model_store.set_active("weak")
    better = TrainingJob(config.replace(optimizer="adam", lr=3e-3), ds, store=trained_model_store, idle_timeout=None)
    manager.submit(better)
    assert _wait(lambda: (better.snapshot().val_accuracy or 0) > 0.3)
    better.request_stop()
    assert better.done.wait(20)
    assert better.snapshot().result["activated"] is True
    assert trained_model_store.active_name() == better.snapshot().result["model_name"]


def test_train_page_says_why_a_stopped_run_did_not_become_active(trained_model_store):
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    at.selectbox(key="tr_arch").set_value("custom").run()
    at.text_input(key="tr_layers").set_value("dense4").run()
    at.number_input(key="tr_lr").set_value(1e-6).run()
    job = _start_training(at)
    assert _wait(lambda: job.snapshot().step > 0)
    at.button(key="tr_stop").click().run()
    assert job.done.wait(20)
    at.run()
    assert not at.exception, at.exception
    text = " ".join(s.value for s in at.success)
    assert "stays active" in text and "test-model" in text, text
    assert trained_model_store.active_name() == "test-model"


_REPLACER = """
import sys
from scratchnet.network import Network
from scratchnet.store import ModelStore
s = ModelStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    s.save(Network((784, 16, 10), seed=1 + i % 2), {"i": i}, name="live", overwrite=True)
    s.set_active("live")
    other = s.save(Network((784, 16, 10), seed=1 + (i + 1) % 2), {"i": i}, name=f"new-{i}")
    s.set_active(other.name)
    if i >= 2:
        s.delete(f"new-{i - 2}")
print("done", flush=True)
"""


def test_a_replica_replacing_the_active_model_never_shows_another_a_broken_one(tmp_path):
    """Two app processes on one shared models folder: one keeps replacing and re-activating
    models, the other keeps listing and loading the active one, as the Draw page does."""
    import subprocess

    store = ModelStore(tmp_path)
    store.save(Network((784, 16, 10), seed=1), {}, name="live")
    allowed = [Network((784, 16, 10), seed=s).weights[0] for s in (1, 2)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _REPLACER, str(tmp_path), "40"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    loads = 0
    try:
        assert proc.stdout.readline().strip() == b"ready"
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        while proc.poll() is None or loads == 0:
            reader = ModelStore(tmp_path)  # a fresh store per rerun, like the pages
            infos = reader.list()
            assert reader.problems == [] and infos
            loaded = reader.load_active()
            assert loaded is not None and reader.problems == []
            net, _ = loaded
            assert any(np.array_equal(net.weights[0], w) for w in allowed)
            loads += 1
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and b"done" in out, err.decode()[-2000:]
    assert loads > 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_on_a_real_server_a_closed_tab_stops_its_training(tmp_path, _trained_model_dir):
    """Close the tab (the websocket) mid-training: the server stops the run within the idle
    timeout (here SCRATCHNET_IDLE_TIMEOUT=1 s), saves it, and leaves the active model alone."""
    import shutil

    models, data = tmp_path / "models", tmp_path / "data"
    shutil.copytree(_trained_model_dir, models)
    data.mkdir()
    with running_app(data, models, tmp_path / "server.log", env={"SCRATCHNET_IDLE_TIMEOUT": "1"}) as (url, _):
        trainer = lp.Trainer(url, epochs=1000)
        trainer.start()
        assert _wait(lambda: trainer.running() or bool(trainer.session.run().progress_texts())), trainer.texts
        trainer.session.close()  # the tab is gone: no more polls, the websocket is closed
        store = ModelStore(models)
        assert _wait(lambda: len(store.names()) == 2, timeout=60), "the orphaned training was never stopped"
        assert store.active_name() == "test-model"


def test_a_crafted_client_cannot_disturb_other_sessions(streamlit_server):
    """Malformed widget states (wrong types, NaN in an integer box, junk options, a huge canvas)
    may at worst fail that one session's rerun; everyone else keeps drawing and the server stays up."""
    url = str(streamlit_server)
    values = {d: lp.canvas_value(lp.draw_digit(d)) for d in ("1", "7")}
    with lp.Session(url, "Train") as evil, lp.Session(url, "Draw") as good:
        canvas = good.run().widget_id("draw_canvas_0")
        train = evil.run()
        junk = []
        for key in ("tr_model_pick", "tr_preset", "tr_optimizer", "tr_batch_size", "tr_seed", "tr_arch",
                    "tr_layers", "tr_augment"):
            wid = train.widget_id(key)
            if wid is not None:
                junk += [evil.state(wid, int_value=-5), evil.state(wid, double_value=float("nan")),
                         evil.state(wid, string_value="../../etc/passwd"), evil.state(wid, trigger_value=True)]
        for state in junk:
            evil.run([state])
        with lp.Session(url, "Draw") as evil_draw:
            bomb = lp.Session.state(evil_draw.run().widget_id("draw_canvas_0"), json_value="{" * 10000)
            evil_draw.run([bomb])
        for digit in ("1", "7"):
            r = good.run([good.state(canvas, json_value=values[digit])])
            assert r.metric("Prediction") == digit, (r.alerts(), r.exceptions())
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as resp:
        assert resp.status == 200

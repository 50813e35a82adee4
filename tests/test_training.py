"""The training loop, optimizers, presets and the divergence guard."""

import threading

import numpy as np
import pytest

from scratchnet import optimizers
from scratchnet.errors import ConfigError
from scratchnet.network import Network
from scratchnet.training import PRESETS, Progress, TrainConfig, build_network, fit, train


@pytest.fixture(scope="module")
def sample():
    """The bundled real MNIST sample, split 4,000 train / 1,000 validation."""
    from pathlib import Path

    d = np.load(Path(__file__).parent.parent / "scratchnet" / "data" / "mnist_sample.npz")
    X = d["images"].astype(np.float32) / 255
    y = d["labels"].astype(np.int64)
    p = np.random.default_rng(0).permutation(len(y))
    X, y = X[p], y[p]
    return X[1000:], y[1000:], X[:1000], y[:1000]


def test_notebook_preset_learns_on_the_sample(sample):
    X, y, Xv, yv = sample
    cfg = PRESETS["notebook"].replace(iterations=100)
    net, hist = fit(cfg, X, y, Xv, yv)
    assert net.sizes == (784, 10, 10)
    assert [h.step for h in hist] == list(range(10, 101, 10))  # every 10 iterations, like the notebook
    assert hist[-1].status == "finished"
    assert hist[-1].val_accuracy > 0.5  # chance is 0.1
    assert hist[-1].loss < hist[0].loss


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("momentum", 0.05), ("adam", 1e-3)])
def test_every_optimizer_learns(sample, optimizer, lr):
    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(32,), optimizer=optimizer, lr=lr, epochs=2, batch_size=64)
    net, hist = fit(cfg, X, y, Xv, yv)
    assert len(hist) == 2 and hist[-1].epoch == pytest.approx(2.0)
    assert hist[-1].val_accuracy > 0.8


def test_fast_preset_reaches_90_percent_on_the_sample(sample):
    X, y, Xv, yv = sample
    net, hist = fit(PRESETS["fast"], X, y, Xv, yv)
    assert hist[-1].val_accuracy >= 0.9


def test_training_is_reproducible_with_a_seed(sample):
    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(16,), epochs=1, batch_size=100, seed=7)
    a, _ = fit(cfg, X, y)
    b, _ = fit(cfg, X, y)
    c, _ = fit(cfg.replace(seed=8), X, y)
    assert np.array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_divergence_stops_cleanly_with_finite_weights(sample):
    X, y, Xv, yv = sample
    cfg = PRESETS["notebook"].replace(lr=100.0)
    net = build_network(cfg)
    hist = list(train(net, X, y, cfg, Xv, yv))
    last = hist[-1]
    assert last.status == "diverged"
    assert last.step < 500
    assert "learning rate" in last.message and "too large" in last.message
    assert all(np.isfinite(p).all() for p in net.params())


def test_stop_request_is_honoured_between_steps(sample):
    X, y, Xv, yv = sample
    stop = threading.Event()
    cfg = TrainConfig(hidden=(16,), iterations=1000, batch_size=32, eval_every=5)
    net = build_network(cfg)
    hist = []
    for p in train(net, X, y, cfg, Xv, yv, stop=stop):
        hist.append(p)
        if p.step == 20:
            stop.set()
    assert hist[-1].status == "stopped" and hist[-1].step == 20
    assert all(h.status == "running" for h in hist[:-1])


def test_progress_records_are_consistent(sample):
    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(16,), epochs=1.5, batch_size=500)  # 8 steps per epoch
    net, hist = fit(cfg, X, y, Xv, yv)
    assert [h.step for h in hist] == [8, 12]
    assert hist[-1].total_steps == 12 and hist[-1].epoch == pytest.approx(1.5)
    assert all(isinstance(h, Progress) and 0 <= h.train_accuracy <= 1 for h in hist)
    assert hist[0].seconds <= hist[1].seconds
    assert hist[-1].done and not hist[0].done
    assert hist[0].to_dict()["step"] == 8


def test_val_every_validates_the_first_every_kth_and_last_record(sample, monkeypatch):
    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(16,), iterations=23, epochs=None, batch_size=100, eval_every=2)  # 12 records
    calls = []
    real = Network.accuracy

    def spy(self, Xa, ya):
        calls.append(len(Xa))
        return real(self, Xa, ya)

    monkeypatch.setattr(Network, "accuracy", spy)
    hist = list(train(build_network(cfg), X, y, cfg, Xv, yv, val_every=4))
    validated = [i for i, h in enumerate(hist) if h.val_accuracy is not None]
    assert len(hist) == 12 and validated == [0, 4, 8, 11]  # the last always: runs end on a measured figure
    assert len(calls) == 4 and all(c == len(Xv) for c in calls)  # records without one cost no pass
    assert all(h.loss > 0 and 0 <= h.train_accuracy <= 1 for h in hist)  # every record has those
    # the same weights as validating every record: validation never touches training
    twin = list(train(build_network(cfg), X, y, cfg, Xv, yv))
    assert [h.loss for h in twin] == [h.loss for h in hist]
    assert twin[-1].val_accuracy == hist[-1].val_accuracy
    with pytest.raises(ConfigError, match="val_every"):
        next(train(build_network(cfg), X, y, cfg, Xv, yv, val_every=0))


def test_a_stopped_run_ends_on_a_validated_record(sample):
    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(16,), iterations=1000, epochs=None, batch_size=100, eval_every=2)
    stop = threading.Event()
    hist = []
    for p in train(build_network(cfg), X, y, cfg, Xv, yv, stop=stop, val_every=8):
        hist.append(p)
        if len(hist) == 3:
            stop.set()
    assert hist[-1].status == "stopped" and hist[-1].val_accuracy is not None
    assert [h.val_accuracy is not None for h in hist[:3]] == [True, False, False]


def test_full_batch_does_not_copy_the_data(sample, monkeypatch):
    X, y, _, _ = sample
    seen = []
    real = Network.forward_backward

    def spy(self, Xb, yb, rows=slice(None), scale=None):
        seen.append(Xb)
        return real(self, Xb, yb, rows, scale)

    monkeypatch.setattr(Network, "forward_backward", spy)
    fit(PRESETS["notebook"].replace(iterations=2), X, y)
    assert seen and all(np.shares_memory(s, X) for s in seen)  # chunks of X itself


def test_l2_shrinks_weights(sample):
    X, y, _, _ = sample
    cfg = TrainConfig(hidden=(16,), epochs=1, batch_size=100, optimizer="sgd", lr=0.1)
    plain, _ = fit(cfg, X, y)
    reg, _ = fit(cfg.replace(l2=0.05), X, y)
    assert np.abs(reg.weights[0]).sum() < np.abs(plain.weights[0]).sum()


def test_cosine_schedule_trains(sample):
    X, y, Xv, yv = sample
    net, hist = fit(TrainConfig(hidden=(32,), epochs=2, batch_size=64, lr_schedule="cosine"), X, y, Xv, yv)
    assert hist[-1].val_accuracy > 0.8


@pytest.mark.parametrize(
    "kw,fragment",
    [
        (dict(lr=0), "positive"),
        (dict(lr=-1), "positive"),
        (dict(lr=float("nan")), "positive"),
        (dict(lr=1e6), "cannot train"),
        (dict(iterations=0, epochs=None), "Iterations"),
        (dict(iterations=10**9, epochs=None), "Iterations"),
        (dict(iterations=5, epochs=5), "either"),
        (dict(batch_size=0), "batch size"),
        (dict(batch_size=10_000), "larger than the training set"),
        (dict(hidden=(0,)), "dense layer has 1 to 4096 units"),
        (dict(layers="conv16-4"), "kernel size must be odd"),
        (dict(layers="dense8,conv4-3"), "comes after a dense layer"),
        (dict(layers="conv256-9,conv256-9,dense10"), "parameters|working memory"),
        (dict(layers="conv64-5,dense64", batch_size=4000), "working memory"),
        (dict(augment="wobble"), "augmentation"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(activation="elu"), "activation"),
        (dict(l2=-1.0), "L2"),
        (dict(lr_schedule="step"), "schedule"),
    ],
)
def test_bad_settings_raise_config_error(kw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig(**kw).validate(n_train=4000)


def test_config_defaults_to_ten_epochs_unless_iterations_are_given():
    assert TrainConfig().epochs == 10
    assert TrainConfig(iterations=7).epochs is None
    assert TrainConfig(hidden=[4, 3]).hidden == (4, 3)


def test_config_round_trips_through_dict():
    cfg = PRESETS["fast"]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg


def test_presets_match_the_notebook_and_validate():
    nb = PRESETS["notebook"]
    assert (nb.hidden, nb.optimizer, nb.lr, nb.iterations, nb.batch_size, nb.init) == (
        (10,), "gd", 0.1, 500, None, "notebook")
    for cfg in PRESETS.values():
        cfg.validate(n_train=59_000)


def test_optimizer_updates():
    p = [np.array([1.0, 2.0], np.float32)]
    optimizers.make("gd", p, 0.5).step([np.array([1.0, -2.0], np.float32)])
    np.testing.assert_allclose(p[0], [0.5, 3.0])

    p = [np.zeros(1, np.float32)]
    opt = optimizers.make("momentum", p, 1.0, momentum=0.5)
    opt.step([np.ones(1, np.float32)])
    opt.step([np.ones(1, np.float32)])
    np.testing.assert_allclose(p[0], [-1 - 1.5])  # v1=-1, v2=0.5*-1-1=-1.5

    # Adam's first step moves every coordinate by lr * sign(g), whatever the gradient's scale
    p = [np.zeros(3, np.float32)]
    optimizers.make("adam", p, 0.01).step([np.array([1e-3, -5.0, 100.0], np.float32)])
    np.testing.assert_allclose(p[0], [-0.01, 0.01, -0.01], rtol=1e-3)
    with pytest.raises(ConfigError):
        optimizers.make("lbfgs", p, 0.1)


def test_adam_matches_reference_formula():
    rng = np.random.default_rng(0)
    p = [rng.normal(size=5).astype(np.float32)]
    ref = p[0].astype(np.float64).copy()
    m = np.zeros(5)
    v = np.zeros(5)
    opt = optimizers.make("adam", p, 0.01)
    for t in range(1, 6):
        g = rng.normal(size=5)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        opt.step([g.astype(np.float32)])
    np.testing.assert_allclose(p[0], ref, rtol=1e-5, atol=1e-6)


def test_seconds_count_training_not_the_time_the_caller_holds_a_record(sample):
    import time

    X, y, Xv, yv = sample
    cfg = TrainConfig(hidden=(16,), iterations=30, batch_size=64, eval_every=10)
    records = []
    for p in train(build_network(cfg), X, y, cfg, Xv, yv):
        records.append(p)
        time.sleep(0.3)  # a slow consumer, e.g. a page drawing charts
    assert records[-1].seconds < 0.3 + records[0].seconds


def test_notebook_preset_trains_exactly_the_notebooks_maths(sample):
    """Dense(10), ReLU, Dense(10) with full-batch GD against the notebook's column-layout code.

    The notebook's own bias gradient is ``1/m * np.sum(dZ)``, one number for every unit (a known
    slip); here, as in our network, each bias gets the sum of its own row of dZ.
    """
    X, y, _, _ = sample
    X, y = X[:600], y[:600]
    cfg = PRESETS["notebook"].replace(iterations=15)
    net = build_network(cfg)
    W1, b1, W2, b2 = (p.astype(np.float64).T.copy() if p.ndim == 2 else p.astype(np.float64)[:, None]
                      for p in net.params())
    list(train(net, X, y, cfg))
    Xc, m = X.T.astype(np.float64), len(y)
    one_hot = np.zeros((10, m))
    one_hot[y, np.arange(m)] = 1
    for _ in range(15):
        Z1 = W1.dot(Xc) + b1
        A1 = np.maximum(Z1, 0)
        Z2 = W2.dot(A1) + b2
        A2 = np.exp(Z2 - Z2.max(axis=0)) / np.exp(Z2 - Z2.max(axis=0)).sum(axis=0)
        dZ2 = A2 - one_hot
        dW2, db2 = 1 / m * dZ2.dot(A1.T), 1 / m * dZ2.sum(axis=1, keepdims=True)
        dZ1 = W2.T.dot(dZ2) * (Z1 > 0)
        dW1, db1 = 1 / m * dZ1.dot(Xc.T), 1 / m * dZ1.sum(axis=1, keepdims=True)
        W1, b1, W2, b2 = W1 - 0.1 * dW1, b1 - 0.1 * db1, W2 - 0.1 * dW2, b2 - 0.1 * db2
    for ours, theirs in zip(net.params(), (W1.T, b1[:, 0], W2.T, b2[:, 0])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5)


def test_a_small_conv_net_learns_on_the_sample(sample):
    X, y, Xv, yv = sample
    cfg = TrainConfig(layers="conv8-5,maxpool2,conv8-3,maxpool2,dense32", epochs=1, batch_size=64, seed=1)
    net, hist = fit(cfg, X, y, Xv, yv)
    assert net.architecture == "conv8-5,maxpool2,conv8-3,maxpool2,dense32"
    assert hist[-1].status == "finished" and hist[-1].val_accuracy > 0.65  # chance: 0.1


def test_conv_training_is_reproducible_and_every_batch_size_works(sample):
    X, y, _, _ = sample
    cfg = TrainConfig(layers="conv4-3,maxpool2,dense16", iterations=6, batch_size=50, seed=2, augment=True)
    a, _ = fit(cfg, X[:300], y[:300])
    b, _ = fit(cfg, X[:300], y[:300])
    assert all(np.array_equal(p, q) for p, q in zip(a.params(), b.params()))
    full, hist = fit(cfg.replace(batch_size=None, optimizer="gd", lr=0.1), X[:300], y[:300])
    assert hist[-1].status == "finished" and all(np.isfinite(p).all() for p in full.params())


def test_layers_and_hidden_describe_the_same_architecture():
    assert TrainConfig(hidden=(256, 128)).layers == "dense256,dense128"
    assert TrainConfig(layers="256, 128").hidden == (256, 128)
    conv = TrainConfig(layers="Conv16-5, maxpool2,DENSE64")
    assert conv.layers == "conv16-5,maxpool2,dense64" and conv.hidden is None
    assert conv.replace(hidden=(32,)).layers == "dense32"
    assert PRESETS["fast"].replace(layers="conv4-3,dense8").hidden is None
    old = TrainConfig.from_dict({"hidden": [64], "epochs": 2, "augment": True})  # an older record
    assert old.layers == "dense64" and old.augment == "affine"
    assert TrainConfig.from_dict(conv.to_dict()) == conv


def test_run_returns_the_net_and_one_metadata_document(sample):
    from scratchnet.datasets import Dataset
    from scratchnet.training import run

    X, y, Xv, yv = sample
    ds = Dataset("sample", X[:1000], y[:1000], Xv, yv, Xv[:200], yv[:200], "a test set", ["a note"])
    seen = []
    result = run(TrainConfig(hidden=(16,), iterations=30, batch_size=50, eval_every=10), ds,
                 on_progress=seen.append, preset="custom", source="test", extra={"extra": 1})
    meta = result.metadata
    assert [p.step for p in seen] == [10, 20, 30] and result.last is seen[-1] and result.learned
    assert meta["status"] == meta["metrics"]["status"] == "finished"
    assert meta["metrics"]["steps"] == 30 and meta["metrics"]["val_accuracy"] == seen[-1].val_accuracy
    assert meta["metrics"]["test_accuracy"] == pytest.approx(result.net.accuracy(Xv[:200], yv[:200]))
    assert [h["step"] for h in meta["history"]] == [10, 20, 30]
    assert meta["dataset"]["n_test"] == 200 and meta["notes"] == ["a note"]
    assert (meta["preset"], meta["source"], meta["extra"], meta["architecture"]) == ("custom", "test", 1, "dense16")
    assert TrainConfig.from_dict(meta["config"]).iterations == 30


def test_run_keeps_at_most_max_history_records(sample, monkeypatch):
    from scratchnet import training
    from scratchnet.datasets import Dataset

    monkeypatch.setattr(training, "MAX_HISTORY", 8)
    X, y, Xv, yv = sample
    ds = Dataset("sample", X[:500], y[:500], Xv[:100], yv[:100], None, None, "", [])
    result = training.run(TrainConfig(hidden=(8,), iterations=100, batch_size=20, eval_every=1), ds)
    steps = [h["step"] for h in result.metadata["history"]]
    assert len(steps) <= 9 and steps[-1] == 100 and steps == sorted(steps)
    assert result.metadata["metrics"]["test_accuracy"] is None


def test_a_diverged_run_with_nothing_accepted_has_learned_nothing(sample):
    from scratchnet.datasets import Dataset
    from scratchnet.training import run

    X, y, Xv, yv = sample
    ds = Dataset("sample", X, y, Xv, yv, None, None, "", [])
    result = run(PRESETS["notebook"].replace(lr=500.0, iterations=20), ds)
    assert result.status == "diverged" and not result.learned
    assert all(np.isfinite(p).all() for p in result.net.params())

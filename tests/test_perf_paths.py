"""The fast machinery (scratchnet.fast) gives the same numbers as the plain layers it drives."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from scratchnet import layers as L
from scratchnet import optimizers, training
from scratchnet.errors import DataError
from scratchnet.fast import gemm
from scratchnet.fast import threads as fast_threads
from scratchnet.fast.pair import PairRunner
from scratchnet.fast.step import Step
from scratchnet.network import Network
from scratchnet.training import TrainConfig, build_network, fit, train


@pytest.fixture(scope="module")
def runner():
    r = PairRunner()
    yield r
    r.close()


def _batch(n, n_in=784, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in), dtype=np.float32), rng.integers(0, k, n).astype(np.intp)


def _conv_net(seed=1, activation="relu"):
    layers = [L.Conv2D(4, 3), L.activation(activation), L.MaxPool2D(2), L.Conv2D(6, 3),
              L.activation(activation), L.MaxPool2D(2), L.Flatten(), L.Dense(16), L.activation(activation),
              L.Dense(10)]
    return Network(None, activation, layers=layers, seed=seed)


def _plain(net, X, y, l2=0.0):
    loss, grads = net.loss_and_grads(X, y, l2)
    return loss - net.l2_term(l2), net.grad_flat.copy()


def _step_grads(step, X, y, l2=0.0):
    if len(y) > step.capacity:
        loss, correct = step.loss_and_grads(X, y, l2)
    else:
        loss, correct = step.forward_backward(step.net.as_input(X), y)
        step.backward_update(l2)
    return loss, correct, step.grad_flat.copy()


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("capacity", [300, 128, 1000])  # exact, chunked (with a short last chunk), roomy
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_step_matches_the_plain_layers(activation, l2, capacity, kind, runner):
    net = Network((784, 64, 32, 10), activation=activation, seed=1) if kind == "mlp" else _conv_net(1, activation)
    X, y = _batch(300)
    loss, expected = _plain(net, X, y, l2)
    correct = int((net.predict(X) == y).sum())
    for r in (None, runner):
        got_loss, got_correct, got = _step_grads(Step(net, capacity, r), net.as_input(X), y, l2)
        assert got_loss == pytest.approx(loss, rel=1e-5)
        assert got_correct == correct
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_runner_splits_change_no_number(runner, kind, monkeypatch):
    monkeypatch.setattr("scratchnet.fast.step.PARALLEL_ROWS_MIN_MACS", 0)
    monkeypatch.setattr("scratchnet.fast.step.PARALLEL_PARAMS_MIN_MACS", 0)
    net = Network((784, 256, 128, 10), seed=2) if kind == "mlp" else _conv_net(2)
    X, y = _batch(256, seed=3)
    plain, paired = Step(net, 256), Step(net, 256, runner)
    a = _step_grads(plain, X, y)
    b = _step_grads(paired, X, y)
    assert paired._plan(0) is not None  # the parameters really are cut in two
    assert a[:2] == b[:2]
    assert np.array_equal(a[2], b[2])


def test_the_cut_between_two_halves_never_splits_a_bias_from_its_update(runner, monkeypatch):
    """Whatever the cut, each half updates exactly the parameters whose gradients it computed."""
    monkeypatch.setattr("scratchnet.fast.step.PARALLEL_PARAMS_MIN_MACS", 0)
    net = Network((784, 64, 10), seed=0)
    X, y = _batch(64, seed=2)
    step = Step(net, 64, runner)
    _step_grads(step, X, y)
    for cost in (0, 10, 100, 10_000, 10**6):
        plan = step._plan(cost)
        if plan is None:
            continue
        first, second, cut = plan
        offsets = net.param_offsets()
        for layer, lo, hi in first:
            i = net.param_layers.index(layer)
            assert offsets[2 * i] + layer.flat_row(hi) * layer.dW.shape[-1] <= cut
        for layer, lo, hi in second:
            i = net.param_layers.index(layer)
            assert offsets[2 * i] + layer.flat_row(lo) * layer.dW.shape[-1] >= cut


def test_gemm_slices_give_numpys_products():
    rng = np.random.default_rng(0)
    A = rng.random((1000, 784), dtype=np.float32)
    W = rng.random((784, 10), dtype=np.float32)
    D = rng.random((1000, 10), dtype=np.float32)
    assert 0 < gemm.slice_rows(784, 10) < 1000  # the sliced path is really taken
    out = np.empty((1000, 10), np.float32)
    np.testing.assert_allclose(gemm.matmul(A, W, out), A @ W, rtol=1e-5)
    g = np.empty((784, 10), np.float32)
    np.testing.assert_allclose(gemm.matmul_tn(A, D, g), A.T @ D, rtol=1e-4)
    s = np.empty(10, np.float32)
    np.testing.assert_allclose(gemm.column_sums(D, s), D.sum(axis=0), rtol=1e-5)
    assert gemm.slice_rows(784, 256) == 0 and gemm.slice_rows(25, 16) == 0


def test_skinny_first_layer_in_row_slices_matches_plain_maths(runner):
    """784 -> 10 (the notebook's) is fed to BLAS in small slices of rows; same gradients."""
    net = Network((784, 10, 10), init="notebook", seed=4)
    X, y = _batch(500, seed=9)
    loss, expected = _plain(net, X, y)
    got_loss, _, got = _step_grads(Step(net, 1024, runner), X, y)
    assert got_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("sizes", [(784, 256, 128, 10), (784, 96)])  # deep; first layer = output
@pytest.mark.parametrize("nonnegative", [False, True])  # blank found by max and min, or by max alone
def test_blank_columns_are_skipped_with_the_same_gradients(l2, sizes, nonnegative, runner):
    """Pixels blank in the whole batch are left out of the first layer; nothing else changes."""
    X, y = _batch(128, seed=11)
    X[:, np.random.default_rng(0).random(784) < 0.4] = 0  # ~40% of the pixels blank everywhere
    X[5, 3] = 1e-30  # a tiny value still makes its column count
    net = Network(sizes, seed=6)
    first = net.layers[0]
    first.skip_blank_inputs = False  # the reference: every column
    _, expected = _plain(net, X, y, l2)
    first.skip_blank_inputs = True
    net.release()
    first.nonnegative = nonnegative
    for r in (None, runner):
        _, _, got = _step_grads(Step(net, 128, r), X, y, l2)
        assert first.cols is not None and len(first.cols) < 600  # really compacted
        assert np.array_equal(first.cols, np.flatnonzero(X.any(axis=0)))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        blank = ~X.any(axis=0)
        assert not net.grads()[0][blank].any() or l2  # blank pixels: no data gradient


def test_a_column_whose_values_cancel_is_not_blank():
    X, y = _batch(64, seed=13)
    X[:, 100:] = 0
    X[:, 0] = 0.5
    X[32:, 0] = -0.5  # sums to zero, yet every value is non-zero
    net = Network((784, 64, 10), seed=0)
    _step_grads(Step(net, 64), X, y)
    assert np.array_equal(net.layers[0].cols, np.arange(100))


@pytest.mark.parametrize("shift, trusted", [(0.0, True), (-0.5, False)])
def test_train_finds_blank_columns_by_maxima_only_for_data_without_negative_values(shift, trusted, monkeypatch):
    seen = []
    real = Step.forward_backward

    def recording(self, X, y):
        seen.append(self.net.layers[0].nonnegative)
        return real(self, X, y)

    monkeypatch.setattr(Step, "forward_backward", recording)
    X, y = _batch(256, seed=14)
    X += np.float32(shift)
    config = TrainConfig(hidden=(16,), batch_size=64, epochs=1, augment=False)
    net = build_network(config)
    list(train(net, X, y, config))
    assert seen and set(seen) == {trusted}
    assert net.layers[0].nonnegative is False  # not left set for whoever predicts next


def test_compacted_update_matches_plain_adam(runner):
    X, y = _batch(128, seed=12)
    X[:, :300] = 0
    a, b = Network(seed=1), Network(seed=1)
    step = Step(a, 128, runner)
    opt_a = optimizers.make("adam", [a.flat_params()], 1e-3)
    opt_b = optimizers.make("adam", b.params(), 1e-3)
    for _ in range(3):
        step.forward_backward(X, y)
        opt_a.begin_step()
        step.backward_update(0.0, opt_a)
        _, grads = b.loss_and_grads(X, y)
        opt_b.step([g.copy() for g in grads])
    for p, q in zip(a.params(), b.params()):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["gd", "momentum", "adam"])
def test_flat_update_equals_per_array_update(name, runner):
    rng = np.random.default_rng(0)
    shapes = [(300, 200), (200,), (200, 10), (10,)]
    per = [rng.normal(size=s).astype(np.float32) for s in shapes]
    flat = np.concatenate([p.ravel() for p in per])
    flat_par = flat.copy()
    opt_per = optimizers.make(name, per, 0.01)
    opt_flat = optimizers.make(name, [flat], 0.01)
    opt_par = optimizers.make(name, [flat_par], 0.01)
    opt_par.runner = runner
    for _ in range(4):
        gs = [rng.normal(size=s).astype(np.float32) for s in shapes]
        gflat = np.concatenate([g.ravel() for g in gs])
        opt_per.step(gs)
        opt_flat.step([gflat.copy()])
        opt_par.step([gflat.copy()])
    np.testing.assert_array_equal(flat, np.concatenate([p.ravel() for p in per]))
    np.testing.assert_array_equal(flat, flat_par)  # halves on two threads: identical numbers


def test_pair_runner_runs_both_and_reports_errors(runner):
    hits = []
    runner.run(lambda: hits.append(1), lambda: hits.append(2))
    assert sorted(hits) == [1, 2]
    names = set()
    for _ in range(50):  # the second task runs on whichever thread claims it first
        runner.run(lambda: None, lambda: names.add(threading.current_thread().name))
    assert names <= {"MainThread", "scratchnet-pair"}

    def boom():
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        for _ in range(50):  # raised whichever thread ran it
            runner.run(lambda: None, boom)
    runner.run(lambda: hits.append(3), lambda: hits.append(4))  # still usable afterwards
    assert hits[-2:] in ([3, 4], [4, 3])


def test_pair_runner_waits_for_the_helper_when_the_first_task_fails(runner):
    started, finished = threading.Event(), []

    def slow():
        started.set()
        threading.Event().wait(0.2)
        finished.append("second")

    def fail():
        started.wait(5)  # the helper has claimed the second task
        raise ValueError("first")

    with pytest.raises(ValueError, match="first"):
        runner.run(fail, slow)
    assert finished == ["second"]  # not left running while the caller moves on
    hits = []
    runner.run(lambda: hits.append(1), lambda: hits.append(2))
    assert sorted(hits) == [1, 2]


@pytest.mark.parametrize("augment", [False, True])
def test_training_on_two_threads_gives_the_same_weights_as_on_one(augment):
    X, y = _batch(1500, seed=5)
    cfg = TrainConfig(hidden=(256, 128), epochs=1, batch_size=200, seed=3, augment=augment)
    with threadpool_limits(1):  # the caller's cap: one core, so no second thread of ours
        one, _ = fit(cfg, X, y)
    two, _ = fit(cfg, X, y)
    assert all(np.array_equal(a, b) for a, b in zip(one.params(), two.params()))


def test_a_callers_one_thread_limit_is_respected(monkeypatch):
    made = []
    real = training.PairRunner
    monkeypatch.setattr(training, "PairRunner", lambda: made.append(1) or real())
    X, y = _batch(200)
    cfg = TrainConfig(hidden=(8,), iterations=2, batch_size=100)
    with threadpool_limits(1):
        fit(cfg, X, y)
    assert made == []


def test_full_batch_reads_the_training_set_in_place(monkeypatch):
    seen = []
    real = Step.loss_and_grads

    def spy(self, Xb, yb, l2=0.0):
        seen.append(Xb)
        return real(self, Xb, yb, l2)

    monkeypatch.setattr(Step, "loss_and_grads", spy)
    X, y = _batch(5000)
    fit(training.PRESETS["notebook"].replace(iterations=2), X, y)
    assert len(seen) == 2 and all(np.shares_memory(s, X) and s.shape == X.shape for s in seen)


def test_full_batch_in_chunks_equals_one_pass(monkeypatch):
    X, y = _batch(1000, seed=7)
    cfg = training.PRESETS["notebook"].replace(iterations=3)
    a, _ = fit(cfg, X, y)
    monkeypatch.setattr(training, "FULL_BATCH_CHUNK", 128)  # 8 chunks in two lanes
    b, _ = fit(cfg, X, y)
    for p, q in zip(a.params(), b.params()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_full_batch_conv_net_is_chunked_by_memory(monkeypatch):
    X, y = _batch(300, seed=8)
    cfg = TrainConfig(layers="conv4-3,maxpool2,dense16", optimizer="gd", lr=0.1, iterations=2, batch_size=None)
    a, _ = fit(cfg, X, y)
    monkeypatch.setattr(training, "FULL_BATCH_BYTES", 1)  # 16-row chunks
    assert training.chunk_rows(10**6) == 16
    b, _ = fit(cfg, X, y)
    for p, q in zip(a.params(), b.params()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_train_refuses_labels_the_network_cannot_output():
    X, y = _batch(100)
    y[5] = 12
    net = build_network(TrainConfig(hidden=(8,), iterations=1, batch_size=10))
    with pytest.raises(DataError, match="0 to 9"):
        list(train(net, X, y, TrainConfig(hidden=(8,), iterations=1, batch_size=10)))


def test_stopping_early_ends_the_helper_thread():
    X, y = _batch(400)
    cfg = TrainConfig(hidden=(8,), iterations=100, batch_size=40, eval_every=1)
    before = {t for t in threading.enumerate() if t.name == "scratchnet-pair"}
    gen = train(build_network(cfg), X, y, cfg)
    next(gen)
    gen.close()
    for t in threading.enumerate():
        if t.name == "scratchnet-pair" and t not in before:
            t.join(timeout=5)
            assert not t.is_alive()


class _FakeBlas:
    def __init__(self):
        self.threads = []

    def set_num_threads(self, n):
        self.threads.append(n)


def _drive(choice, cost, steps, start=0):
    """Run ``steps`` fake training steps; each costs ``cost(step)[way]`` seconds on a fake clock."""
    now = [0.0 if not hasattr(choice, "_now") else choice._now]
    choice.clock = lambda: now[0]
    ways = []
    for step in range(start, start + steps):
        choice.tick(step)
        ways.append(choice._last)
        now[0] += cost(step)[choice._last]
    choice.end(start + steps)
    choice._now = now[0]
    return ways


def test_thread_choice_takes_the_faster_way_and_notices_when_that_changes():
    ws, runner, lib = type("Step", (), {"runner": None})(), object(), _FakeBlas()
    choice = fast_threads.ThreadChoice(ws, runner, [lib], 2)
    quiet = _drive(choice, lambda s: {"blas": 1.0, "pair": 1.25}, 3000)
    assert quiet[:16] == ["pair"] * 16 and quiet[16:32] == ["blas"] * 16  # both tried first
    assert quiet[1000:].count("blas") / 2000 > 0.95  # then mostly the faster one
    assert choice.wait == fast_threads.ThreadChoice.MAX_WAIT  # the loser is tried less and less often
    busy = _drive(choice, lambda s: {"blas": 3.0, "pair": 1.3}, 3000, start=3000)
    switched = busy.index("pair")
    assert switched <= 3 * 2  # blocks this much slower end after two steps; three in a row switch
    assert busy[200:].count("pair") / 2800 > 0.99  # tried again rarely, for two steps
    assert choice.wait >= fast_threads.ThreadChoice.LONG_WAIT
    spiky = _drive(choice, lambda s: {"blas": 1.0 if s % 160 else 40.0, "pair": 1.25}, 3000, start=6000)
    assert spiky[1000:].count("blas") / 2000 > 0.9  # a lone slow step does not flip the choice
    assert choice.summary()["switches"] >= 2 and 0 < choice.summary()["share_blas"] < 1
    # each way sets its BLAS threads and its runner
    choice.apply("pair")
    assert lib.threads[-1] == 1 and ws.runner is runner
    choice.apply("blas")
    assert lib.threads[-1] == 2 and ws.runner is None


def _drive_spinning(choice, blas_cost, pair_cost, spun_pair_cost, steps=3000):
    """Fake steps where our pair runs at ``spun_pair_cost`` for 0.1 s after OpenBLAS last ran."""
    now, blas_ended = [getattr(choice, "_fake_now", 0.0)], [getattr(choice, "_fake_blas", -1.0)]
    first = getattr(choice, "_fake_step", 0)
    choice.clock = lambda: now[0]
    for step in range(first, first + steps):
        choice.tick(step)
        if choice._last == "blas":
            now[0] += blas_cost
            blas_ended[0] = now[0]
        else:
            now[0] += spun_pair_cost if now[0] - blas_ended[0] < 0.1 else pair_cost
    choice._fake_now, choice._fake_blas, choice._fake_step = now[0], blas_ended[0], first + steps


def test_thread_choice_does_not_time_our_pair_while_openblas_threads_still_spin():
    choice = fast_threads.ThreadChoice(type("Step", (), {"runner": None})(), object(), [_FakeBlas()], 2)
    _drive_spinning(choice, blas_cost=0.003, pair_cost=0.0011, spun_pair_cost=0.004)
    assert choice.cost["pair"] == pytest.approx(0.0011)  # its real cost, not the spun one
    assert choice.summary()["share_blas"] < 0.05
    # a short try of our pair from OpenBLAS's threads pays the spin (what switching costs), so
    # OpenBLAS's threads stay chosen while quiet; yet when a busy core slows them, we switch
    choice = fast_threads.ThreadChoice(type("Step", (), {"runner": None})(), object(), [_FakeBlas()], 2)
    _drive_spinning(choice, blas_cost=0.001, pair_cost=0.0012, spun_pair_cost=0.004)
    assert choice.summary()["share_blas"] > 0.9
    choice.steps = {"pair": 0, "blas": 0}
    _drive_spinning(choice, blas_cost=0.0035, pair_cost=0.0013, spun_pair_cost=0.005)
    assert choice.summary()["share_blas"] < 0.05


def test_thread_choice_can_be_pinned_and_refuses_unknown_modes():
    ws, lib = type("Step", (), {"runner": None})(), _FakeBlas()
    pinned = fast_threads.ThreadChoice(ws, object(), [lib], 2, mode="pair")
    assert set(_drive(pinned, lambda s: {"blas": 1.0, "pair": 5.0}, 200)) == {"pair"}
    with pytest.raises(training.ConfigError, match="SCRATCHNET_THREADS"):
        fast_threads.ThreadChoice(ws, object(), [lib], 2, mode="fastest")


two_cores = pytest.mark.skipif(fast_threads.cores_allowed(fast_threads.blas_controller()) < 2,
                               reason="the choice of threads needs two cores")


@two_cores
def test_training_with_either_way_of_threading_gives_the_same_model(monkeypatch):
    X, y = _batch(2000, seed=15)
    config = TrainConfig(hidden=(64,), batch_size=128, epochs=3, seed=3)
    nets, stats = {}, {}
    for mode in ("pair", "pair", "blas", "auto"):
        monkeypatch.setenv("SCRATCHNET_THREADS", mode)
        net, s = build_network(config), {}
        list(train(net, X, y, config, stats=s))
        if mode in nets:
            assert np.array_equal(net.flat_params(), nets[mode].flat_params())  # pinned: bit for bit
        nets[mode], stats[mode] = net, s
    assert stats["pair"]["share_blas"] == 0 and stats["blas"]["share_blas"] == 1
    for mode in ("blas", "auto"):
        np.testing.assert_allclose(nets[mode].flat_params(), nets["pair"].flat_params(), atol=1e-4)


def test_small_networks_train_on_one_core_without_a_choice():
    X, y = _batch(500, seed=16)
    config = TrainConfig(hidden=(16,), batch_size=100, epochs=1)
    stats = {}
    list(train(build_network(config), X, y, config, stats=stats))
    assert stats == {}



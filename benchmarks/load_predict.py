"""Load test: many sessions drawing and predicting on a real ``streamlit run`` while one trains.

    python benchmarks/load_predict.py [--sessions 20] [--seconds 30] [--interval 1.0] [--no-training]

Target (issue #7, on a 2-core machine): 20 concurrent sessions each predicting once a second,
p95 server-side prediction time <= 50 ms while one training runs.

What it does, all on 127.0.0.1 with throw-away data/model directories:

1. trains a small model (784-256-128-10, a few hundred Adam steps on the bundled sample) into a
   fresh models directory, so every session reads the same shared, read-only model;
2. starts ``streamlit run app.py`` through this file's ``--serve`` mode, which wraps
   ``scratchnet.feedback.read_digit`` (preprocessing + forward pass: the prediction) with a timer
   that appends one line per call to ``SCRATCHNET_TIMING_LOG`` -- the app itself is unchanged;
3. one "trainer" session opens the Train page, sets 1,000 epochs and presses **Start training**,
   then keeps polling the live view the way the browser does (the fragment's auto-rerun);
4. ``--sessions`` "drawer" sessions open the Draw page and, once per ``--interval`` seconds, put a
   new drawing on the canvas (alternately a 1 and a 7), exactly the widget state the canvas sends
   when a stroke ends, and wait for the page's answer;
5. prints p50/p95/max of the server-side prediction time (only calls made while the training was
   running) and of the client-side round trip (full page rerun), how many predictions arrived and
   how many were right, then presses Stop.

The sessions speak Streamlit's own websocket protocol (protobuf ``BackMsg``/``ForwardMsg``, via the
``websockets`` package Streamlit depends on): far lighter than 20 browsers, so the client does not
steal the server's two cores, and every rerun is a real server-side script run. The
:class:`Session` class here is also used by ``tests/test_reliability_concurrency.py``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.devserver import running_app  # noqa: E402
from tools.testkit import draw_digit  # noqa: E402,F401  (also used by tests through this module)

TIMING_ENV = "SCRATCHNET_TIMING_LOG"

# --------------------------------------------------------------------------- drawings




def canvas_value(image) -> str:
    """The canvas widget's JSON state for ``image``: what streamlit-drawable-canvas sends."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return json.dumps({"drawing": {"raw": {"objects": []}, "data": url}, "backgroundFit": None})


# --------------------------------------------------------------------------- protocol client


@dataclass
class Run:
    """What one script run sent back: the elements, by kind, plus timing."""

    seconds: float
    elements: list = field(default_factory=list)  # (kind, proto) in arrival order
    fragment: tuple[str, float] | None = None  # (fragment_id, interval) asked for by run_every
    fragments: list = field(default_factory=list)  # every (fragment_id, interval), in page order

    def of(self, kind: str) -> list:
        return [p for k, p in self.elements if k == kind]

    def widget_id(self, key: str) -> str | None:
        """The id of the widget created with ``key=key`` (ids end in ``-<key>``)."""
        for _, p in self.elements:
            wid = getattr(p, "id", "")
            if isinstance(wid, str) and wid.endswith("-" + key):
                return wid
        return None

    def metric(self, label: str) -> str | None:
        found = [m.body for m in self.of("metric") if m.label == label]
        return found[-1] if found else None

    def alerts(self, fmt: str | None = None) -> list[str]:
        """Alert texts; ``fmt`` one of "error", "warning", "info", "success"."""
        from streamlit.proto.Alert_pb2 import Alert

        want = None if fmt is None else Alert.Format.Value(fmt.upper())
        return [a.body for a in self.of("alert") if want is None or a.format == want]

    def progress_texts(self) -> list[str]:
        return [p.text for p in self.of("progress")]

    def exceptions(self) -> list[str]:
        return [f"{e.type}: {e.message}" for e in self.of("exception")]


class Session:
    """One browser tab, over Streamlit's websocket; methods are blocking and single-threaded."""

    def __init__(self, base_url: str, page: str = "", timeout: float = 60.0, query_string: str = ""):
        from websockets.sync.client import connect

        ws_url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.page = page
        self.query_string = query_string  # what the address bar holds after "?", e.g. "room=K7QX2M"
        self.timeout = timeout
        self.page_hash = ""
        # __enter__ opens the connection (``with`` is not used: the session outlives this call).
        self._ws = connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout).__enter__()

    def close(self) -> None:
        self._ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def state(widget_id: str, **value):
        """A WidgetState, e.g. ``state(id, trigger_value=True)`` or ``state(id, json_value=...)``."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        ws = WidgetState(id=widget_id)
        for name, v in value.items():
            setattr(ws, name, v)
        return ws

    def run(self, widgets=(), *, fragment_id: str | None = None) -> Run:
        """Send a rerun with these widget states and collect everything until the run finishes."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.page_name = self.page
        if self.page_hash:
            cs.page_script_hash = self.page_hash
        if self.query_string:
            cs.query_string = self.query_string
        cs.widget_states.SetInParent()
        cs.widget_states.widgets.extend(widgets)
        if fragment_id:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = True
        start = time.perf_counter()
        self._ws.send(msg.SerializeToString())
        run = Run(0.0)
        deadline = time.monotonic() + self.timeout
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            kind = fm.WhichOneof("type")
            if kind == "navigation" and fm.navigation.page_script_hash:
                self.page_hash = fm.navigation.page_script_hash
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                ek = el.WhichOneof("type")
                run.elements.append((ek, getattr(el, ek)))
            elif kind == "auto_rerun":
                run.fragment = (fm.auto_rerun.fragment_id, fm.auto_rerun.interval)
                run.fragments.append(run.fragment)
            elif kind == "script_finished" and fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                run.seconds = time.perf_counter() - start
                return run


# --------------------------------------------------------------------------- roles


@dataclass
class DrawerResult:
    sent: int = 0
    answered: int = 0
    correct: int = 0
    round_trips: list = field(default_factory=list)  # seconds, per prediction
    problems: list = field(default_factory=list)


def drawer(base_url: str, rounds: int, interval: float, start: threading.Event | None = None,
           digits=("1", "7"), values: dict | None = None, offset: float = 0.0) -> DrawerResult:
    """One Draw-page session: a new drawing every ``interval`` s, ``rounds`` times; checks answers.

    ``offset`` seconds after ``start``, so sessions spread over the interval like real people
    rather than all drawing in the same instant (offset 0 for all is the worst case).
    """
    values = values or {d: canvas_value(draw_digit(d)) for d in digits}
    res = DrawerResult()
    try:
        with Session(base_url, "Draw") as s:
            first = s.run()
            canvas = first.widget_id("draw_canvas_0")
            if canvas is None:
                res.problems.append(f"no canvas on the Draw page: {first.alerts()} {first.exceptions()}")
                return res
            if start is not None:
                start.wait()
            time.sleep(offset)
            next_at = time.monotonic()
            for i in range(rounds):
                digit = digits[i % len(digits)]
                res.sent += 1
                r = s.run([Session.state(canvas, json_value=values[digit])])
                got = r.metric("Prediction")
                if r.exceptions():
                    res.problems.append(f"round {i}: exception {r.exceptions()}")
                if got is not None:
                    res.answered += 1
                    res.round_trips.append(r.seconds)
                    res.correct += got == digit
                    if got != digit:
                        res.problems.append(f"round {i}: drew {digit}, page said {got}")
                else:
                    res.problems.append(f"round {i}: no prediction ({r.alerts()})")
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
    except Exception as err:  # a dropped connection is a finding, not a crash of the whole run
        res.problems.append(f"{type(err).__name__}: {err}")
    return res


class Trainer:
    """A Train-page session that starts a long training and keeps watching it like a browser."""

    @classmethod
    def running_on(cls, url: str, timeout: float = 30.0) -> "Trainer":
        """Start a training on the server at ``url``, watch it, and return once it is running."""
        trainer = cls(url)
        trainer.start()
        trainer.watch()
        deadline = time.monotonic() + timeout
        while not trainer.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not trainer.running():
            raise RuntimeError(f"the training did not start: {trainer.texts}")
        print("training running:", trainer.texts[:1], flush=True)
        return trainer

    def __init__(self, base_url: str, epochs: float = 1000.0):
        self.session = Session(base_url, "Train")
        self.epochs = epochs
        self.last: Run | None = None
        self.texts: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def start(self) -> Run:
        """Set the epochs, press Start; returns the run that shows the training."""
        s = self.session
        page = s.run()
        epochs_id, start_id = page.widget_id("tr_epochs"), page.widget_id("tr_start")
        if epochs_id is None or start_id is None:
            raise RuntimeError(f"Train page without epochs/start widgets: {page.alerts()} {page.exceptions()}")
        s.run([Session.state(epochs_id, double_value=float(self.epochs))])
        run = s.run([Session.state(start_id, trigger_value=True)])
        self.last = run
        self.texts = run.progress_texts() + run.alerts()
        return run

    def watch(self) -> None:
        """Poll the live view in a thread (the fragment's ``run_every``), as an open tab does."""

        def loop():
            while not self._stop.is_set():
                with self.lock:
                    frag = self.last.fragment if self.last is not None else None
                    if frag is None:
                        r = self.session.run()
                    else:
                        r = self.session.run(fragment_id=frag[0])
                        if r.fragment is None:
                            r.fragment = frag
                    self.last = r
                    self.texts = r.progress_texts() + r.alerts()
                self._stop.wait(frag[1] if frag else 0.5)

        self._thread = threading.Thread(target=loop, name="trainer-watch", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        return any(t.startswith("Iteration") and "left" in t for t in self.texts)

    def stop(self) -> Run:
        """Stop watching, press Stop, and return the page after it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        s = self.session
        with self.lock:
            page = s.run()
            stop_id = page.widget_id("tr_stop")
            run = s.run([Session.state(stop_id, trigger_value=True)]) if stop_id else page
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any("Stopped" in a for a in run.alerts()):
                time.sleep(0.3)
                run = s.run()
        self.session.close()
        return run


def watcher(base_url: str, seconds: float, start: threading.Event | None = None) -> int:
    """A Train-page session that only watches someone else's training (the live view's polling)."""
    polls = 0
    with Session(base_url, "Train") as s:
        run = s.run()
        if start is not None:
            start.wait()
        end = time.monotonic() + seconds
        frag = run.fragment
        while time.monotonic() < end:
            if frag is None:
                run = s.run()
                frag = run.fragment
                time.sleep(0.5)
                continue
            s.run(fragment_id=frag[0])
            polls += 1
            time.sleep(frag[1])
    return polls


# --------------------------------------------------------------------------- server


def serve(argv: list[str]) -> None:
    """``--serve PORT``: streamlit run app.py with read_digit timed into SCRATCHNET_TIMING_LOG."""
    import scratchnet.feedback as feedback

    real = feedback.read_digit
    log_path = os.environ.get(TIMING_ENV)
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1) if log_path else None

    def timed_read_digit(net, image):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return real(net, image)
        finally:
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            if log is not None:
                with lock:
                    log.write(f"{time.time():.3f} {dt * 1000:.3f} {dc * 1000:.3f}\n")

    feedback.read_digit = timed_read_digit
    from streamlit.web import cli

    port = argv[0]
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                "--server.port", port, "--server.address", "127.0.0.1",
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    os.chdir(ROOT)
    cli.main()


def train_model(models_dir: Path) -> None:
    from scratchnet.datasets import load_sample
    from scratchnet.store import ModelStore
    from scratchnet.training import PRESETS
    from scratchnet.ui.worker import TrainingJob

    config = PRESETS["fast"].replace(epochs=None, iterations=400, augment=False)
    job = TrainingJob(config, load_sample(), store=ModelStore(models_dir), name="bench-model",
                      idle_timeout=None)
    snap = job.run()
    if snap.status != "finished":
        raise RuntimeError(f"training the benchmark model ended {snap.status}: {snap.error or snap.message}")


def server_dirs(prefix: str, what: str) -> tuple[Path, Path, Path, Path]:
    """A fresh temp folder with the server's data and models folders, a model trained into it.

    Returns (temp folder, data dir, models dir, the server's prediction timing log).
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    data_dir, models_dir = tmp / "data", tmp / "models"
    data_dir.mkdir()
    models_dir.mkdir()
    print(f"training {what} into {models_dir} ...", flush=True)
    train_model(models_dir)
    return tmp, data_dir, models_dir, tmp / "predict_ms.log"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long each session keeps drawing")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a session's drawings")
    ap.add_argument("--no-training", action="store_true", help="measure without a training running")
    ap.add_argument("--lockstep", action="store_true",
                    help="all sessions draw at the same instant (worst case) instead of spread over the interval")
    ap.add_argument("--watchers", type=int, default=0,
                    help="extra sessions that sit on the Train page watching the training's live view")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (server log)")
    ap.add_argument("--server-nice", type=int, default=0,
                    help="run the server at this niceness (e.g. -10, needs root) to approximate a machine "
                         "dedicated to the demo when other jobs share it")
    args = ap.parse_args()

    tmp, data_dir, models_dir, timing = server_dirs("scratchnet-load-", "the shared model")
    nice = args.server_nice
    trainer = None
    with running_app(data_dir, models_dir, tmp / "server.log", env={TIMING_ENV: str(timing)},
                     command=lambda port: [sys.executable, __file__, "--serve", str(port)],
                     preexec_fn=(lambda: os.nice(nice)) if nice else None) as (url, proc):
        try:
            if not args.no_training:
                trainer = Trainer.running_on(url)
            rounds = max(1, int(args.seconds / args.interval))
            values = {d: canvas_value(draw_digit(d)) for d in ("1", "7")}
            go = threading.Event()
            results: list[DrawerResult] = [None] * args.sessions  # type: ignore[list-item]

            def one(i):
                spread = 0.0 if args.lockstep else i * args.interval / args.sessions
                results[i] = drawer(url, rounds, args.interval, values=values, start=go, offset=spread)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.sessions)]
            polls: list[int] = []
            threads += [threading.Thread(target=lambda: polls.append(watcher(url, rounds * args.interval, go)))
                        for _ in range(args.watchers)]
            for t in threads:
                t.start()
            time.sleep(2.0)  # every session has opened the page
            t0 = time.time()
            cpu0 = cpu_seconds(proc.pid)
            go.set()
            for t in threads:
                t.join()
            t1 = time.time()
            cpu1 = cpu_seconds(proc.pid)
            load = os.getloadavg()[0]
            still_training = trainer.running() if trainer is not None else None
            if trainer is not None:
                final = trainer.stop()
                print("after Stop:", [a for a in final.alerts() if "Stopped" in a][:1])
                trainer = None
        finally:
            if trainer is not None:
                trainer.stop()

    server_ms, server_cpu_ms = [], []
    for line in timing.read_text().splitlines():
        ts, ms, cpu = line.split()
        if t0 <= float(ts) <= t1 + 1:
            server_ms.append(float(ms))
            server_cpu_ms.append(float(cpu))
    rtt_ms = [x * 1000 for r in results for x in r.round_trips]
    sent = sum(r.sent for r in results)
    answered = sum(r.answered for r in results)
    correct = sum(r.correct for r in results)
    problems = [p for r in results for p in r.problems]
    print(f"\n{args.sessions} sessions x {rounds} drawings, one every {args.interval:g} s, "
          f"{'while one training ran' if not args.no_training else 'no training'} "
          f"(still running at the end: {still_training}); {os.cpu_count()} CPUs")
    print(f"predictions: {sent} sent, {answered} answered, {correct} correct")
    if args.watchers:
        print(f"{args.watchers} more sessions watched the live training view: {sum(polls)} polls")
    print(f"server-side prediction (read_digit: preprocess + forward), {len(server_ms)} calls: "
          f"p50 {percentile(server_ms, 50):.1f} ms, p95 {percentile(server_ms, 95):.1f} ms, "
          f"max {max(server_ms, default=float('nan')):.1f} ms")
    print(f"  of which CPU time of that thread: p50 {percentile(server_cpu_ms, 50):.1f} ms, "
          f"p95 {percentile(server_cpu_ms, 95):.1f} ms (the rest is waiting for the GIL or a core)")
    print(f"client round trip (whole Draw page rerun), {len(rtt_ms)} runs: "
          f"p50 {percentile(rtt_ms, 50):.1f} ms, p95 {percentile(rtt_ms, 95):.1f} ms, "
          f"max {max(rtt_ms, default=float('nan')):.1f} ms")
    print(f"server process CPU: {cpu1 - cpu0:.1f} s in {t1 - t0:.1f} s wall "
          f"({(cpu1 - cpu0) / max(1, answered) * 1000:.0f} ms of CPU per prediction, training included); "
          f"machine load average {load:.1f}; server niceness {args.server_nice}")
    if rtt_ms:
        print(f"achieved rate: {answered / max(1e-9, t1 - t0):.1f} predictions/s "
              f"(mean {statistics.mean(rtt_ms):.1f} ms per rerun)")
    for p in problems[:10]:
        print("problem:", p)
    if args.keep:
        print("kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if answered == sent and correct == sent else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        sys.exit(main())

"""Load benchmark of a live room (issue #13): 40 phones drawing, one wall, one training, one server.

    python benchmarks/load_room.py [--phones 40] [--interval 5] [--seconds 60] [--no-training]

Targets (on this 2-core machine): every drawing on the wall within 2 s of its answer (p95);
server-side prediction p95 <= 50 ms; nothing lost (drawings stored = drawings sent).

Everything runs on 127.0.0.1 with throw-away data and model directories, through the client of
``benchmarks/load_predict.py`` (Streamlit's own websocket protocol: every rerun is a real script
run on the server, and the client costs far less CPU than 40 browsers would):

1. a small model is trained into a fresh models directory (the room's model);
2. ``streamlit run app.py`` starts through load_predict's ``--serve`` mode, which times
   ``feedback.read_digit`` (preprocessing + forward pass: the prediction) into a log;
3. one Train-page session starts a long training and keeps watching it (its live fragment);
4. the wall: a Live-page session presses "Open a room", then refreshes its wall fragment at the
   interval the page asks for, as the browser does, and notes when each drawing first appears
   and when it first appears answered (a tick or a cross);
5. ``--phones`` Draw-page sessions join with ``?room=CODE`` and, every ``--interval`` seconds
   (spread over the interval), draw a 1 or a 7 with a nickname unique to the drawing
   (``p07-3``), then answer "Yes": half of them straight away (0.6 s, before the drawing
   settles), half after 2.5 s, by which time the page's settle fragment (ticked here like a
   browser's timer) has already put it on the wall unanswered;
6. it prints the wall's delays (answer -> answered on the wall; drawing -> on the wall), the
   server-side prediction times, the phones' page round trips, and drawings sent vs stored.

A room takes at most 500 drawings (``rooms.MAX_PER_ROOM``): phones x rounds must stay below it.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load_predict import (  # noqa: E402
    TIMING_ENV,
    Session,
    Trainer,
    canvas_value,
    cpu_seconds,
    percentile,
    server_dirs,
)
from tools.devserver import running_app  # noqa: E402
from tools.testkit import draw_digit  # noqa: E402

NICK = re.compile(r"p\d\d-\d+")


def texts(run) -> list[str]:
    return [t.body for t in run.of("text")]


def widget(run, key: str, prefix: bool = False) -> str | None:
    """The id of the widget with ``key`` (or whose key starts with it, ``prefix=True``)."""
    for _, p in run.elements:
        wid = getattr(p, "id", "")
        if isinstance(wid, str) and (re.search(rf"-{re.escape(key)}[^-]*$", wid) if prefix else wid.endswith("-" + key)):
            return wid
    return None


# --------------------------------------------------------------------------- the wall


class Wall:
    """The presenter's Live page: opens the room, then refreshes the wall like a browser tab."""

    def __init__(self, url: str, data_dir: Path):
        self.session = Session(url, "Live")
        self.data_dir = data_dir
        self.code = ""
        self.fragment: tuple[str, float] | None = None
        self.first_seen: dict[str, float] = {}  # nickname -> when the wall first showed it
        self.answered_seen: dict[str, float] = {}  # nickname -> when it first showed a tick or cross
        self.refresh_seconds: list[float] = []
        self.drawings_metric = "0"
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> str:
        s = self.session
        first = s.run()
        button = widget(first, "live_open")
        if button is None:
            raise RuntimeError(f"no 'Open a room' on the Live page: {first.alerts()} {first.exceptions()}")
        run = s.run([Session.state(button, trigger_value=True)])
        if run.metric("Drawings") is None:
            raise RuntimeError(f"the wall did not appear: {run.alerts()} {run.exceptions()}")
        (self.code,) = [p.name for p in (self.data_dir / "rooms").iterdir() if p.is_dir()]
        self.fragment = run.fragments[0]  # the wall; the teaching section's fragment comes after it
        self._see(run)
        return self.code

    def _see(self, run) -> None:
        now = time.time()
        shown = texts(run)
        for i, t in enumerate(shown):
            if NICK.fullmatch(t) and i > 0:
                self.first_seen.setdefault(t, now)
                if "✓" in shown[i - 1] or "✗" in shown[i - 1]:
                    self.answered_seen.setdefault(t, now)
        self.drawings_metric = run.metric("Drawings") or self.drawings_metric
        if run.exceptions():
            self.problems.append(f"wall: {run.exceptions()}")

    def watch(self) -> None:
        def loop():
            fid, interval = self.fragment
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    run = self.session.run(fragment_id=fid)
                except Exception as err:  # a finding, not a crash
                    self.problems.append(f"wall: {type(err).__name__}: {err}")
                    return
                self.refresh_seconds.append(time.perf_counter() - t0)
                self._see(run)
                self._stop.wait(max(0.0, interval - (time.perf_counter() - t0)))

        self._thread = threading.Thread(target=loop, name="wall", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.session.close()


# --------------------------------------------------------------------------- the phones


@dataclass
class Drawing:
    nickname: str
    digit: str
    drawn_at: float  # wall-clock time the canvas picture was sent
    predicted: str | None = None
    answered_at: float | None = None  # when "Yes" was sent
    thanked: bool = False  # the page said it is on the wall


@dataclass
class PhoneResult:
    drawings: list = field(default_factory=list)
    round_trips: list = field(default_factory=list)  # seconds: drawing -> prediction, answer -> thanks
    ticks: int = 0  # settle-fragment reruns sent
    problems: list = field(default_factory=list)


def phone(url: str, code: str, index: int, rounds: int, interval: float, start: threading.Event,
          offset: float, values: dict) -> PhoneResult:
    res = PhoneResult()
    try:
        with Session(url, "Draw", query_string=f"room={code}") as s:
            run = s.run()
            if f"Room {code}" not in " ".join(m.body for m in run.of("markdown")):
                res.problems.append(f"phone {index}: not in the room: {run.alerts()} {run.exceptions()}")
                return res
            start.wait()
            time.sleep(offset)
            next_at = time.monotonic()
            for k in range(rounds):
                if k:
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                digit = "17"[(index + k) % 2]
                d = Drawing(f"p{index:02d}-{k}", digit, time.time())
                res.drawings.append(d)
                canvas, nick = widget(run, "draw_canvas_", prefix=True), widget(run, "room_nickname")
                t0 = time.perf_counter()
                run = s.run([Session.state(nick, string_value=d.nickname),
                             Session.state(canvas, json_value=values[digit])])
                res.round_trips.append(time.perf_counter() - t0)
                d.predicted = run.metric("Prediction")
                if d.predicted is None:
                    res.problems.append(f"{d.nickname}: no prediction ({run.alerts()} {run.exceptions()})")
                    continue
                late = k % 2 == 1  # half answer after the drawing has settled onto the wall by itself
                wait_until = time.monotonic() + (2.5 if late else 0.6)
                frag = run.fragment  # the settle fragment, while the drawing waits to go up
                while (left := wait_until - time.monotonic()) > 0:
                    time.sleep(min(frag[1], left) if frag else left)
                    if frag is None or time.monotonic() >= wait_until:
                        continue
                    tick = s.run(fragment_id=frag[0])  # the browser's run_every timer
                    res.ticks += 1
                    if tick.metric("Prediction") is not None:  # it went up: the page asked for a full rerun
                        run, frag = tick, tick.fragment
                yes = widget(run, "room_yes_", prefix=True)
                if yes is None:
                    res.problems.append(f"{d.nickname}: no Yes button ({run.alerts()})")
                    continue
                d.answered_at = time.time()
                t0 = time.perf_counter()
                run = s.run([Session.state(nick, string_value=d.nickname), Session.state(yes, trigger_value=True)])
                res.round_trips.append(time.perf_counter() - t0)
                d.thanked = any("is on the wall" in a for a in run.alerts())
                if not d.thanked:
                    res.problems.append(f"{d.nickname}: answer not taken ({run.alerts()} {run.exceptions()})")
    except Exception as err:
        res.problems.append(f"phone {index}: {type(err).__name__}: {err}")
    return res


# --------------------------------------------------------------------------- main


def stored(data_dir: Path, code: str) -> tuple[int, int]:
    room = data_dir / "rooms" / code

    def rows(name):
        try:
            with open(room / name, newline="", encoding="utf-8") as f:
                return sum(1 for _ in csv.DictReader(f))
        except FileNotFoundError:
            return 0

    return rows("drawings.csv"), rows("answers.csv")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phones", type=int, default=40)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between a phone's drawings")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long each phone keeps drawing")
    ap.add_argument("--no-training", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (server log, the room)")
    args = ap.parse_args()
    rounds = max(1, int(args.seconds / args.interval))
    if args.phones * rounds > 500:
        ap.error(f"{args.phones} phones x {rounds} drawings is more than a room takes (500)")

    tmp, data_dir, models_dir, timing = server_dirs("scratchnet-room-", "the room's model")
    trainer = wall = None
    serve = [sys.executable, str(ROOT / "benchmarks" / "load_predict.py"), "--serve"]
    with running_app(data_dir, models_dir, tmp / "server.log", env={TIMING_ENV: str(timing)},
                     command=lambda port: serve + [str(port)]) as (url, proc):
        try:
            if not args.no_training:
                trainer = Trainer.running_on(url)
            wall = Wall(url, data_dir)
            code = wall.open()
            wall.watch()
            print(f"room {code} open; {args.phones} phones x {rounds} drawings, one every {args.interval:g} s",
                  flush=True)
            values = {d: canvas_value(draw_digit(d, size=340)) for d in ("1", "7")}
            go = threading.Event()
            results: list[PhoneResult] = [PhoneResult() for _ in range(args.phones)]

            def one(i):
                results[i] = phone(url, code, i, rounds, args.interval, go, i * args.interval / args.phones, values)

            threads = [threading.Thread(target=one, args=(i,), name=f"phone-{i}") for i in range(args.phones)]
            for t in threads:
                t.start()
            time.sleep(3.0)  # every phone has opened the page
            t0, cpu0 = time.time(), cpu_seconds(proc.pid)
            go.set()
            for t in threads:
                t.join()
            t1, cpu1 = time.time(), cpu_seconds(proc.pid)
            time.sleep(3.0)  # the last answers reach the wall
            load = os.getloadavg()[0]
            still_training = trainer.running() if trainer is not None else None
        finally:
            if wall is not None:
                wall.stop()
            if trainer is not None:
                trainer.stop()

    drawings = [d for r in results for d in r.drawings]
    sent = [d for d in drawings if d.predicted is not None]
    answered = [d for d in sent if d.answered_at is not None and d.thanked]
    n_stored, n_answers = stored(data_dir, code)
    to_wall = [wall.answered_seen[d.nickname] - d.answered_at for d in answered if d.nickname in wall.answered_seen]
    missed = [d.nickname for d in answered if d.nickname not in wall.answered_seen]
    appear = [wall.first_seen[d.nickname] - d.drawn_at for d in sent if d.nickname in wall.first_seen]
    server_ms = []
    for line in timing.read_text().splitlines():
        ts, ms, _cpu = line.split()
        if t0 <= float(ts) <= t1 + 1:
            server_ms.append(float(ms))
    rtt = [x * 1000 for r in results for x in r.round_trips]
    problems = [p for r in results for p in r.problems] + wall.problems

    def stats(values, unit="s", scale=1.0):
        if not values:
            return "none"
        v = [x * scale for x in values]
        return (f"p50 {percentile(v, 50):.2f} {unit}, p95 {percentile(v, 95):.2f} {unit}, "
                f"max {max(v):.2f} {unit} ({len(v)})")

    print(f"\n{args.phones} phones x {rounds} drawings, one every {args.interval:g} s, "
          f"{'while one training ran' if not args.no_training else 'no training'} "
          f"(still running at the end: {still_training}); {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"drawings: {len(drawings)} drawn, {len(sent)} read, {len(answered)} answered; "
          f"stored in the room: {n_stored} drawings, {n_answers} answers; the wall's Drawings: {wall.drawings_metric}")
    print(f"answer -> answered on the wall: {stats(to_wall)}; never seen answered: {len(missed)}")
    print(f"drawing -> on the wall (answered at 0.6 s or settled at 1.2 s, whichever first): {stats(appear)}")
    print(f"server-side prediction (read_digit), {len(server_ms)} calls: "
          f"p50 {percentile(server_ms, 50):.1f} ms, p95 {percentile(server_ms, 95):.1f} ms, "
          f"max {max(server_ms, default=float('nan')):.1f} ms")
    print(f"phone page round trips (draw -> prediction, answer -> thanks): {stats(rtt, 'ms')}; "
          f"settle-fragment ticks: {sum(r.ticks for r in results)}")
    print(f"wall refreshes: {stats(wall.refresh_seconds, 'ms', 1000)}")
    print(f"server process CPU: {cpu1 - cpu0:.1f} s in {t1 - t0:.1f} s wall")
    for p in problems[:10]:
        print("problem:", p)
    ok = (n_stored == len(sent) and n_answers == len(answered) and not missed and to_wall
          and percentile(to_wall, 95) <= 2.0 and server_ms and percentile(server_ms, 95) <= 50)
    print("targets met" if ok else "targets NOT met")
    if args.keep:
        print("kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

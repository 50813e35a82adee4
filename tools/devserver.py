"""Run the real app (``streamlit run app.py``) as a child process on 127.0.0.1 (dev tooling).

For the browser tests, the reliability tests and the load/memory benchmarks, which all need a live
server with their own data and model directories. Streamlit itself is not imported here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_command(port: int, script: str = "app.py") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false"]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60, log_path: Path | None = None) -> None:
    """Block until ``/_stcore/health`` answers; fail with the server's log if it died or hung."""

    def log_tail() -> str:
        return "" if log_path is None else ":\n" + Path(log_path).read_text(errors="replace")[-4000:]

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early{log_tail()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not answer{log_tail()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_app(
    data_dir: Path,
    models_dir: Path,
    log_path: Path,
    *,
    env: dict | None = None,
    command: Sequence[str] | None = None,
    port: int | None = None,
    **popen_kw,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the app with its own directories, wait until healthy, yield ``(url, process)``.

    ``command`` replaces ``streamlit run app.py`` (a benchmark wrapping the app, say); it is
    given the port as its last argument when it is a callable.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = dict(os.environ, SCRATCHNET_DATA_DIR=str(data_dir), SCRATCHNET_MODELS_DIR=str(models_dir),
                    PYTHONUNBUFFERED="1", **(env or {}))
    argv = list(command(port)) if callable(command) else list(command or streamlit_command(port))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, **popen_kw)
        try:
            wait_healthy(url, proc, log_path=log_path)
            yield url, proc
        finally:
            stop(proc)

"""Whole-file writes that readers (other sessions, other processes) only ever see complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(target: Path, mode: str = "wb", *, prefix: str = ".tmp-", suffix: str = "") -> Iterator[IO]:
    """Write to a temporary file beside ``target``, fsync it, then ``os.replace`` it into place.

    On any error (or interruption) the temporary file is removed and ``target`` is untouched.
    Temporary names start with ``prefix`` so listings can skip them.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

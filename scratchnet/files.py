"""Writes that readers (other sessions, other processes) only ever see complete.

Whole files go to a temporary file beside the target and are renamed into place; CSV rows are
appended one row per ``write`` on an ``O_APPEND`` descriptor, by a caller holding a lock, so rows
never interleave and a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
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


def csv_line(values) -> str:
    """One CSV row as text (quoted where needed), ending in a newline."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def append_csv_row(path: Path, fields, row) -> None:
    """Append ``row`` to the CSV file ``path`` in one write, with the header if the file is new.

    The caller holds the folder's lock: the size check and the write must not interleave.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        text = csv_line(row)
        if os.fstat(fd).st_size == 0:
            text = csv_line(fields) + text
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)

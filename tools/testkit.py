"""Small helpers shared by the tests and the benchmarks (like tools/devserver.py, outside the
package): a digit drawn as on the canvas, and a metric read from a Streamlit AppTest."""

from __future__ import annotations


def draw_digit(digit: str, size: int = 280):
    """A digit as a user draws it on the canvas: thick white strokes on black, RGBA.

    "1" and "7" are strokes; anything else is "dot": a click without moving, a round blob of the
    pen's width.
    """
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    d = ImageDraw.Draw(im)
    s = size / 280
    pts = {
        "1": [(150, 40), (140, 240)],
        "7": [(70, 55), (205, 55), (125, 245)],
    }.get(digit)
    if pts is None:
        d.ellipse([(129 * s, 129 * s), (151 * s, 151 * s)], fill=(255, 255, 255, 255))
        return im
    d.line([(x * s, y * s) for x, y in pts], fill=(255, 255, 255, 255), width=int(22 * s), joint="curve")
    return im


def metric(at, label: str) -> str | None:
    """The value of the AppTest metric labelled ``label``, or None if the page shows none."""
    for m in at.metric:
        if m.label == label:
            return m.value
    return None


def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar ``f()`` with respect to every entry of ``x``
    (changed in place and restored): what the gradient checks compare backward passes with."""
    import numpy as np

    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def rerun_until(at, predicate, timeout: float = 60.0):
    """Rerun an AppTest page until ``predicate(at)`` holds (``run_every`` fragments do not tick in
    AppTest); fails on a page exception or after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError("the page never reached the expected state")
        time.sleep(0.1)


def run_threads(work, n: int) -> None:
    """Call ``work(0) .. work(n - 1)`` each on its own thread, all at once; return when all are done."""
    import threading

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

"""Peak memory of full-MNIST training, and of the idle app with a model loaded.

    python benchmarks/memory.py [--data-dir DIR] [--skip-app]

1. Training: each preset trains in its own fresh Python process (``fast`` for one epoch,
   ``notebook`` for 20 iterations, ``best`` for 150 steps with its augmentation: every buffer is
   allocated in the first steps, so longer runs do not grow) after loading full MNIST; the figure
   is that process's peak RSS (``VmHWM``), data included. Targets: <= 400 MB (fast, notebook),
   <= 600 MB (best, the conv net).
2. The app: ``streamlit run app.py`` headless on 127.0.0.1 with a fresh models folder holding one
   active 784-256-128-10 model; Chromium (Playwright) opens the home page and then the Draw page
   once (each loads the model); after a few idle seconds we read the server's ``VmRSS`` from
   /proc. Without Playwright a plain HTTP GET / is made instead (which does not run the page's
   script, so it under-counts). Target: <= 250 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.devserver import running_app  # noqa: E402

TRAIN_TARGET_MB = 400
BEST_TARGET_MB = 600
APP_TARGET_MB = 250


def proc_status_mb(pid: int | str = "self") -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def child(preset: str, data_dir: str | None) -> None:
    """Runs in the subprocess: load MNIST, train, print JSON figures."""
    from scratchnet.datasets import load_mnist
    from scratchnet.training import PRESETS, build_network, train

    ds = load_mnist(data_dir, download=False, fallback=False)
    after_load = proc_status_mb()["VmRSS"]
    config = PRESETS[preset]
    if preset == "best":
        config = config.replace(epochs=None, iterations=150)
    elif config.epochs is not None:
        config = config.replace(epochs=1)
    else:
        config = config.replace(iterations=20)
    net = build_network(config)
    t = time.perf_counter()
    for p in train(net, ds.X_train, ds.y_train, config, ds.X_val, ds.y_val):
        pass
    net.accuracy(ds.X_test, ds.y_test)
    print(json.dumps({"preset": preset, "after_load_mb": after_load, "peak_mb": proc_status_mb()["VmHWM"],
                      "seconds": time.perf_counter() - t, "status": p.status}))


def training_peaks(data_dir) -> list[dict]:
    results = []
    for preset in ("fast", "notebook", "best"):
        cmd = [sys.executable, __file__, "--child", preset] + (["--data-dir", data_dir] if data_dir else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def app_idle(data_dir: str | None) -> dict:
    from scratchnet.store import ModelStore
    from scratchnet.training import PRESETS, build_network

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        data = data_dir or os.environ.get("SCRATCHNET_DATA_DIR") or str(Path(tmp) / "data")
        store = ModelStore(models)
        net = build_network(PRESETS["fast"])
        info = store.save(net, {"config": PRESETS["fast"].to_dict(), "dataset": {"name": "mnist"}}, name="bench")
        store.set_active(info.name)
        with running_app(data, models, Path(tmp) / "streamlit.log") as (url, server):
            how = _visit(url)
            time.sleep(5)  # idle
            figures = proc_status_mb(server.pid)
            figures["visited_with"] = how
            return figures


def _visit(url: str) -> str:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        urllib.request.urlopen(url + "/", timeout=10).read()
        return "HTTP GET / (no Playwright: the page script did not run)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + "/")
            page.get_by_text("bench").first.wait_for()  # the home page names the active model
            page.goto(url + "/Draw")
            page.locator("canvas").first.wait_for()
            time.sleep(2)
        finally:
            browser.close()
    return "Chromium (Playwright): home page, then Draw page"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--skip-app", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.data_dir)
        return 0

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    for r in training_peaks(args.data_dir):
        target = BEST_TARGET_MB if r["preset"] == "best" else TRAIN_TARGET_MB
        ok = r["peak_mb"] <= target
        print(f"  training '{r['preset']}' on full MNIST: peak RSS {r['peak_mb']:.0f} MB "
              f"(after loading the data {r['after_load_mb']:.0f} MB) "
              f"({'<=' if ok else 'MISSED'} {target} MB)")
    if not args.skip_app:
        a = app_idle(args.data_dir)
        ok = a["VmRSS"] <= APP_TARGET_MB
        print(f"  app idle with a model loaded: RSS {a['VmRSS']:.0f} MB, peak {a['VmHWM']:.0f} MB "
              f"({'<=' if ok else 'MISSED'} {APP_TARGET_MB} MB; visited with {a['visited_with']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every speed/memory benchmark one after the other and print their figures.

    python benchmarks/run_all.py [--with-time-to-accuracy] [--data-dir DIR]

Each script runs in its own process (so one's memory or threads cannot colour the next). Takes
about 8 minutes on a 2-core machine; ``--with-time-to-accuracy`` adds the ~25 s
time-to-accuracy run (which also rewrites docs/time_to_accuracy.png and its CSV).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["vs_torch.py", "vs_notebook.py", "predict_latency.py", "ui_overhead.py", "memory.py",
           "thread_choice.py"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--with-time-to-accuracy", action="store_true")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    args = ap.parse_args(argv)
    scripts = SCRIPTS + (["time_to_accuracy.py"] if args.with_time_to_accuracy else [])
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    start = time.perf_counter()
    failed = []
    for name in scripts:
        print(f"\n=== {name} " + "=" * (60 - len(name)), flush=True)
        t = time.perf_counter()
        cmd = [sys.executable, str(HERE / name)] + (extra if name != "predict_latency.py" else [])
        rc = subprocess.run(cmd, env=os.environ).returncode
        print(f"--- {name}: {time.perf_counter() - t:.0f} s" + (f", exit code {rc}" if rc else ""), flush=True)
        if rc:
            failed.append(name)
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

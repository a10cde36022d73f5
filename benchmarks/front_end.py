"""Front-end speed: load + validate resnet152 in process, and `archspec check resnet152` as a whole process.

Targets (issue 2): in-process load under 20 ms after import; whole process under 0.3 s.
Run: .venv/bin/python benchmarks/front_end.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--model", default="resnet152")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    t0 = time.perf_counter()
    import archspec
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    arch = archspec.load(args.model)
    t_cold = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        archspec.load(args.model)
        warm.append(time.perf_counter() - t0)
    # A fresh parse each time (no tree cache): what a changed file costs.
    from archspec import parser
    fresh = []
    for _ in range(args.repeat):
        parser._TREES.clear()
        t0 = time.perf_counter()
        archspec.load(args.model)
        fresh.append(time.perf_counter() - t0)

    cli = [sys.executable, "-m", "archspec", "check", args.model]
    procs = []
    for _ in range(max(5, args.repeat // 2)):
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True, cwd=ROOT)
        procs.append(time.perf_counter() - t0)
    baseline = []  # the interpreter alone, for scale
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - t0)

    ms = lambda s: f"{s * 1000:7.1f} ms"  # noqa: E731
    print(f"model {args.model}: {len(arch.nodes)} nodes")
    print(f"import archspec                          {ms(t_import)}")
    print(f"first load (parser tables + parse)      {ms(t_cold)}")
    print(f"load, median of {args.repeat} (cached parse)     {ms(statistics.median(warm))}   target < 20 ms "
          f"({statistics.median(warm) / 0.020:.2f} of target)")
    print(f"load, median of {args.repeat} (fresh parse)      {ms(statistics.median(fresh))}")
    p = statistics.median(procs)
    print(f"`archspec check {args.model}` process    {ms(p)}   target < 300 ms ({p / 0.3:.2f} of target)")
    print(f"python -c pass process                  {ms(statistics.median(baseline))}")


if __name__ == "__main__":
    main()

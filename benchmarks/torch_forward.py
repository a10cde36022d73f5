"""Forward latency of `to_torch` (an fx.GraphModule) against the emitted standalone source, on CPU.

    .venv/bin/python benchmarks/torch_forward.py [--models resnet50 mobilenet_v2] [--batches 1 16] [--reps 15] [--threads 1]

Both modules hold the same weights; eval mode, no_grad. Runs are interleaved (A B, B A, ...) so
drift in machine load hits both alike; the figure is the median. Target: ratio within 1.02 (median of per-pair CPU-time ratios; wall-time ratio printed too).
Also prints construction time (spec load, to_torch, the emitted class).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import archspec  # noqa: E402
from archspec_compiler import to_torch  # noqa: E402
from archspec_compiler.pysource import emit_python  # noqa: E402


def load_emitted(text: str, name: str):
    path = Path(tempfile.mkdtemp()) / f"{name}_emitted.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"{name}_emitted", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_pair(a, b, x, reps: int, warmup: int = 2) -> dict:
    """Interleaved runs (a b, b a, ...). Returns the median wall time of each, and the median of the
    per-pair ratios a/b in wall time and in process CPU time. Pairs run back to back, so drift in
    the machine's load mostly cancels; CPU time also leaves out the time the process was not
    scheduled, which on a shared machine is most of the noise."""
    wall = {id(a): [], id(b): []}
    cpu = {id(a): [], id(b): []}
    with torch.no_grad():
        for _ in range(warmup):
            a(x)
            b(x)
        for i in range(reps):
            for m in ((a, b) if i % 2 == 0 else (b, a)):
                t, c = time.perf_counter(), time.process_time()
                m(x)
                cpu[id(m)].append(time.process_time() - c)
                wall[id(m)].append(time.perf_counter() - t)
    med = statistics.median
    return {"a": med(wall[id(a)]), "b": med(wall[id(b)]),
            "wall_ratio": med(p / q for p, q in zip(wall[id(a)], wall[id(b)])),
            "cpu_ratio": med(p / q for p, q in zip(cpu[id(a)], cpu[id(b)]))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--reps", type=int, default=15)
    # One thread by default: with several, OpenMP threads of both modules compete with every other
    # process on a shared machine and the ratio measures the load, not the code (0: torch's default).
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    available = set(archspec.list_models())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, eval + no_grad, "
          f"median of {args.reps} interleaved runs")
    rows = []
    for name in args.models:
        if name not in available:
            print(f"{name}: no such zoo spec, skipped")
            continue
        arch, t_load = timed(lambda: archspec.load(name))
        torch.manual_seed(0)
        compiled, t_compile = timed(lambda: to_torch(arch).eval())
        text, t_emit = timed(lambda: emit_python(arch))
        mod = load_emitted(text, name)
        emitted, t_build = timed(lambda: mod.build().eval())
        emitted.load_state_dict(compiled.state_dict())
        print(f"\n{name}: construction  load spec {t_load * 1e3:.0f} ms   to_torch {t_compile * 1e3:.0f} ms   "
              f"emit source {t_emit * 1e3:.0f} ms   emitted build() {t_build * 1e3:.0f} ms")
        for batch in args.batches:
            x = torch.randn(batch, *arch.inputs[0].shape)
            with torch.no_grad():
                assert torch.equal(compiled(x), emitted(x)), "outputs differ"
            r = bench_pair(compiled, emitted, x, args.reps)
            rows.append((name, batch, r["cpu_ratio"]))
            flag = "ok" if r["cpu_ratio"] <= 1.02 else "ABOVE 1.02"
            print(f"  batch {batch:3d}: to_torch {r['a'] * 1e3:8.2f} ms   emitted {r['b'] * 1e3:8.2f} ms   "
                  f"ratio: wall {r['wall_ratio']:.3f}, cpu {r['cpu_ratio']:.3f}  {flag}")
    if rows:
        worst = max(r for _, _, r in rows)
        print(f"\nworst ratio to_torch / emitted (median paired CPU-time ratio): {worst:.3f} (target <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""archspec bench: onnxruntime latency and throughput of an .onnx file, or of a spec exported on the fly."""
from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

from . import add_format_arg, add_spec_args, command, load_spec, progress, require
from ..errors import SpecError, printable


def configure(p):
    add_spec_args(p)
    p.add_argument("--provider", default="cuda,cpu",
                   help="execution providers in order of preference (default: cuda,cpu; CPU is the fallback)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--iters", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="for a spec: the export's type (an .onnx file keeps its own)")
    p.add_argument("--threads", type=int, help="CPU threads (default: onnxruntime's)")
    add_format_arg(p, ("table", "json"))


def _model(args):
    """(ModelProto or path, label): an existing .onnx file, or the spec exported in memory."""
    path = Path(args.spec)
    from archspec_compiler.runtime import check_fits, check_onnx_file
    if path.suffix == ".onnx":
        check_onnx_file(path)
        return str(path), printable(path.name)
    arch = load_spec(args)
    require("bench", "onnx", "onnx", "torch")  # a spec is exported first
    from archspec.analysis import analyze
    report = analyze(arch)
    check_fits(report.params * 4 * 3 + report.memory.peak * args.batch, f"benchmarking {arch.title} at batch {args.batch}")
    from archspec_compiler.onnx import to_onnx
    with progress(f"exporting {arch.title} to ONNX"):
        return to_onnx(arch, dtype=args.dtype), printable(f"{arch.title} ({args.dtype})")


@command("bench", "Time a model (.onnx or a spec) with onnxruntime: latency percentiles and throughput.", configure)
def run(args) -> int:
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        raise ValueError("--batch and --iters must be at least 1, --warmup at least 0")
    require("bench", "onnx", "onnxruntime", "numpy")
    import numpy as np

    from archspec_compiler.runtime import Session, check_fits, time_runs

    model, label = _model(args)
    with warnings.catch_warnings(record=True), progress(f"loading {label}"):  # the fallback note comes below, once
        warnings.simplefilter("always")
        try:
            sess = Session(model, providers=args.provider, threads=args.threads, spinning=False)  # timing
        except (RuntimeError, OSError) as exc:  # onnxruntime's Fail, InvalidGraph, NotImplemented... are these
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SpecError(f"onnxruntime cannot load {label}: {first[:300]}") from None
    if sess.fallback:
        print(f"note: {sess.fallback}", file=sys.stderr)

    rng = np.random.default_rng(0)
    inputs = []
    sizes = []
    for inp in sess.inputs:
        shape = [args.batch if i == 0 and not isinstance(d, int) else d for i, d in enumerate(inp.shape)]
        if not all(isinstance(d, int) for d in shape):
            raise SpecError(f"input '{printable(inp.name)}' has a dynamic axis other than the batch: {inp.shape}")
        if any(d < 1 for d in shape):
            raise SpecError(f"input '{printable(inp.name)}' has an impossible shape {shape}")
        sizes.append(shape)
    check_fits(sum(8 * math.prod(s) for s in sizes), "the benchmark's inputs")
    for shape, dtype in zip(sizes, sess.input_dtypes):
        inputs.append(rng.standard_normal(shape).astype(dtype or np.float32))
    batch = inputs[0].shape[0] if inputs and inputs[0].ndim else 1
    runner = sess.runner(*inputs)

    with progress(f"{label} on {sess.providers[0]}", total=args.warmup + args.iters) as advance:
        times = time_runs(runner, args.iters, args.warmup, progress=advance)

    p50, p90, p99 = (float(np.percentile(times, q)) for q in (50, 90, 99))
    result = {"model": label, "provider": sess.providers[0], "batch": batch, "iters": args.iters,
              "warmup": args.warmup, "mean_ms": float(times.mean()), "min_ms": float(times.min()),
              "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
              "throughput": batch * 1e3 / float(times.mean())}
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{printable(label)}: {sess.providers[0]}, batch {batch}, {args.iters} runs after {args.warmup} warm-up")
    heads = ("p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "samples/s")
    cells = [f"{result[k]:.3f}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms")]
    cells.append(f"{result['throughput']:.1f}")
    widths = [max(len(h), len(c)) for h, c in zip(heads, cells)]
    for row in (heads, ["-" * w for w in widths], cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    return 0

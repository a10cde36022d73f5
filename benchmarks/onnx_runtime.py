"""onnxruntime latency of archspec's ONNX export against torch.onnx.export of the same module and
against torch eager, in one run.

    .venv/bin/python benchmarks/onnx_runtime.py      # resnet50, mobilenet_v2, efficientnet_b0, vit_b_16, convnext_tiny, swin_t
    .venv/bin/python benchmarks/onnx_runtime.py --models resnet18 --batches 1 --rounds 5

CPU section: for each model and batch, the three contenders run in interleaved rounds (ours,
torch.onnx, eager, ours, ...), each round timing `--iters` calls, so load on the machine hits all
three alike; the table shows medians of the per-call latencies and the ratios (target: ours /
torch.onnx <= 1.0). Each export runs in two sessions made in ABBA order; "A/A" compares our two
sessions of the same file: ratios closer to 1 than it are noise. Outputs are compared first, so the contenders compute the same thing.
Session creation (load + onnxruntime's graph optimizations) is timed too, alternating ours and torch.onnx's
(median of --loads; target: ours <= torch.onnx).
CUDA section: the CUDA execution provider with IO binding, float32 and float16 (ours) against
torch.onnx's float32 export, when onnxruntime-gpu and a GPU are present; otherwise it says so.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import archspec  # noqa: E402
from archspec_compiler import to_onnx, to_torch  # noqa: E402
from archspec_compiler.runtime import Session  # noqa: E402

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "vit_b_16", "convnext_tiny", "swin_t")


def torch_export(module: torch.nn.Module, arch, example: torch.Tensor, opset: int) -> tuple[bytes, str]:
    """torch.onnx.export of the module (dynamic batch); the dynamo exporter when it works
    (it needs onnxscript), else the TorchScript one. Returns (model bytes, which exporter)."""
    names = dict(input_names=[i.name for i in arch.inputs], output_names=[o.name for o in arch.outputs])
    axes = {n: {0: "batch"} for n in names["input_names"] + names["output_names"]}
    try:
        import onnxscript  # noqa: F401
        program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), **names)
        return program.model_proto.SerializeToString(), "dynamo"
    except Exception as exc:  # no onnxscript, or the dynamo exporter failed on this module
        reason = type(exc).__name__ if not isinstance(exc, ImportError) else "no onnxscript"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset, dynamic_axes=axes, **names)
    return buf.getvalue(), f"torchscript ({reason})"


def optimized_ops(data: bytes) -> dict[str, int]:
    """Op counts of the graph onnxruntime actually runs on CPU (after its fusions)."""
    import collections
    import tempfile

    import onnx
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    return dict(sorted(collections.Counter(f"{n.domain}:{n.op_type}".lstrip(":") for n in graph.node).items()))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / (np.abs(b).max() or 1.0))


def interleaved(runners: dict[str, callable], rounds: int, iters: int, warmup: int,
                pool: dict[str, list[str]] | None = None) -> dict[str, float]:
    """Median per-call latency (ms) of each runner, timed in interleaved rounds (the order rotates).
    `pool` merges the samples of several runners under one name (two sessions of one model)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            run = runners[name]
            for _ in range(iters):
                t0 = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - t0) * 1e3)
    for name, members in (pool or {}).items():
        times[name] = [t for m in members for t in times[m]]
    return {k: float(np.median(v)) for k, v in times.items()}


def row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print(row(header, widths))
    print(row(["-" * w for w in widths], widths))
    for r in rows:
        print(row(r, widths))


def cpu_section(models, batches, args) -> None:
    rows, notes = [], []
    for name in models:
        arch = archspec.load(name)
        torch.manual_seed(0)
        module = to_torch(arch).eval()
        shape = arch.inputs[0].shape
        ours = to_onnx(arch, module=module, opset=args.opset).SerializeToString()
        theirs, how = torch_export(module, arch, torch.randn(2, *shape), args.opset)
        ops_ours, ops_theirs = optimized_ops(ours), optimized_ops(theirs)
        same = "the same ops" if ops_ours == ops_theirs else f"DIFFERENT ops: ours {ops_ours}, theirs {ops_theirs}"
        notes.append(f"{name}: torch.onnx.export via {how}; ours {len(ours) / 2**20:.1f} MiB, "
                     f"theirs {len(theirs) / 2**20:.1f} MiB; after onnxruntime's optimizations: {same} "
                     f"({sum(ops_ours.values())} nodes)")
        # Two sessions of each export, made in the order ours, theirs, theirs, ours: onnxruntime's
        # first session of a process runs ~1% slower than an identical later one (an A/A test shows it),
        # so a fixed order would hand that 1% to whichever export is made second.
        loads = {"ours": [], "theirs": []}
        for r in range(args.loads):  # alternate who loads first
            for key, data in (("ours", ours), ("theirs", theirs))[::1 if r % 2 == 0 else -1]:
                t0 = time.perf_counter()
                Session(data, providers="cpu", threads=args.threads, spinning=False)
                loads[key].append((time.perf_counter() - t0) * 1e3)
        load = {k: float(np.median(v)) for k, v in loads.items()}
        s_ours = Session(ours, providers="cpu", threads=args.threads, spinning=False)
        s_theirs = Session(theirs, providers="cpu", threads=args.threads, spinning=False)
        s_theirs_b = Session(theirs, providers="cpu", threads=args.threads, spinning=False)
        s_ours_b = Session(ours, providers="cpu", threads=args.threads, spinning=False)
        for batch in batches:
            x = torch.randn(batch, *shape)
            with torch.inference_mode():
                want = module(x).numpy()
            err_ours, err_theirs = rel_err(s_ours(x), want), rel_err(s_theirs(x), want)
            if max(err_ours, err_theirs) > 1e-4:
                raise SystemExit(f"{name}: outputs differ from eager (ours {err_ours:.1e}, torch.onnx {err_theirs:.1e})")

            def eager(x=x):
                with torch.inference_mode():
                    module(x)
            big = batch >= 8
            runners = {"ours a": s_ours.runner(x), "theirs a": s_theirs.runner(x),
                       "theirs b": s_theirs_b.runner(x), "ours b": s_ours_b.runner(x), "eager": eager}
            med = interleaved(runners, rounds=args.rounds, iters=1 if big else args.iters, warmup=2 if big else 5,
                              pool={"ours": ["ours a", "ours b"], "theirs": ["theirs a", "theirs b"]})
            rows.append([name, batch, f"{med['ours']:.2f}", f"{med['theirs']:.2f}", f"{med['eager']:.2f}",
                         f"{med['ours'] / med['theirs']:.3f}", f"{med['ours a'] / med['ours b']:.3f}",
                         f"{med['eager'] / med['ours']:.2f}x", f"{err_ours:.0e}", f"{load['ours']:.0f}",
                         f"{load['theirs']:.0f}", f"{load['ours'] / load['theirs']:.2f}"])
            print(f"  {name} batch {batch}: ours {med['ours']:.2f} ms, torch.onnx {med['theirs']:.2f} ms, "
                  f"eager {med['eager']:.2f} ms", flush=True)
    print_table(f"onnxruntime {ort.__version__} CPU ({os.cpu_count()} cores, threads: "
                f"{args.threads or 'default'}), torch {torch.__version__}; median ms per call",
                ["model", "batch", "ours", "torch.onnx", "eager", "ours/torch.onnx", "A/A (noise)", "eager/ours",
                 "err", "load ours", "load torch.onnx", "load ratio"], rows)
    for n in notes:
        print(f"  {n}")


def cuda_section(models, batches, args) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("\nCUDA: skipped (onnxruntime-gpu is not installed or sees no GPU; "
              f"providers here: {', '.join(ort.get_available_providers())})")
        return
    rows = []
    gpu = torch.cuda.is_available()
    for name in models:
        arch = archspec.load(name)
        torch.manual_seed(0)
        module = to_torch(arch).eval()
        shape = arch.inputs[0].shape
        sessions = {
            "ours fp32": Session(to_onnx(arch, module=module, opset=args.opset), providers="cuda"),
            "ours fp16": Session(to_onnx(arch, module=module, opset=args.opset, dtype="float16"), providers="cuda"),
            "torch.onnx fp32": Session(torch_export(module, arch, torch.randn(2, *shape), args.opset)[0],
                                       providers="cuda"),
        }
        if sessions["ours fp32"].device != "cuda":
            print(f"\nCUDA: skipped, the provider did not load: {sessions['ours fp32'].fallback}")
            return
        for batch in batches:
            x = torch.randn(batch, *shape)
            with torch.inference_mode():
                want = module(x).numpy()
            errs = {k: rel_err(s(x).astype(np.float32), want) for k, s in sessions.items()}
            runners = {k: s.runner(x) for k, s in sessions.items()}
            if gpu:
                mod_gpu, x_gpu = module.cuda(), x.cuda()

                def eager(m=mod_gpu, xg=x_gpu):
                    with torch.inference_mode():
                        m(xg)
                    torch.cuda.synchronize()
                runners["eager fp32"] = eager
            med = interleaved(runners, rounds=args.rounds, iters=args.iters, warmup=10)
            if gpu:
                module.cpu()
            for k, v in med.items():
                rows.append([name, batch, k, f"{v:.3f}", f"{batch * 1e3 / v:.0f}",
                             f"{med['torch.onnx fp32'] / v:.2f}x", f"{errs[k]:.0e}" if k in errs else "-"])
            print(f"  {name} batch {batch}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in med.items()), flush=True)
    device = torch.cuda.get_device_name(0) if gpu else "GPU"
    print_table(f"onnxruntime {ort.__version__} CUDA on {device}, IO binding; median ms per call",
                ["model", "batch", "engine", "ms", "samples/s", "speed-up vs torch.onnx fp32", "err"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--iters", type=int, default=5, help="calls per round at small batch (default 5)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--loads", type=int, default=5, help="session creations timed per export (default 5)")
    p.add_argument("--skip-cpu", action="store_true")
    args = p.parse_args()
    known = set(archspec.list_models())
    models = [m for m in args.models if m in known]
    for m in set(args.models) - known:
        print(f"note: no zoo model '{m}': skipped")
    t0 = time.time()
    if not args.skip_cpu:
        cpu_section(models, args.batches, args)
    cuda_section(models, args.batches, args)
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Snapshot what the pipeline produces for the zoo, and compare a later tree against it (a refactor's guard).

For every zoo model (each in its own process, so one big model's memory is gone before the next):
the IR JSON and the analysis JSON (sha256 of the exact text), the ONNX export's bytes (fp32, and for models
under 30 M params also fp16 and BN-folded; weights filled by the reference's name-seeded rule, so the bytes
do not depend on init order), and the standalone source's model: its state_dict (keys, shapes, dtypes, in
order) and its output on a fixed input. The source text itself is recorded but may change.

    .venv/bin/python scripts/snapshot.py write /tmp/before            # on the old tree
    .venv/bin/python scripts/snapshot.py compare /tmp/before          # on the new tree: lists differences
    .venv/bin/python scripts/snapshot.py compare /tmp/before --models resnet18 vit_b_16 --skip-source
    .venv/bin/python scripts/snapshot.py compare /tmp/before --front-end     # IR and analysis only, all models
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = 30_000_000  # params: below this, fp16 and BN-folded exports are snapshotted too


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def onnx_digest(model) -> str:
    """sha256 of an ONNX model's bytes, computed in two parts so that models over protobuf's 2 GiB work."""
    h = hashlib.sha256()
    for t in model.graph.initializer:
        h.update(t.name.encode())
        h.update(t.raw_data)
        t.ClearField("raw_data")
    h.update(model.SerializeToString())
    return h.hexdigest()


def front_end_facts(name: str) -> dict:
    """The IR JSON and analysis JSON digests of one zoo model (no torch)."""
    import archspec
    arch = archspec.load(name)
    return {"ir": _sha(arch.model_dump_json(indent=1)), "analysis": _sha(archspec.analyze(arch).to_json())}


def snapshot_model(name: str, skip_source: bool) -> dict:
    """Every recorded fact of one zoo model."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    import archspec
    from archspec_compiler import emit_python, to_onnx, to_torch
    from refdata import fill_by_rule

    arch = archspec.load(name)
    report = archspec.analyze(arch)
    out = front_end_facts(name)
    module = to_torch(arch)
    fill_by_rule(module)
    out["onnx"] = onnx_digest(to_onnx(arch, module=module))
    if report.params < SMALL:
        out["onnx_fp16"] = onnx_digest(to_onnx(arch, module=module, dtype="float16"))
        out["onnx_fold"] = onnx_digest(to_onnx(arch, module=module, fold_bn=True))
    del module
    if not skip_source:
        source = emit_python(arch)
        out["source_text"] = _sha(source)
        namespace: dict = {"__name__": f"snapshot_{name}"}
        exec(compile(source, f"<{name}.py>", "exec"), namespace)  # our own emitter's output, from our zoo
        model = namespace["build"]().eval()
        fill_by_rule(model)
        out["state_dict"] = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
        shape = next(iter(arch.inputs)).shape
        x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = model(x)
        y = y[0] if isinstance(y, (tuple, list)) else y
        out["output"] = [float(y.double().sum()), float(y.double().abs().sum()), y.flatten()[:4].tolist()]
    return out


def _close(a, b, rtol: float = 1e-5) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))
    return a == b


def differences(before: dict, after: dict) -> list[str]:
    """What changed between two snapshots of one model (the source text may change; its model may not)."""
    out = []
    for key in sorted(set(before) | set(after)):
        if key == "source_text":
            continue
        a, b = before.get(key), after.get(key)
        same = _close(a, b) if key == "output" else a == b
        if not same and a is not None and b is not None:
            out.append(key)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["write", "compare", "one"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--models", nargs="+", help="zoo model names (default: all)")
    ap.add_argument("--skip-source", action="store_true", help="skip the standalone source's model (faster)")
    ap.add_argument("--front-end", action="store_true", help="compare only IR and analysis JSON, in one process (seconds)")
    args = ap.parse_args()
    if args.action == "one":  # internal: one model, in this process, JSON to stdout
        print(json.dumps(snapshot_model(args.models[0], args.skip_source)))
        return 0
    sys.path.insert(0, str(ROOT))
    import archspec
    names = args.models or archspec.list_models()
    if args.front_end and args.action == "compare":
        changed = [n for n in names if front_end_facts(n) != {k: v for k, v in json.loads(
            (args.folder / f"{n}.json").read_text()).items() if k in ("ir", "analysis")}]
        print(f"IR and analysis JSON: {len(names) - len(changed)} of {len(names)} models the same"
              + (f"; not: {' '.join(changed)}" if changed else ""))
        return 1 if changed else 0
    args.folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "one", str(args.folder), "--models", name] + \
            (["--skip-source"] if args.skip_source else [])
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            print(f"[{i}/{len(names)}] {name}: FAILED\n{run.stderr[-2000:]}", flush=True)
            failed.append(name)
            continue
        got = json.loads(run.stdout)
        file = args.folder / f"{name}.json"
        if args.action == "write":
            file.write_text(json.dumps(got, indent=1))
            verdict = "written"
        else:
            diff = differences(json.loads(file.read_text()), got) if file.exists() else ["(no snapshot)"]
            verdict = "same" if not diff else "DIFFERENT: " + ", ".join(diff)
            if diff:
                failed.append(name)
        print(f"[{i}/{len(names)}] {name}: {verdict} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"{len(names) - len(failed)} of {len(names)} models {'written' if args.action == 'write' else 'the same'}"
          + (f"; not: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

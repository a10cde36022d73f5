"""archspec export: a spec -> an ONNX file, checked by onnx's full checker and by comparing onnx's
inferred shapes with the IR's."""
from __future__ import annotations

from pathlib import Path

from . import add_spec_args, check_destination, command, load_spec, progress, require
from ..errors import printable
from ..output import atomic_folder


def configure(p):
    add_spec_args(p)
    p.add_argument("-o", "--output", help="the .onnx file to write (default: <variant or name>.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (13 to 21; default 17)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="weights and IO type")
    p.add_argument("--fold-bn", action="store_true", help="fold batch norms into the preceding conv/linear")
    p.add_argument("--weights", metavar="STATE_DICT",
                   help="a state_dict file (.pt/.pth loaded with weights_only=True, or .safetensors); "
                        "default: fresh weights, initialised as the spec says")
    p.add_argument("--static-batch", action="store_true", help="a fixed batch of 1 instead of a dynamic axis")
    p.add_argument("--no-compare", action="store_true",
                   help="do not compare onnxruntime's outputs with PyTorch's on a random sample")


@command("export", "Export a spec to ONNX (checked with onnx's full checker and shape inference).", configure)
def run(args) -> int:
    require("export", "onnx", "onnx", "torch", "numpy")
    if args.output:
        check_destination(Path(args.output))  # before minutes of work, not after
    arch = load_spec(args)
    out = Path(args.output or f"{arch.title}.onnx")
    check_destination(out)
    from archspec_compiler.onnx import check, compare_outputs, to_onnx  # heavy: onnx, numpy, torch (for the weights)
    from archspec_compiler.torch import to_torch

    from ..analysis import analyze
    report = analyze(arch)
    module = to_torch(arch, weights=args.weights)
    # Written and checked in a temporary folder beside `out`, then renamed into place: a model that fails
    # its checks, or half a model (a killed export), never lands where a deployment could pick it up, and
    # parallel exports to one path each check their own file.
    with atomic_folder(out) as folder:
        tmp = folder / out.name
        with progress(f"exporting {arch.title} to {out}"):
            model = to_onnx(arch, tmp, module=module, opset=args.opset, dynamic_batch=not args.static_batch,
                            dtype=args.dtype, fold_bn=args.fold_bn)
        nodes = len(model.graph.node)
        size = tmp.stat().st_size
        del model  # the checker reads the file (models over 2 GB included)
        with progress(f"checking {out}"):
            compared = check(arch, tmp)
            worst = None if args.no_compare else compare_outputs(arch, module, tmp, args.dtype)
    # the analyzer's figures, the same words as `archspec analyze`: buffers (BN statistics) are not params
    print(printable(f"wrote {out}: {nodes} nodes, {report.params:,} params, {report.buffers:,} buffers, "
          f"{size / 2**20:.1f} MiB, opset {args.opset}, {args.dtype}, batch {'1' if args.static_batch else 'dynamic'}"
          + (", batch norms folded" if args.fold_bn else "")))
    print("checker: ok (full check)")
    print(f"shapes match the IR: {compared} of {compared} values")
    if worst is not None:
        print(f"outputs match PyTorch on a random sample (largest difference {worst:.2g} of the output's scale)")
    return 0

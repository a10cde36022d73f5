"""archspec compile: a spec -> readable, standalone PyTorch source (imports only torch)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from . import add_spec_args, check_destination, command, load_spec, require, write_output


def configure(p):
    add_spec_args(p)
    p.add_argument("--emit", choices=("python",), default="python",
                   help="what to write: python = a torch.nn.Module class with a straight-line forward")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    from .analyze import add_outputs_arg
    add_outputs_arg(p, "the model's forward returns {name: tensor} for these taps (feature extraction) "
                       "and builds only what they need")
    p.add_argument("--no-inplace", action="store_true",
                   help="never run activations in place (by default they do where nothing else reads their input)")


@command("compile", "Compile a spec to standalone PyTorch source (same state_dict keys as to_torch).", configure)
def run(args) -> int:
    require("compile", "torch", "torch")
    if args.output:
        check_destination(Path(args.output))
    arch = load_spec(args)
    from archspec_compiler.pysource import emit_python  # torch is imported only here
    cmd = "archspec " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compile"] else None
    text = emit_python(arch, inplace=not args.no_inplace, command=cmd, outputs=args.outputs)
    write_output(args.output, text, f"wrote {args.output}: {arch.title}, {len(arch.nodes)} nodes")
    return 0

"""archspec diagram: draw a spec as SVG/PNG/PDF (Graphviz), DOT text or Mermaid (for pull requests)."""
from __future__ import annotations

import sys
from pathlib import Path

from . import add_spec_args, check_destination, command, load_spec, write_output
from ..errors import SpecError


def configure(p):
    add_spec_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the file to write: .svg .png .pdf (need Graphviz), .dot/.gv, .mmd (Mermaid), "
                        ".md (Mermaid in a fenced block); '-' writes text formats to standard output")
    p.add_argument("--format", choices=("svg", "png", "pdf", "dot", "mermaid", "md"),
                   help="output format (default: from the file's extension)")
    p.add_argument("--depth", type=int, default=0, metavar="N",
                   help="collapse layers into their scopes of N name parts (layer3.2 = 2); 0 draws every layer")


@command("diagram", "Draw a spec: SVG/PNG via Graphviz, or Mermaid text; blocks collapsed to --depth.", configure)
def run(args) -> int:
    from ..diagram import MERMAID_MAX_EDGES, build, format_for, render_bytes
    if args.depth < 0:
        raise SpecError("--depth must be 0 (every layer) or more", hint="--depth 2 collapses blocks like layer3.2")
    if args.output == "-" and not args.format:
        raise SpecError("writing to standard output needs --format", hint="--format mermaid, md or dot")
    fmt = format_for(args.output, args.format)
    if args.output == "-" and fmt in ("svg", "png", "pdf"):
        fmt_hint = "write it to a file: -o net." + fmt
        raise SpecError(f"{fmt} is binary or large: not written to standard output", hint=fmt_hint)
    if args.output != "-":
        check_destination(Path(args.output))
    arch = load_spec(args)
    depth = args.depth or None
    d = build(arch, depth)
    if d.note:
        print(f"note: {d.note}", file=sys.stderr)
    if fmt in ("mermaid", "md") and len(d.edges) > MERMAID_MAX_EDGES:
        print(f"warning: {len(d.edges)} edges; Mermaid renders at most {MERMAID_MAX_EDGES} by default: "
              "collapse the diagram with --depth 1 or 2", file=sys.stderr)
    data = render_bytes(d, fmt)
    write_output(None if args.output == "-" else args.output, data,
                 f"wrote {args.output} ({fmt}, {len(data):,} bytes)")
    return 0

"""archspec diff: what a spec change costs, per scope: params, MACs, memory, shapes, receptive field."""
from __future__ import annotations

from pathlib import Path

from . import add_format_arg, check_destination, command, parse_overrides, write_output
from ..errors import SpecError


def configure(p):
    p.add_argument("a", metavar="A", help="the old spec: a zoo name (resnet50), a path to a .arch file, or an IR "
                   "dump (.json, from archspec analyze --format ir)")
    p.add_argument("b", metavar="B", nargs="?",
                   help="the new spec (default: A again, changed by --variant-b / --set-b)")
    p.add_argument("--variant-a", help="the variant of A, for a family file")
    p.add_argument("--variant-b", help="the variant of B, for a family file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter on both sides (repeatable)")
    p.add_argument("--set-a", dest="overrides_a", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter of A (repeatable)")
    p.add_argument("--set-b", dest="overrides_b", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter of B (repeatable): --set-b width=1.2")
    add_format_arg(p)
    p.add_argument("--depth", type=int, default=1, metavar="N",
                   help="compare scopes of N name parts (layer3 = 1, layer3.2 = 2)")
    p.add_argument("--all", action="store_true", help="table format: list unchanged scopes as rows too")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def _title(spec: str, variant: str | None, overrides: list[str], arch) -> str:
    text = arch.title if variant is None and "/" not in spec and not spec.endswith(".arch") else (
        f"{spec}" + (f" [{arch.variant}]" if arch.variant else ""))
    return text + "".join(f" {o}" for o in overrides)


def _load(spec: str, variant: str | None, overrides: dict):
    """A spec, or an IR dumped by `archspec analyze --format ir` (a .json file: a build kept from a base branch)."""
    from ..loader import load
    if spec.endswith(".json"):
        if variant or overrides:
            raise SpecError(f"'{spec}' is an IR dump: it has no variants or parameters to change",
                            hint="diff the .arch spec instead")
        from ..irdump import read_ir
        return read_ir(spec)
    return load(spec, variant=variant, **overrides)


@command("diff", "Compare two specs (or one at two variants/parameter sets) scope by scope.", configure)
def run(args) -> int:
    from ..diff import diff, to_json, to_markdown, to_table
    if args.depth < 1:
        raise SpecError("--depth must be 1 or more", hint="--depth 1 compares the top-level scopes (layer1, ...)")
    if args.b is None and not (args.variant_b or args.overrides_b):
        raise SpecError(f"diff needs a second spec: archspec diff {args.a} B",
                        hint="or change A itself with --variant-b NAME or --set-b KEY=VALUE")
    if args.output:
        check_destination(Path(args.output))
    b_spec = args.b or args.a
    both = parse_overrides(args.overrides)
    set_a, set_b = {**both, **parse_overrides(args.overrides_a)}, {**both, **parse_overrides(args.overrides_b)}
    arch_a = _load(args.a, args.variant_a, set_a)
    arch_b = _load(b_spec, args.variant_b, set_b)
    title_a = _title(args.a, args.variant_a, args.overrides_a, arch_a)
    title_b = _title(b_spec, args.variant_b, args.overrides_b, arch_b)
    if title_a == title_b:
        title_a, title_b = f"A: {title_a}", f"B: {title_b}"
    d = diff(arch_a, arch_b, args.depth, title_a, title_b)
    text = {"md": to_markdown, "json": to_json}.get(args.format, lambda x: to_table(x, args.all))(d)
    write_output(args.output, text, f"wrote {args.output}")
    return 0

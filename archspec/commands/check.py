"""archspec check: load and validate specs (every variant of a family file, every file of a folder)."""
from __future__ import annotations

import sys
from pathlib import Path

from . import add_spec_args, command, name_options, parse_overrides
from ..errors import SpecError, printable


def configure(p):
    add_spec_args(p, many=True)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def targets(spec: str, variant: str | None) -> list[tuple[str, str | None]]:
    """(spec, variant) pairs to check: a folder means its .arch files; a family file means all its variants."""
    path = Path(spec)
    if path.is_dir():
        return [t for f in sorted(path.rglob("*.arch")) for t in targets(str(f), variant)]
    return [(spec, variant)]


def _expand(pairs):
    """(target, variant, module) triples: a .arch file without a chosen variant is read once (the module,
    or the SpecError of reading it) and checked at each of its variants, in declaration order."""
    from ..loader import read_spec_file
    for target, variant in pairs:
        if not (target.endswith(".arch") and variant is None):
            yield target, variant, None
            continue
        try:
            module = read_spec_file(target)
        except SpecError as exc:
            yield target, None, exc
            continue
        for v in list(module.variants) or [None]:
            yield target, v, module


@command("check", "Load and validate specs; exit non-zero on any error or broken budget.", configure)
def run(args) -> int:
    from ..budgets import check_budgets
    from ..loader import load, load_module
    overrides = parse_overrides(args.overrides)
    failed = 0
    checked = 0
    for spec in args.spec:
        for target, variant, module in _expand(targets(spec, args.variant)):
            checked += 1
            label = printable(f"{target}" + (f" [{variant}]" if variant else ""))
            try:
                if isinstance(module, SpecError):
                    raise module
                if module is not None and module.network is None and not module.variants and not module.blocks:
                    raise SpecError(f"'{target}' is empty: no network, no variant and no block",
                                    hint="a spec needs a `network { ... }` (a library for `use`, blocks)")
                if module is not None and module.network is None and not module.variants:  # blocks for `use`
                    if not args.quiet:
                        print(f"ok   {label}: library of {len(module.blocks)} blocks")
                    continue
                arch = (load_module(module, variant, **overrides) if module is not None
                        else load(target, variant=variant, **overrides))
            except SpecError as exc:
                failed += 1
                name_options(exc, args)
                print(exc.render(), file=sys.stderr)
                print(f"FAIL {label}", file=sys.stderr)
                continue
            broken = check_budgets(arch)
            if broken:
                failed += 1
                print("\n\n".join(d.render() for d in broken), file=sys.stderr)
                print(f"FAIL {label}: {len(broken)} of {len(arch.budgets)} budgets broken", file=sys.stderr)
                continue
            if not args.quiet:
                budgets = f", {len(arch.budgets)} budget{'s' if len(arch.budgets) != 1 else ''} met" if arch.budgets else ""
                print(f"ok   {label}: {len(arch.nodes)} nodes, output {list(arch.node(arch.outputs[0].node).shape)}"
                      f"{budgets}")
    if checked > 1 and not args.quiet:
        print(f"{checked - failed} of {checked} specs ok")
    return 1 if failed else 0

"""archspec check: load and validate specs (every variant of a family file, every file of a folder)."""
from __future__ import annotations

import sys
from pathlib import Path

from . import add_spec_args, command, name_options, parse_overrides
from ..errors import SpecError


def configure(p):
    add_spec_args(p, many=True)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def targets(spec: str, variant: str | None) -> list[tuple[str, str | None]]:
    """(spec, variant) pairs to check: a folder means its .arch files; a family file means all its variants."""
    from .. import zoo
    path = Path(spec)
    if path.is_dir():
        return [t for f in sorted(path.rglob("*.arch")) for t in targets(str(f), variant)]
    if path.suffix == ".arch" and path.is_file() and variant is None:
        from ..limits import DEFAULT_LIMITS
        with path.open("rb") as f:  # bounded: load() reports an over-long file
            text = f.read(DEFAULT_LIMITS.max_file_bytes + 1).decode("utf-8", errors="replace")
        variants = list(dict.fromkeys(zoo._VARIANT.findall(text)))  # a duplicate is reported once
        if variants:
            return [(spec, v) for v in variants]
    return [(spec, variant)]


@command("check", "Load and validate specs; exit non-zero on any error or broken budget.", configure)
def run(args) -> int:
    from ..budgets import check_budgets
    from ..loader import load, read_spec_file
    overrides = parse_overrides(args.overrides)
    failed = 0
    checked = 0
    for spec in args.spec:
        for target, variant in targets(spec, args.variant):
            checked += 1
            label = f"{target}" + (f" [{variant}]" if variant else "")
            try:
                if target.endswith(".arch") and variant is None:
                    module = read_spec_file(target)
                    if module.network is None and not module.variants and not module.blocks:
                        raise SpecError(f"'{target}' is empty: no network, no variant and no block",
                                        hint="a spec needs a `network { ... }` (a library for `use`, blocks)")
                    if module.network is None and not module.variants:  # a library of blocks for `use`
                        if not args.quiet:
                            print(f"ok   {label}: library of {len(module.blocks)} blocks")
                        continue
                arch = load(target, variant=variant, **overrides)
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

"""archspec analyze: parameters, MACs, memory and receptive fields of a spec, without torch."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import add_format_arg, add_spec_args, command, parse_overrides
from ..errors import SpecError, md_code, printable


def configure(p):
    add_spec_args(p)
    add_format_arg(p, ("table", "json", "md", "ir"))
    p.add_argument("--depth", type=int, default=1, metavar="N",
                   help="roll layers up to scopes of N name parts (layer3 = 1, layer3.2 = 2); 0 lists every layer")
    p.add_argument("--input", dest="input_size", metavar="HxW",
                   help="input resolution for the first input: HxW for images (300x300), L for sequences")
    add_outputs_arg(p, "also report these feature taps (shape, channels, stride), as to_torch(outputs=...) "
                       "returns them")


def add_outputs_arg(p, help_text: str) -> None:
    p.add_argument("--outputs", metavar="NAMES", type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
                   help=f"comma-separated layer or scope names (layer2,layer3,layer4): {help_text}")


def parse_size(text: str) -> tuple[int, ...]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        size = tuple(int(x.strip().replace("_", "")) for x in parts)
    except ValueError:
        size = ()
    if not size or any(s < 1 for s in size):
        raise SpecError(f"--input expects sizes like 224x224, got '{text}'", hint="HxW for an image, L for a sequence")
    return size


def load_arch(args):
    """The spec, variant, overrides and --input of the command line as an IR; a .json file is an IR dump."""
    from ..loader import load
    overrides = parse_overrides(args.overrides)
    size = parse_size(args.input_size) if args.input_size else None
    path = Path(args.spec)
    if path.suffix == ".json":
        if overrides or size or args.variant:
            raise SpecError(f"'{args.spec}' is an IR dump: it has no parameters, variants or input size to change",
                            hint="analyze the .arch spec instead")
        from ..irdump import read_ir
        return read_ir(path)
    return load(args.spec, variant=args.variant, input_size=size, **overrides)


@command("analyze", "Parameters, MACs, activation memory and receptive fields, per layer and per scope.", configure)
def run(args) -> int:
    from ..analysis import analyze, taps
    if args.depth < 0:
        raise SpecError("--depth must be 0 (every layer) or more", hint="--depth 1 gives the top-level scopes")
    arch = load_arch(args)
    if args.format == "ir":
        print(arch.model_dump_json(indent=2))
        return 0
    report = analyze(arch)
    tapped = taps(arch, args.outputs, report) if args.outputs else []
    if args.format == "json":
        if tapped:
            data = report.to_dict(max(args.depth, 1))
            data["taps"] = [t.to_dict() for t in tapped]
            print(json.dumps(data, indent=2))
        else:
            print(report.to_json(max(args.depth, 1)))
    elif args.format == "md":
        print(markdown(report, args.depth))
        if tapped:
            print("\n| tap | tensor | shape | channels | stride |\n|---|---|---|---|---|")
            for t in tapped:
                print(f"| `{t.name}` | `{t.node}` | {'x'.join(map(str, t.shape))} | {t.channels} | "
                      f"{'x'.join(map(str, t.stride))} |")
    else:
        table(report, args.depth)
        if tapped:
            from rich.console import Console
            from rich.markup import escape
            console = Console(width=None if sys.stdout.isatty() else 120)
            console.print("[bold]feature taps[/bold] (to_torch(arch, outputs=[...]) returns these)", highlight=False)
            for t in tapped:
                console.print(f"  {escape(t.name):<20} {escape(t.node):<28} {'x'.join(map(str, t.shape)):>14}  "
                              f"channels {t.channels:<6} stride {'x'.join(map(str, t.stride))}", highlight=False)
    return 0


# ---------------------------------------------------------------- rendering

def _rows(report, depth: int):
    """(name, kind, layers, shape, params, macs, field) per row: every layer at depth 0, else roll-ups."""
    if depth == 0:
        return [(r.name, r.op, 1, r.shape, r.params, r.macs, r.receptive_field) for r in report.layers]
    return [(s.name, s.block or "", s.layers, s.shape, s.params, s.macs, s.receptive_field)
            for s in report.scopes(depth)]


def _field_cells(f, shape) -> tuple[str, str]:
    """(RF, stride) cells. A gated map (global, still spatial) shows its local field too: the field keeps growing
    through the convs after a squeeze-and-excitation gate, and that is worth seeing."""
    from ..analysis import axes_text, is_map
    if not f.size:
        return "-", "-"
    if not f.is_global:
        return axes_text(f.size), axes_text(f.stride)
    return (f"global ({axes_text(f.size)})", axes_text(f.stride)) if is_map(shape) else ("global", "-")


def _network_field(report) -> str:
    f = report.receptive_field
    if not f.size:
        return "global" if f.is_global else "-"
    local = f"{f.local_text()} at {f.tensor}"
    return f"global; local field {local}" if f.is_global else local


def _summary(report) -> list[tuple[str, str]]:
    from ..analysis import bytes_text, human, macs_text
    shapes = lambda d: ", ".join(f"{k} {list(v)}" for k, v in d.items())  # noqa: E731
    return [
        ("input", shapes(report.inputs)),
        ("outputs", shapes(report.outputs)),
        ("params", f"{report.params:,}" + (f" ({human(report.params)})" if report.params >= 1000 else "")),
        ("buffers", f"{report.buffers:,}"),
        ("compute", macs_text(report.macs)),
        ("memory", f"{bytes_text(report.memory.outputs)} of outputs, peak {bytes_text(report.memory.peak)} "
                   "(float32, batch 1)"),
        ("receptive field", _network_field(report)),
    ]


def output_width() -> int | None:
    """The columns to fit: COLUMNS if set, else the terminal's; None (no limit) when stdout is not a terminal."""
    import shutil
    columns = shutil.get_terminal_size((0, 0)).columns  # (0, 0): neither COLUMNS nor a terminal
    return max(columns, 40) if columns else None


# Columns dropped when the table is too wide for the terminal, in two rounds: between them the names wrap
# down to _NAME_MIN. A number is never cut.
_DROP_FIRST, _DROP_THEN = ("stride", "RF"), ("layers", "block / op", "op")
_NAME_MIN = 24


def table_text(report, depth: int, width: int | None) -> str:
    """The analysis as a plain-text table fitting `width` columns (None: no limit). Too wide, it switches the
    params to compact units (1.22 M), then drops the least needed columns, then wraps the names; a number is
    never cut."""
    from ..analysis import human
    name_head = "layer" if depth == 0 else "scope"
    heads = [name_head, "op" if depth == 0 else "block / op"] + (["layers"] if depth else []) + [
        "output", "params", "MACs", "RF", "stride"]
    from ..limits import MAX_TABLE_ROWS
    all_rows = _rows(report, depth)
    rows = []
    for name, kind, n, shape, params, macs, f in all_rows[:MAX_TABLE_ROWS]:  # json/md have them all
        rows.append([printable(name), printable(kind)] + ([str(n)] if depth else []) + [
            "x".join(map(str, shape)), f"{params:,}", human(macs), *_field_cells(f, shape)])
    left = {name_head, "op", "block / op", "output"}

    def widths(cols):
        return [max(len(r[i]) for r in [heads] + rows) for i in cols]

    def total(cols):
        return sum(widths(cols)) + 2 * (len(cols) - 1)

    cols = list(range(len(heads)))

    def fits(cols, name_min):  # the width with the names wrapped down to name_min, if that is enough
        return total(cols) - max(widths(cols)[0] - name_min, 0) <= width

    if width is not None and total(cols) > width:
        p = heads.index("params")
        for r, (_, _, _, _, params, _, _) in zip(rows, _rows(report, depth)):
            r[p] = human(params)
        for drop, name_min in ((_DROP_FIRST, _NAME_MIN), (_DROP_THEN, _NAME_MIN // 2)):
            for head in drop:
                if head in heads and not fits(cols, name_min):
                    cols.remove(heads.index(head))
    ws = widths(cols)
    if width is not None and total(cols) > width:  # wrap the names into what the numbers leave
        ws[0] = max(8, ws[0] - (total(cols) - width))

    def lines(cells):
        parts = [_wrap_name(c, w) if i == 0 else [c] for i, (c, w) in enumerate(zip(cells, ws))]
        out = []
        for k in range(max(len(x) for x in parts)):
            row = [(x[k] if k < len(x) else "") for x in parts]
            out.append("  ".join(c.ljust(w) if heads[i] in left else c.rjust(w)
                                 for c, w, i in zip(row, ws, cols)).rstrip())
        return out

    text = [f"{printable(report.title)}: {report.params:,} params, {human(report.macs, 'MACs')}"]
    text += lines([heads[i] for i in cols]) + ["  ".join("-" * w for w in ws)]
    for r in rows:
        text += lines([r[i] for i in cols])
    if len(all_rows) > MAX_TABLE_ROWS:
        text.append(f"... {len(all_rows) - MAX_TABLE_ROWS:,} more rows not shown: collapse them with --depth, "
                    "or use --format md or json")
    text.append("")
    return "\n".join(text + _footer(report, width)) + "\n"


def _footer(report, width: int | None) -> list[str]:
    """The summary and the warnings below the table, wrapped to `width`."""
    import textwrap
    text = []
    for key, value in _summary(report):
        text += textwrap.wrap(f"{key:>15}  {printable(value)}", width or len(value) + 17, subsequent_indent=" " * 17,
                              break_long_words=False, break_on_hyphens=False)
    for w in report.warnings:
        text += textwrap.wrap(f"warning: {printable(w)}", width or len(w) + 9, subsequent_indent="  ", break_long_words=False)
    return text


def _wrap_name(name: str, width: int) -> list[str]:
    """A dotted name cut into lines of at most `width`, after a '.' where one is near enough."""
    out = []
    while len(name) > width:
        cut = name.rfind(".", 0, width) + 1
        cut = cut if cut > width // 2 else width
        out.append(name[:cut])
        name = name[cut:]
    return out + [name]


def table(report, depth: int) -> None:
    sys.stdout.write(table_text(report, depth, output_width()))


def markdown(report, depth: int) -> str:
    from ..analysis import human
    out = [f"### {md_code(report.title)}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {printable(v).replace('|', '/')} |" for k, v in _summary(report)]
    out += ["", f"| {'layer' if depth == 0 else 'scope'} | block / op | output | params | MACs | RF | stride |",
            "|---|---|---|---:|---:|---:|---:|"]
    for name, kind, _n, shape, params, macs, f in _rows(report, depth):
        size, stride = _field_cells(f, shape)
        out.append(f"| {md_code(name)} | {printable(kind)} | {'x'.join(map(str, shape))} | {params:,} | {human(macs, 'MACs')} "
                   f"| {size} | {stride} |")
    if report.warnings:
        out += [""] + [f"> warning: {printable(w)}" for w in report.warnings]
    return "\n".join(out)

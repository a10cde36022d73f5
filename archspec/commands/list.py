"""archspec list: the zoo as a table (name, family, input, params, MACs, receptive field).

The same rows feed docs/zoo.md (scripts/gen_zoo_doc.py), so the table and the document cannot drift apart."""
from __future__ import annotations

import json
import sys

from . import add_format_arg, command
from ..errors import SpecError

COLUMNS = ("name", "family", "input", "params", "MACs", "receptive field")


def configure(p):
    add_format_arg(p)
    p.add_argument("names", nargs="*", help="only these zoo models (default: all)")


def _costs(arch) -> tuple[int, int, dict]:
    """(params, MACs, receptive field of the last feature map), from the analyzer."""
    from ..analysis import analyze
    report = analyze(arch)
    return report.params, report.macs, report.receptive_field.to_dict()


def zoo_rows(names: list[str] | None = None) -> list[dict]:
    """One dict per zoo model, in zoo order. A model that fails to load gets an 'error' entry instead of costs."""
    from .. import list_models, zoo
    from ..loader import load
    entries = zoo.entries()
    rows = []
    for name in names or list_models():
        if name not in entries:
            if name.endswith(".arch") or "/" in name or "\\" in name:
                raise SpecError(f"'{name}' is a spec file: 'archspec list' shows the zoo's models",
                                hint=f"run 'archspec analyze {name}' (or 'archspec check {name}' for a family file)")
            load(name)  # raises the loader's "no zoo model" error, with its did-you-mean hint
        row: dict = {"name": name, "family": entries[name].family}
        try:
            arch = load(name)
        except SpecError as exc:
            row["error"] = exc.diagnostics[0].message if exc.diagnostics else str(exc)
            rows.append(row)
            continue
        params, macs, field = _costs(arch)
        row.update(input=list(arch.inputs[0].shape), params=params, macs=macs, receptive_field=field)
        rows.append(row)
    return rows


def _field_text(field: dict | None) -> str:
    """'212 / 32': size and effective stride of the last feature map's field (one number when the axes agree)."""
    if not field or not field["size"]:
        return "-"
    def axes(v):
        return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))
    return f"{axes(field['size'])} / {axes(field['stride'])}"


def _gmacs(macs: int) -> str:
    return f"{macs / 1e9:.2f} G" if macs >= 1e7 else f"{macs / 1e6:.2f} M"


def cells(row: dict) -> list[str]:
    if "error" in row:
        return [row["name"], row["family"], "error: " + row["error"], "", "", ""]
    return [row["name"], row["family"], "x".join(map(str, row["input"])), f"{row['params']:,}", _gmacs(row["macs"]),
            _field_text(row["receptive_field"])]


def render_table(rows: list[dict]) -> str:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    right = {3, 4}  # numbers line up on the right

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(table[0]), line(["-" * w for w in widths])] + [line(r) for r in table[1:]]) + "\n"


def render_md(rows: list[dict]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|---|---|---|---:|---:|---:|\n"
    body = "".join("| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |\n" for r in rows)
    return head + body


def render_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2) + "\n"


@command("list", "List the zoo's models: family, input, params, MACs, receptive field (size / stride).", configure)
def run(args) -> int:
    rows = zoo_rows(args.names or None)
    render = {"table": render_table, "md": render_md, "json": render_json}[args.format]
    sys.stdout.write(render(rows))
    failed = [r["name"] for r in rows if "error" in r]
    if failed:
        print(f"{len(failed)} model(s) failed to load: {', '.join(failed)} (run 'archspec check' on them)",
              file=sys.stderr)
    return 1 if failed else 0

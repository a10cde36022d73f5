"""What a spec change costs: per-scope differences between two architectures, for review.

    d = diff(archspec.load("resnet50"), archspec.load("resnet101"), depth=1)
    d.total.params_delta, [r.name for r in d.changed]     # 18992128, ['layer3']
    print(to_markdown(d))                                   # ready to post as a pull-request comment

Scopes are matched by name (the module paths of the spec's labels) at `depth` name parts, in network
order. A scope is unchanged when every layer in it has the same op, attributes, inputs and shape on
both sides; unchanged scopes are collapsed into one line. Every figure comes from `archspec.analyze`.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from .errors import md_code, printable
from .analysis import Report, ScopeStats, analyze, bytes_text, human
from .ir import Architecture


@dataclass(frozen=True)
class Side:
    """One scope on one side of the diff."""

    block: str | None
    blocks: int                 # direct sub-scopes (layer3.0, layer3.1, ...): the "blocks" of a stage
    layers: int
    params: int
    macs: int
    memory: int                 # bytes of its layers' outputs (float32, batch 1)
    shape: tuple[int, ...]
    rf: str                     # receptive field of its output: size per axis, or "global"
    signature: tuple = ()

    def to_dict(self) -> dict:
        return {"block": self.block, "blocks": self.blocks, "layers": self.layers, "params": self.params,
                "macs": self.macs, "memory": self.memory, "shape": list(self.shape), "receptive_field": self.rf}


@dataclass(frozen=True)
class Row:
    name: str
    a: Side | None              # None: the scope exists only in B (added)
    b: Side | None              # None: only in A (removed)

    @property
    def status(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "unchanged" if self.a.signature == self.b.signature else "changed"

    def delta(self, metric: str) -> int:
        return (getattr(self.b, metric) if self.b else 0) - (getattr(self.a, metric) if self.a else 0)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "a": self.a.to_dict() if self.a else None,
                "b": self.b.to_dict() if self.b else None,
                "delta": {m: self.delta(m) for m in ("params", "macs", "memory", "layers", "blocks")}}


@dataclass(frozen=True)
class Totals:
    params: tuple[int, int]
    buffers: tuple[int, int]
    macs: tuple[int, int]
    memory: tuple[int, int]         # every layer's output, bytes
    peak: tuple[int, int]           # peak activation bytes
    outputs: tuple[dict, dict]      # output name -> shape
    rf: tuple[str, str]

    @property
    def params_delta(self) -> int:
        return self.params[1] - self.params[0]


@dataclass(frozen=True)
class Diff:
    a: str                          # titles (variant or name, with overrides)
    b: str
    depth: int
    rows: tuple[Row, ...]
    total: Totals

    @property
    def changed(self) -> list[Row]:
        return [r for r in self.rows if r.status != "unchanged"]

    @property
    def unchanged(self) -> list[Row]:
        return [r for r in self.rows if r.status == "unchanged"]

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict:
        t = self.total
        pair = lambda v: {"a": v[0], "b": v[1], "delta": v[1] - v[0]}  # noqa: E731
        return {"a": self.a, "b": self.b, "depth": self.depth,
                "total": {"params": pair(t.params), "buffers": pair(t.buffers), "macs": pair(t.macs),
                          "flops": pair((2 * t.macs[0], 2 * t.macs[1])), "memory": pair(t.memory),
                          "peak_memory": pair(t.peak),
                          "outputs": {"a": {k: list(v) for k, v in t.outputs[0].items()},
                                      "b": {k: list(v) for k, v in t.outputs[1].items()}},
                          "receptive_field": {"a": t.rf[0], "b": t.rf[1]}},
                "scopes": [r.to_dict() for r in self.rows]}


def rf_text(field, local: bool = False) -> str:
    """A receptive field in a cell: `427`, `427x300` per axis, `global` (with `local`: `global (local 427)`)."""
    if not field.size:
        return "global" if field.is_global else "-"
    size = str(field.size[0]) if len(set(field.size)) == 1 else "x".join(map(str, field.size))
    if field.is_global:
        return f"global (local {size})" if local else "global"
    return size


def _sides(arch: Architecture, report: Report, depth: int) -> dict[str, Side]:
    nodes = {n.name: n for n in arch.nodes}
    scopes = {s.name for s in arch.scopes}
    # The layers of each scope, grouped in one pass as Report.scopes groups them (scanning every layer for
    # every scope took minutes on 49,000 layers).
    by_scope: dict[str, list] = {}
    for r in report.layers:
        by_scope.setdefault(".".join(r.name.split(".")[:depth]), []).append(r)
    out: dict[str, Side] = {}
    for s in report.scopes(depth):
        prefix = s.name + "."
        members = by_scope[s.name]
        # Its blocks: the direct sub-scopes (block calls, groups), not its single layers.
        children = {prefix + r.name[len(prefix):].split(".")[0] for r in members if r.name.startswith(prefix)}
        out[s.name] = Side(s.block, len(children & scopes), s.layers, s.params, s.macs, s.memory, s.shape,
                           rf_text(s.receptive_field), _signature(s, members, nodes))
    return out


def _signature(s: ScopeStats, members, nodes) -> tuple:
    """What must agree for a scope to be unchanged: each layer's relative name, op, attrs, inputs, shape."""
    def rel(name: str) -> str:
        # A tensor from outside the scope is named by the other side's layout (layer3.5 vs layer3.22):
        # only its shape, already in the attrs and shapes, matters.
        return name[len(s.name):] if name == s.name or name.startswith(s.name + ".") else "^"
    return tuple((rel(r.name), r.op, json.dumps(nodes[r.name].attrs, sort_keys=True),
                  tuple(rel(x) for x in r.inputs), r.shape) for r in members)


MAX_ALIGNED = 4_000  # scopes of both sides aligned by difflib; past it, a linear merge


def _align(a: list[str], b: list[str]) -> list[str]:
    """Names of both sides in network order: A's order, with B's new scopes where B has them."""
    if len(a) + len(b) > MAX_ALIGNED:  # SequenceMatcher can be quadratic: A's order, then B's new scopes
        return list(dict.fromkeys(a + b))
    out: list[str] = []
    in_a = set(a)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        out.extend(a[i1:i2])
        if tag in ("replace", "insert"):
            out.extend(x for x in b[j1:j2] if x not in in_a)
    return list(dict.fromkeys(out))


def diff(a: Architecture, b: Architecture, depth: int = 1, title_a: str | None = None,
         title_b: str | None = None) -> Diff:
    """Per-scope and total differences from `a` to `b`, scopes rolled up to `depth` name parts."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    ra, rb = analyze(a), analyze(b)
    sa, sb = _sides(a, ra, depth), _sides(b, rb, depth)
    rows = tuple(Row(n, sa.get(n), sb.get(n)) for n in _align(list(sa), list(sb)))
    total = Totals((ra.params, rb.params), (ra.buffers, rb.buffers), (ra.macs, rb.macs),
                   (ra.memory.outputs, rb.memory.outputs), (ra.memory.peak, rb.memory.peak),
                   (ra.outputs, rb.outputs), (rf_text(ra.receptive_field, True), rf_text(rb.receptive_field, True)))
    return Diff(title_a or a.title, title_b or b.title, depth, rows, total)


# ---------------------------------------------------------------- text

def _pct(a: int, b: int) -> str:
    if a == b:
        return "0%"
    if a == 0:
        return "new"
    p = (b - a) / a * 100
    return f"{p:+.1f}%" if abs(p) >= 0.1 else f"{p:+.2g}%"


def _signed(n: int, fmt=lambda x: f"{x:,}") -> str:
    return ("+" if n > 0 else "-" if n < 0 else "±") + fmt(abs(n))


def _arrow(a, b, fmt=str) -> str:
    if a is None:
        return f"— → {fmt(b)}"
    if b is None:
        return f"{fmt(a)} → —"
    return fmt(a) if a == b else f"{fmt(a)} → {fmt(b)}"


def _shape(s) -> str:
    return "x".join(map(str, s))


def _cells(r: Row) -> list[str]:
    a, b = r.a, r.b
    get = lambda side, m: getattr(side, m) if side else None  # noqa: E731
    blocks = _arrow(get(a, "blocks"), get(b, "blocks")) if (a and a.blocks) or (b and b.blocks) else ""
    what = _arrow(get(a, "block") or "", get(b, "block") or "") if a and b else (a or b).block or ""
    return [
        r.name, r.status, what, blocks,
        _arrow(get(a, "params"), get(b, "params"), lambda x: f"{x:,}"),
        f"{_signed(r.delta('params'))} ({_pct(get(a, 'params') or 0, get(b, 'params') or 0)})",
        _arrow(get(a, "macs"), get(b, "macs"), human),
        f"{_signed(r.delta('macs'), human)} ({_pct(get(a, 'macs') or 0, get(b, 'macs') or 0)})",
        _arrow(get(a, "memory"), get(b, "memory"), bytes_text),
        _arrow(get(a, "shape"), get(b, "shape"), _shape),
        _arrow(get(a, "rf"), get(b, "rf")),
    ]


_HEAD = ["scope", "status", "block", "blocks", "params", "Δ params", "MACs", "Δ MACs", "memory", "output", "RF"]


def _total_rows(d: Diff) -> list[list[str]]:
    t = d.total
    outs = lambda o: ", ".join(f"{k} {_shape(v)}" for k, v in o.items())  # noqa: E731
    rows = [
        ["params", f"{t.params[0]:,}", f"{t.params[1]:,}", _signed(t.params[1] - t.params[0]), _pct(*t.params)],
        ["MACs", human(t.macs[0], "MACs"), human(t.macs[1], "MACs"), _signed(t.macs[1] - t.macs[0], human),
         _pct(*t.macs)],
        ["FLOPs", human(2 * t.macs[0], "FLOPs"), human(2 * t.macs[1], "FLOPs"),
         _signed(2 * (t.macs[1] - t.macs[0]), human), _pct(*t.macs)],
        ["buffers", f"{t.buffers[0]:,}", f"{t.buffers[1]:,}", _signed(t.buffers[1] - t.buffers[0]), _pct(*t.buffers)],
        ["activations", bytes_text(t.memory[0]), bytes_text(t.memory[1]), _signed(t.memory[1] - t.memory[0], bytes_text),
         _pct(*t.memory)],
        ["peak memory", bytes_text(t.peak[0]), bytes_text(t.peak[1]), _signed(t.peak[1] - t.peak[0], bytes_text),
         _pct(*t.peak)],
        ["outputs", outs(t.outputs[0]), outs(t.outputs[1]), "", ""],
        ["receptive field", t.rf[0], t.rf[1], "", ""],
    ]
    return rows


def to_markdown(d: Diff) -> str:
    """A pull-request comment: totals, the changed scopes, the unchanged ones folded away."""
    esc = lambda s: printable(str(s)).replace("|", "\\|")  # noqa: E731
    out = [f"### archspec diff: {md_code(d.a)} → {md_code(d.b)}", "",
           f"| | {md_code(d.a)} | {md_code(d.b)} | Δ | Δ% |", "|---|---:|---:|---:|---:|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in _total_rows(d)]
    changed = d.changed
    out += ["", f"#### {len(changed)} changed scope{'s' if len(changed) != 1 else ''} (depth {d.depth})", ""]
    if changed:
        out += ["| " + " | ".join(_HEAD) + " |", "|---|---|---|---|---:|---:|---:|---:|---:|---|---|"]
        for r in changed:
            cells = _cells(r)
            out.append("| " + " | ".join([md_code(cells[0])] + [esc(c) for c in cells[1:]]) + " |")
    else:
        out.append("No scope changed.")
    same = d.unchanged
    if same:
        names = ", ".join(md_code(r.name) for r in same)
        out += ["", f"<details><summary>{len(same)} unchanged scope{'s' if len(same) != 1 else ''}</summary>", "",
                names, "", "</details>"]
    out += ["", "<sub>memory: bytes of the layers' outputs, float32, batch 1 · FLOPs = 2 × MACs · "
                "RF: receptive field of the scope's output, in input pixels</sub>"]
    return "\n".join(out) + "\n"


def _grid(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa
    return [fmt(rows[0]).rstrip(), "  ".join("-" * w for w in widths)] + [fmt(r).rstrip() for r in rows[1:]]


def to_table(d: Diff, show_all: bool = False) -> str:
    """Plain text for a terminal."""
    out = [printable(f"{d.a} -> {d.b}"), ""]
    out += _grid([["", printable(d.a), printable(d.b), "delta", "%"]] + _total_rows(d), {1, 2, 3, 4})
    rows = d.rows if show_all else d.changed
    out += ["", f"{len(d.changed)} of {len(d.rows)} scopes changed (depth {d.depth})"]
    if rows:
        out += [""] + _grid([_HEAD] + [_cells(r) for r in rows], {4, 5, 6, 7, 8})
    same = d.unchanged
    if same and not show_all:
        out += ["", f"unchanged: {', '.join(r.name for r in same)}"]
    return "\n".join(out) + "\n"


def to_json(d: Diff) -> str:
    return json.dumps(d.to_dict(), indent=2) + "\n"


__all__ = ["Diff", "Row", "Side", "Totals", "diff", "to_json", "to_markdown", "to_table"]

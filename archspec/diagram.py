"""Diagrams of an architecture: Graphviz (DOT, and SVG/PNG through the `dot` program) and Mermaid.

    d = build(arch, depth=2)        # layers collapsed into the scopes of two name parts: layer3.2, ...
    to_dot(d), to_mermaid(d)        # text
    render(arch, "net.svg")         # the format from the extension: .svg .png .dot/.gv .mmd .md

Collapsing groups the nodes by the first `depth` parts of their dotted names (`layer3.2.conv1` ->
`layer3.2`); a merge (add, cat, mul) that stays visible is drawn as a merge, and the scopes above the
depth are drawn as nested clusters. Each box shows its output shape and its parameters.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import human
from .errors import Diagnostic, SpecError, printable
from .limits import MAX_DIAGRAM_BOXES
from .output import write_atomic
from .ir import Architecture, Node
from .ops import REGISTRY

FORMATS = ("svg", "png", "pdf", "dot", "mermaid", "md")
_EXTENSIONS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid",
               ".mermaid": "mermaid", ".md": "md"}
MERMAID_MAX_EDGES = 500  # Mermaid's default maxEdges: a larger chart does not render in a pull request

# Fill colours by kind of box (the same in both outputs).
_COLOURS = {"input": "#ffffff", "output": "#ffffff", "group": "#f1f1f1", "merge": "#fff2cc", "conv": "#dae8fc",
            "linear": "#e1d5e7", "norm": "#d5e8d4", "pool": "#ffe6cc", "act": "#f8f8f8", "other": "#f8f8f8",
            "param": "#e1d5e7"}
_KIND = {"conv": "conv", "linear": "linear", "bn": "norm", "lrn": "norm", "maxpool": "pool", "avgpool": "pool",
         "adaptive_avgpool": "pool", "gap": "pool", "layernorm": "norm", "groupnorm": "norm",
         "multihead_attention": "linear"}  # besides merges (drawn as such) and sources (as parameters)
_MERGE_TEXT = {"add": "add", "cat": "concat", "mul": "mul"}


@dataclass
class Box:
    id: str                  # the scope path or node name; "input:NAME" / "output:NAME" for the ends
    kind: str                # input, output, group, merge, or an op category (conv, norm, pool, ...)
    title: str
    detail: str              # op summary, block name or layer count
    shape: tuple[int, ...]
    params: int = 0

    def lines(self) -> list[str]:
        out = [self.title]
        if self.detail and self.detail != self.title:
            out.append(self.detail)
        out.append(str(list(self.shape)) + (f" · {human(self.params)} params" if self.params else ""))
        return out


@dataclass
class Diagram:
    title: str
    boxes: list[Box]
    edges: list[tuple[str, str]]
    clusters: dict[str, str | None] = field(default_factory=dict)  # scope path -> block name, outermost first
    summary: str = ""
    note: str = ""           # what was collapsed or cut to keep the diagram drawable

    def box(self, id: str) -> Box:
        return next(b for b in self.boxes if b.id == id)


def _op_summary(node: Node) -> str:
    a = node.attrs
    if node.op == "conv":
        k = "x".join(map(str, a["kernel"]))
        text = f"conv {k}"
        if any(s > 1 for s in a["stride"]):
            text += f" /{'x'.join(map(str, a['stride']))}" if len(set(a["stride"])) > 1 else f" /{a['stride'][0]}"
        if a["groups"] > 1:
            text += " depthwise" if a["groups"] == a["in"] else f" g{a['groups']}"
        return text
    if node.op in ("maxpool", "avgpool"):
        text = f"{node.op} {'x'.join(map(str, a['kernel']))}"
        return text + (f" /{a['stride'][0]}" if a["stride"][0] > 1 else "")
    if node.op in _MERGE_TEXT:
        return _MERGE_TEXT[node.op]
    if node.op in ("dropout", "stochastic_depth"):
        return f"{node.op} {a['p']:g}"
    return node.op


def build(arch: Architecture, depth: int | None = None) -> Diagram:
    """The boxes and edges of `arch` with nodes collapsed to `depth` name parts (None or 0: every node).

    A diagram has at most MAX_DIAGRAM_BOXES boxes (Graphviz and Mermaid choke on more): past it the nodes
    are collapsed to the deepest depth that fits, else the boxes past the limit are cut into one; either
    way `note` (also in the summary) says so."""
    if depth is not None and depth < 0:
        raise ValueError("depth must be 0 (every node) or more")
    d = _build(arch, depth)
    if len(d.boxes) <= MAX_DIAGRAM_BOXES:
        return d
    lo, hi = 1, (depth or max(n.name.count(".") + 1 for n in arch.nodes)) - 1
    best = None
    while lo <= hi:  # the box count grows with the depth: the deepest depth that fits, by bisection
        mid = (lo + hi) // 2
        trial = _build(arch, mid)
        if len(trial.boxes) <= MAX_DIAGRAM_BOXES:
            best, lo = (mid, trial), mid + 1
        else:
            hi = mid - 1
    if best is not None:
        shallower, d = best
        return _noted(d, f"{len(arch.nodes):,} layers collapsed to depth {shallower} to stay within "
                         f"{MAX_DIAGRAM_BOXES} boxes")
    return _cut(_build(arch, 1), MAX_DIAGRAM_BOXES)


def _noted(d: Diagram, note: str) -> Diagram:
    d.note = note
    d.summary = f"{d.summary} · {note}"
    return d


def _cut(d: Diagram, limit: int) -> Diagram:
    """The first `limit` boxes, the rest drawn as one: for a network too flat to collapse."""
    ends = [b for b in d.boxes if b.kind in ("input", "output")]
    inner = [b for b in d.boxes if b.kind not in ("input", "output")]
    keep, rest = inner[:limit - len(ends) - 1], inner[limit - len(ends) - 1:]
    more = Box("more", "group", f"{len(rest):,} more boxes", "not drawn", rest[-1].shape, sum(b.params for b in rest))
    dropped = {b.id for b in rest}
    edges = {}
    for a, b in d.edges:
        a, b = ("more" if a in dropped else a), ("more" if b in dropped else b)
        if a != b:
            edges[(a, b)] = None
    boxes = [b for b in ends if b.kind == "input"] + keep + [more] + [b for b in ends if b.kind == "output"]
    ids = {b.id for b in boxes}
    clusters = {c: blk for c, blk in d.clusters.items() if any(i.startswith(c + ".") for i in ids)}
    return _noted(Diagram(d.title, boxes, list(edges), clusters, d.summary),
                  f"{len(rest):,} of {len(inner):,} boxes not drawn (over {limit}): see 'archspec analyze'")


def _build(arch: Architecture, depth: int | None) -> Diagram:
    shapes = arch.shapes()
    blocks = {s.name: s.block for s in arch.scopes}

    def key(name: str) -> str:
        if name in inputs:
            return "input:" + name
        parts = name.split(".")
        return ".".join(parts[:depth]) if depth and len(parts) > depth else name

    inputs = {i.name for i in arch.inputs}
    boxes: dict[str, Box] = {}
    members: dict[str, int] = {}
    for i in arch.inputs:
        boxes["input:" + i.name] = Box("input:" + i.name, "input", i.name, "input", i.shape)
    edges: dict[tuple[str, str], None] = {}
    total_params = 0
    for node in arch.nodes:
        op = REGISTRY[node.op]
        ins = [shapes[x] for x in node.inputs]
        params = op.params(node.attrs, ins, node.shape)
        total_params += params
        k = key(node.name)
        if k == node.name:
            kind = "merge" if op.arity is None else "param" if op.arity == 0 else \
                _KIND.get(node.op, "act" if not node.attrs else "other")  # no input: a source, like an input
            boxes[k] = Box(k, kind, node.name, _op_summary(node), node.shape, params)
        else:
            box = boxes.get(k)
            if box is None:
                box = boxes[k] = Box(k, "group", k, "", node.shape)
            box.params += params
            box.shape = node.shape  # a group shows the output of its last node
            members[k] = members.get(k, 0) + 1
        for x in node.inputs:
            src = key(x)
            if src != k:
                edges[(src, k)] = None
    for k, n in members.items():
        blk = blocks.get(k)
        boxes[k].detail = f"{blk} · {n} layers" if blk else f"{n} layers"
    for o in arch.outputs:
        oid = "output:" + o.name
        boxes[oid] = Box(oid, "output", o.name, "output", shapes[o.node])
        edges[(key(o.node), oid)] = None
    # Clusters: every scope that is a proper prefix of a visible box.
    clusters: dict[str, str | None] = {}
    for b in boxes.values():
        if b.kind in ("input", "output"):
            continue
        parts = b.id.split(".")
        for j in range(1, len(parts)):
            clusters.setdefault(".".join(parts[:j]), blocks.get(".".join(parts[:j])))
    macs = 0
    for node in arch.nodes:
        macs += REGISTRY[node.op].macs(node.attrs, [shapes[x] for x in node.inputs], node.shape)
    summary = f"{human(total_params)} params · {human(macs, 'MACs')}"
    return Diagram(arch.title, list(boxes.values()), list(edges), clusters, summary)


# ---------------------------------------------------------------- Graphviz

def _nesting(d: Diagram) -> dict[str, list[str]]:
    """Children of each cluster ("" is the top): sub-clusters as "cluster:NAME", then box ids."""
    children: dict[str, list[str]] = {"": []}
    for c in d.clusters:
        children.setdefault(c, [])
        parent = c.rsplit(".", 1)[0] if "." in c else ""
        children.setdefault(parent, []).append("cluster:" + c)
    for b in d.boxes:
        parent = b.id.rsplit(".", 1)[0] if "." in b.id and b.kind not in ("input", "output") else ""
        children.setdefault(parent if parent in d.clusters else "", []).append(b.id)
    return children


def _walk(d: Diagram):
    """The boxes in their nested clusters, depth first, for the emitters: ("open", cluster, label, depth),
    ("box", box, depth) and ("close", cluster, depth)."""
    children = _nesting(d)
    by_id = {b.id: b for b in d.boxes}

    def walk(scope: str, depth: int):
        for item in children.get(scope, []):
            if item.startswith("cluster:"):
                c = item[len("cluster:"):]
                yield "open", c, c + (f" ({d.clusters[c]})" if d.clusters[c] else ""), depth
                yield from walk(c, depth + 1)
                yield "close", c, depth
            else:
                yield "box", by_id[item], depth
    return walk("", 1)


def _q(text: str) -> str:
    return '"' + printable(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(d: Diagram) -> str:
    """Graphviz DOT text: node ids are the scope paths, clusters are `cluster_<scope path>`."""
    out = [f"digraph {_q(d.title)} {{",
           f'  graph [rankdir=TB, ordering=in, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.3, labelloc=t, '
           f"label={_q(d.title + ' · ' + d.summary)}];",
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, color="#7f8c9d", '
           'penwidth=0.8];',
           '  edge [color="#555555", arrowsize=0.6];']
    for event, *item, depth in _walk(d):  # the boxes nested in their clusters
        indent = "  " * depth
        if event == "open":
            c, label = item
            out.append(f"{indent}subgraph {_q('cluster_' + c)} {{")
            out.append(f'{indent}  label={_q(label)}; style="rounded,dashed"; color="#9aa5b1"; fontsize=9;')
        elif event == "close":
            out.append(f"{indent}}}")
        else:
            b = item[0]
            label = "\\n".join(printable(x).replace("\\", "\\\\").replace('"', '\\"') for x in b.lines())
            attrs = [f'label="{label}"', f'fillcolor="{_COLOURS.get(b.kind, _COLOURS["other"])}"']
            if b.kind == "merge":
                attrs.append("shape=ellipse")
            elif b.kind in ("input", "output"):
                attrs.append("shape=parallelogram")
            elif b.kind == "group":
                attrs.append('style="filled"')
            out.append(f"{indent}{_q(b.id)} [{', '.join(attrs)}];")
    for a, b in d.edges:
        out.append(f"  {_q(a)} -> {_q(b)};")
    out.append("}")
    return "\n".join(out) + "\n"


def run_dot(dot_text: str, fmt: str, timeout: float = 300) -> bytes:
    """Render DOT text with Graphviz's `dot` program into svg, png or pdf bytes."""
    exe = shutil.which("dot")
    if exe is None:
        raise SpecError(Diagnostic("Graphviz's 'dot' program is not installed: it renders SVG, PNG and PDF", None,
                                   "install Graphviz (apt-get install graphviz, brew install graphviz), or write "
                                   "Mermaid (-o net.mmd) or DOT text (-o net.dot), which need no program"))
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SpecError(Diagnostic(f"Graphviz took more than {timeout:.0f} s to lay the diagram out", None,
                                   "collapse it with --depth 1 or 2")) from None
    if proc.returncode != 0:
        raise SpecError(Diagnostic(f"Graphviz failed: {proc.stderr.decode(errors='replace').strip()[:500]}", None))
    return proc.stdout


# ---------------------------------------------------------------- Mermaid

def _m(text: str) -> str:
    return printable(text).replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(d: Diagram) -> str:
    """Mermaid flowchart text (renders in GitHub and GitLab pull requests without any program)."""
    ids = {b.id: f"n{i}" for i, b in enumerate(d.boxes)}
    cids = {c: f"c{i}" for i, c in enumerate(d.clusters)}
    out = ["---", f"title: {_m(d.title)} · {_m(d.summary)}", "---", "flowchart TB"]
    for event, *item, depth in _walk(d):
        indent = "  " * depth
        if event == "open":
            c, label = item
            out.append(f'{indent}subgraph {cids[c]} ["{_m(label)}"]')
        elif event == "close":
            out.append(f"{indent}end")
        else:
            b = item[0]
            text = "<br/>".join(_m(x) for x in b.lines())
            left, right = {"merge": ("((", "))"), "input": ("[/", "/]"), "output": ("[/", "/]")}.get(b.kind, ("[", "]"))
            out.append(f'{indent}{ids[b.id]}{left}"{text}"{right}:::{b.kind}')

    for a, b in d.edges:
        out.append(f"  {ids[a]} --> {ids[b]}")
    for kind, colour in _COLOURS.items():
        out.append(f"  classDef {kind} fill:{colour},stroke:#7f8c9d")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- files

def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The output format: the one asked for, else the file's extension."""
    if fmt:
        if fmt not in FORMATS:
            raise SpecError(f"unknown diagram format '{fmt}'", hint="one of " + ", ".join(FORMATS))
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in _EXTENSIONS:
        raise SpecError(f"cannot tell the diagram format from '{path}'",
                        hint="use an extension (.svg .png .pdf .dot .mmd .md) or --format")
    return _EXTENSIONS[ext]


def render_bytes(arch: Architecture | Diagram, fmt: str, depth: int | None = None) -> bytes:
    """The diagram of `arch` (or a Diagram already built) in one of FORMATS, as bytes."""
    d = arch if isinstance(arch, Diagram) else build(arch, depth)
    if fmt == "dot":
        return to_dot(d).encode()
    if fmt == "mermaid":
        return to_mermaid(d).encode()
    if fmt == "md":
        return ("```mermaid\n" + to_mermaid(d) + "```\n").encode()
    return run_dot(to_dot(d), fmt)


def render(arch: Architecture, path: str | Path, fmt: str | None = None, depth: int | None = None) -> Path:
    """Write the diagram of `arch` to `path`; the format from `fmt` or the extension."""
    data = render_bytes(arch, format_for(path, fmt), depth)
    return write_atomic(path, data)


__all__ = ["Box", "Diagram", "FORMATS", "build", "format_for", "render", "render_bytes", "run_dot",
           "to_dot", "to_mermaid"]

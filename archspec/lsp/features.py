"""What the editor asks of a document: hover text, definitions, completions, signatures, symbols and inlay
hints, computed from an `Analysis`. Free of pygls; lines and columns are 1-based, in characters."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import ops as op_table
from ..analysis import Layer, human, macs_text
from ..expressions import ExprEvaluator
from ..limits import DEFAULT_LIMITS
from ..ops.base import _REQUIRED, spec_repr
from ..parser import KEYWORDS as GRAMMAR_KEYWORDS
from .document import Analysis, Definition, doc_comment, use_targets

# The language's words, from where they are defined: the grammar's quoted words and the evaluator's builtins.
KEYWORDS = tuple(sorted(GRAMMAR_KEYWORDS))
BUILTINS = tuple(ExprEvaluator("", DEFAULT_LIMITS).builtins)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def word_at(line_text: str, col: int) -> tuple[str, int, int] | None:
    """The identifier under (or just before) 1-based column `col`: (word, start col, end col exclusive)."""
    for m in _WORD.finditer(line_text):
        if m.start() + 1 <= col <= m.end() + 1:
            return m.group(), m.start() + 1, m.end() + 1
    return None


def line_of(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line - 1].removesuffix("\r") if 1 <= line <= len(lines) else ""


def op_signature(name: str) -> tuple[str, list[str]]:
    """`conv(out, kernel, stride=1, ...)` and its parameters, from the op table."""
    params = []
    for arg, (_, default, _) in op_table.REGISTRY[name].Args.fields.items():
        params.append(arg if default is _REQUIRED else f"{arg}={spec_repr(default)}")
    return f"{name}({', '.join(params)})", params


def _block_params(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1:signature.rindex(")")]
    return [p.strip() for p in _split_top(inner) if p.strip()]


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


# ---------------------------------------------------------------- hover

def _shape(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def statement_key(a: Analysis, line: int, col: int) -> tuple[str, tuple[int, int] | None]:
    """What the cursor is on: ('call', key) for an op or block call, ('label', key) for a label (the key of
    the statement it labels), ('name', None) otherwise. A key is (line, col) of a statement, as spans record."""
    text = line_of(a.text, line)
    w = word_at(text, col)
    if w is None:
        return "none", None
    word, start, end = w
    j = end - 1
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "(":
        return "call", (line, start)
    k = end - 1
    while k < len(text) and (text[k] == "{" or text[k].isalnum() or text[k] == "_"):  # layer{i + 1}:
        if text[k] == "{":
            close = text.find("}", k)
            if close < 0:
                break
            k = close
        k += 1
    while k < len(text) and text[k] in " \t":
        k += 1
    if k < len(text) and text[k] == ":":
        k += 1
        while k < len(text) and text[k] in " \t":
            k += 1
        if k < len(text):
            return "label", (line, k + 1)
    return "name", None


def hover(a: Analysis, line: int, col: int) -> str | None:
    """Markdown for the hover at (line, col): a node's shape and costs, a block call's totals, a name's value."""
    kind, key = statement_key(a, line, col)
    if kind == "none":
        return None
    w = word_at(line_of(a.text, line), col)
    if kind == "name":  # a statement keyword makes a node too: the merge of `residual`, `dense`, `branch` ...
        kind, key = "keyword", (line, w[1])
    if a.report is not None and a.ir_line(key[0]) is not None:
        k = (a.file, a.ir_line(key[0]), key[1])
        text = _hover_nodes(a, a.nodes_at.get(k, [])) or _hover_scopes(a, a.scopes_at.get(k, []))
        if text:
            return text
        called = word_at(line_of(a.text, line), key[1])  # the op or block the statement calls, if it calls one
        blocks = a.module.blocks if a.module is not None else {}
        if (a.moved is None and called and statement_key(a, line, key[1])[0] == "call"
                and (called[0] in op_table.REGISTRY or called[0] in blocks)):
            # the IR is of this very text: this call makes no node in the analyzed variant
            name = _hover_name(a, w[0], line, col)
            return (name + "\n\n" if name else "") + f"*not built in {a.variant or a.report.name}*"
    return _hover_name(a, w[0], line, col)


def _costs(params: int, macs: int, field) -> str:
    return f"params **{params:,}** · {macs_text(macs)} · receptive field {field}"


def _hover_nodes(a: Analysis, indices: list[int]) -> str | None:
    if not indices:
        return None
    rows: list[Layer] = [a.report.layers[i] for i in indices]
    first = rows[0]
    out = [f"**{first.op}** `{first.name}` → `{_shape(first.shape)}`", "",
           _costs(first.params, first.macs, first.receptive_field)]
    if first.buffers:
        out[-1] += f" · buffers {first.buffers:,}"
    if len(rows) > 1:
        shapes: dict[tuple, int] = {}
        for r in rows:
            shapes[r.shape] = shapes.get(r.shape, 0) + 1
        out += ["", f"{len(rows)} instances in {a.variant or a.report.name}, together params "
                    f"{sum(r.params for r in rows):,}, {human(sum(r.macs for r in rows), 'MACs')}; shapes "
                + ", ".join(f"`{_shape(s)}`" + (f" ×{n}" if n > 1 else "") for s, n in shapes.items())]
    if first.op in op_table.REGISTRY:
        out += ["", f"`{op_signature(first.op)[0]}`: {op_table.REGISTRY[first.op].doc}"]
    return "\n".join(out)


def _hover_scopes(a: Analysis, scopes) -> str | None:
    stats = [(name, a.totals(name)) for name in dict.fromkeys(s.name for s in scopes)]
    stats = [(name, x) for name, x in stats if x is not None]
    if not stats:
        return None
    name, (params, macs, layers, last) = stats[0]
    row = a.report.layers[last]
    block = next((s.block for s in scopes if s.block), None)
    out = [f"**{block or 'scope'}** `{name}` → `{_shape(row.shape)}`", "",
           _costs(params, macs, row.receptive_field) + f" · {layers} layers"]
    if len(stats) > 1:
        out += ["", f"{len(stats)} instances in {a.variant or a.report.name}, together params "
                    f"{sum(x[0] for _, x in stats):,}, {human(sum(x[1] for _, x in stats), 'MACs')}"]
    if block and a.module is not None and block in a.module.blocks:
        out += ["", *_block_doc(a, block)]
    return "\n".join(out)


def _block_doc(a: Analysis, name: str) -> list[str]:
    b = a.module.blocks[name]
    sig = next((d.detail for d in a.definitions if d.kind == "block" and d.name == name), None)
    if sig is None:
        sig = f"{name}({', '.join(p for p, _ in b.params)})"
    doc = doc_comment(b.module.text, b.pos.line)
    return [f"```archspec\nblock {sig}\n```"] + ([doc] if doc else [])


def _visible(a: Analysis, name: str, line: int, col: int) -> list[Definition]:
    found = [d for d in a.definitions if d.name == name and d.visible_at(line, col)]
    local = [d for d in found if d.within is not None]
    # The analyzed variant's value first; then the innermost enclosing body's name.
    found.sort(key=lambda d: not d.detail.startswith(f"{a.variant}:"))
    return sorted(local, key=lambda d: -d.within[0]) or found


def _hover_name(a: Analysis, word: str, line: int, col: int) -> str | None:
    if word in op_table.REGISTRY:
        return f"```archspec\n{op_signature(word)[0]}\n```\n{op_table.REGISTRY[word].doc}"
    if a.module is not None and word in a.module.blocks:
        return "\n".join(_block_doc(a, word))
    defs = _visible(a, word, line, col)
    if not defs:
        return None
    d = defs[0]
    if d.kind in ("param", "variant value"):
        out = [f"param `{x.name} = {x.detail}`" for x in a.definitions if x.name == word and x.kind == "param"]
        if a.arch is not None and word in a.arch.params:
            out.append(f"value in {a.variant or a.arch.name}: `{spec_repr(a.arch.params[word])}`")
        values = [x.detail for x in a.definitions if x.name == word and x.kind == "variant value"]
        if values:
            out.append("variants: " + "; ".join(f"`{v}`" for v in values))
        return "\n\n".join(out)
    if d.kind == "variant":
        return f"```archspec\n{d.detail}\n```" + (" (analyzed)" if d.name == a.variant else "")
    detail = f" = {d.detail}" if d.detail and d.kind in ("value", "block parameter") else (
        f": {d.detail}" if d.detail else "")
    return f"{d.kind} `{word}{detail}`"


# ---------------------------------------------------------------- definitions

@dataclass(frozen=True)
class Target:
    path: Path
    line: int       # 1-based; 0 with col 0: the start of the file
    col: int
    end_line: int
    end_col: int


def definition(a: Analysis, line: int, col: int) -> Target | None:
    """Where the name at (line, col) is declared: a block (perhaps in a used file), a parameter, a saved
    tensor, a local value, a variant value; or the file a `use` path names."""
    for uline, start, end, target in use_targets(a):
        if uline == line and start <= col <= end:
            return Target(target, 1, 1, 1, 1)
    w = word_at(line_of(a.text, line), col)
    if w is None:
        return None
    word = w[0]
    if a.module is not None and word in a.module.blocks:
        p = a.module.blocks[word].pos
        return Target(a.path_of(p.file), p.line, p.col, p.end_line or p.line, p.end_col or p.col)
    defs = _visible(a, word, line, col)
    if not defs:
        return None
    p = defs[0].pos
    return Target(a.path_of(p.file), p.line, p.col, p.end_line or p.line, p.end_col or p.col)


# ---------------------------------------------------------------- completion

@dataclass(frozen=True)
class Completion:
    label: str
    kind: str       # op, block, param, value, keyword, function, argument
    detail: str = ""
    doc: str = ""


def completions(a: Analysis, line: int, col: int) -> list[Completion]:
    """Ops (with their signatures), blocks, names in scope, builtins and keywords starting with the word
    being typed."""
    w = word_at(line_of(a.text, line), col)
    prefix = w[0][:col - w[1]] if w else ""
    out: list[Completion] = []
    sig = signature_help(a, line, col)
    if sig is not None:  # inside a call: its keyword arguments first
        out += [Completion(p.split("=")[0].strip(), "argument", f"{sig.label.split('(')[0]}: {p}") for p in sig.params]
    for name, op in sorted(op_table.REGISTRY.items()):
        out.append(Completion(name, "op", op_signature(name)[0], op.doc))
    blocks = {d.name: d.detail for d in a.definitions if d.kind == "block"}
    if a.module is not None:
        for name, b in a.module.blocks.items():
            blocks.setdefault(name, f"{name}({', '.join(p for p, _ in b.params)})")
    out += [Completion(n, "block", sig) for n, sig in blocks.items()]
    seen = set(blocks)
    for d in a.definitions:
        if d.kind not in ("block", "variant") and d.name not in seen and d.visible_at(line, col):
            seen.add(d.name)
            out.append(Completion(d.name, "value" if d.within else "param", f"{d.kind}" + (
                f" = {d.detail}" if d.detail and d.kind != "variant value" else "")))
    out += [Completion(n, "function", f"{n}(...)") for n in BUILTINS]
    out += [Completion(k, "keyword") for k in KEYWORDS]
    return [c for c in out if c.label.startswith(prefix)]


# ---------------------------------------------------------------- signature help

@dataclass(frozen=True)
class Signature:
    label: str
    params: list[str]
    doc: str
    active: int


def signature_help(a: Analysis, line: int, col: int) -> Signature | None:
    """The signature of the op or block whose call encloses (line, col), and the argument being written."""
    lines = a.text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    offset = sum(len(x) + 1 for x in lines[:line - 1]) + min(col - 1, len(lines[line - 1]))
    depth, commas, i = 0, 0, offset - 1
    stop = max(0, offset - 4000)  # a call spans a few lines: do not scan a whole hostile file
    while i >= stop:
        ch = a.text[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                if ch != "(":
                    return None
                break
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        i -= 1
    else:
        return None
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*$", a.text[max(0, i - 200):i])
    if m is None:
        return None
    name = m.group(1)
    if name in op_table.REGISTRY:
        label, params = op_signature(name)
        doc = op_table.REGISTRY[name].doc
    else:
        sig = next((d.detail for d in a.definitions if d.kind == "block" and d.name == name), None)
        if sig is None and a.module is not None and name in a.module.blocks:
            sig = f"{name}({', '.join(p for p, _ in a.module.blocks[name].params)})"
        if sig is None:
            return None
        label, params, doc = sig, _block_params(sig), ""
    current = a.text[i + 1:offset].split(",")[-1]
    kw = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", current)
    active = commas
    if kw:
        names = [p.split("=")[0].strip() for p in params]
        if kw.group(1) in names:
            active = names.index(kw.group(1))
    return Signature(label, params, doc, min(active, max(len(params) - 1, 0)))


# ---------------------------------------------------------------- symbols and inlay hints

def symbols(a: Analysis) -> list[Definition]:
    """The document's outline: blocks, the network, variants, parameters and inputs."""
    return [d for d in a.definitions if d.kind in ("block", "network", "variant", "param", "input")]


def inlay_hints(a: Analysis, first: int = 1, last: int = 1 << 30) -> list[tuple[int, str]]:
    """(line, '-> [256, 56, 56]') for each line of the document between `first` and `last` that makes a
    tensor: the output of the last statement on the line, for the first instance of a block's body ('...' when
    the instances differ)."""
    if a.report is None:
        return []
    per_line: dict[int, tuple[int, str]] = {}

    def put(line: int, col: int, shapes: list[tuple]) -> None:
        if first <= line <= last and col >= per_line.get(line, (0, ""))[0]:
            more = " …" if any(s != shapes[0] for s in shapes) else ""
            per_line[line] = (col, f"-> {_shape(shapes[0])}{more}")

    back = None if a.moved is None else {old: new for new, old in a.moved.items()}
    here = lambda line: line if back is None else back.get(line, 0)  # noqa: E731  0: a line that changed
    for (file, line, col), scopes in a.scopes_at.items():
        line = here(line)
        if file == a.file:
            totals = [a.totals(s.name) for s in scopes]
            if all(totals):
                put(line, col, [a.report.layers[x[3]].shape for x in totals])
    for (file, line, col), indices in a.nodes_at.items():
        line = here(line)
        if file == a.file:
            put(line, col, [a.report.layers[i].shape for i in indices])
    return sorted((line, label) for line, (_, label) in per_line.items())

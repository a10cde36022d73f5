"""One document's analysis for the language server: the front end run on the editor's text, its problems by
file, and indexes from source positions to IR nodes, scopes and declarations.

Free of pygls, so tests and benchmarks call it directly. Positions here are archspec's: 1-based lines and
columns counted in characters; the server converts them to the client's units."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import Report, analyze
from ..budgets import check_budgets
from ..errors import Diagnostic, Pos, SpecError
from ..ir import Architecture, Scope
from ..limits import DEFAULT_LIMITS, Limits, gc_paused
from ..lower import lower
from ..modules import SpecModule, display_name, read_module
from .. import syntax
from ..parser import Token, parse

ERROR, WARNING, INFO = 1, 2, 3  # LSP's DiagnosticSeverity values

Key = tuple[str, int, int]  # (file, line, col) of a statement: what IR spans record


@dataclass(frozen=True)
class Problem:
    diagnostic: Diagnostic
    severity: int = ERROR


@dataclass(frozen=True)
class Definition:
    """A declared name: a block, parameter, variant, variant value, input, block parameter, local value,
    saved tensor or loop variable. `within` bounds where it is visible (a block's or the network's body)."""

    name: str
    kind: str
    pos: Pos
    within: tuple[int, int, int, int] | None = None  # (line, col, end_line, end_col) of the enclosing body
    detail: str = ""                                  # source text of its value or default, if any
    extent: tuple[int, int, int, int] | None = None  # the whole declaration (blocks, variants, the network)

    def visible_at(self, line: int, col: int) -> bool:
        if self.within is None:
            return True
        l0, c0, l1, c1 = self.within
        return (l0, c0) <= (line, col) <= (l1, c1)


@dataclass
class Analysis:
    path: Path
    file: str                      # the name positions use (display_name of path)
    text: str
    version: int | None
    variants: list[str]
    variant: str | None            # the variant analyzed
    module: SpecModule | None
    arch: Architecture | None
    report: Report | None
    problems: dict[str, list[Problem]]  # file (display name) -> its problems
    files: dict[str, Path]              # display name -> path, for every file reached
    definitions: list[Definition] = field(default_factory=list)
    parsed: bool = False                # the text parsed (definitions are current)
    nodes_at: dict[Key, list[int]] = field(default_factory=dict)    # span -> indices into report.layers
    scopes_at: dict[Key, list[Scope]] = field(default_factory=dict)
    moved: dict[int, int] | None = None  # line of `text` -> line of the text the IR was built from, if another
    _totals: dict[str, list[int]] | None = None

    def ir_line(self, line: int) -> int | None:
        """The line of the analyzed text that holds this line of the document (None: it changed since)."""
        return line if self.moved is None else self.moved.get(line)

    def text_of(self, file: str) -> str | None:
        """The text of a file as it was analyzed (the document or a file it uses)."""
        if file == self.file:
            return self.text
        for block in (self.module.blocks.values() if self.module is not None else ()):
            if block.module.file == file:
                return block.module.text
        return None

    @property
    def ok(self) -> bool:
        return self.report is not None

    def totals(self, scope: str) -> tuple[int, int, int, int] | None:
        """(params, MACs, layers, index of the last layer) of a scope: `Report.scope` for every scope at once
        (one pass over the layers; calling Report.scope per scope would be quadratic in a big network)."""
        if self._totals is None:
            self._totals = {}
            for i, row in enumerate(self.report.layers):
                parts = row.name.split(".")
                for k in range(1, len(parts) + 1):
                    t = self._totals.setdefault(".".join(parts[:k]), [0, 0, 0, i])
                    t[0] += row.params
                    t[1] += row.macs
                    t[2] += 1
                    t[3] = i
        t = self._totals.get(scope)
        return tuple(t) if t else None

    def path_of(self, file: str) -> Path:
        """The path of a file named in a position (display names are relative to the working directory)."""
        return self.files.get(file) or (Path.cwd() / file)


def analyze_text(path: Path, text: str, variant: str | None = None, version: int | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> Analysis:
    """Load `text` as the contents of `path` (files it uses come from disk), for `variant` if the spec has
    it, else its first variant; analyze it. Never raises for bad input: problems are in the result."""
    file = display_name(path)
    errors: list[Diagnostic] = []
    module = arch = report = None
    problems: list[Problem] = []
    variants: list[str] = []
    chosen = None
    try:
        with gc_paused():  # parsing too makes many small objects and no cycles (see limits.gc_paused)
            module = read_module(path, path.parent.resolve(), limits, errors, text=text)
            if module is not None:
                variants = list(module.variants)
                chosen = variant if variant in module.variants else (variants[0] if variants else None)
            if module is not None and not errors and (module.network is not None or module.variants):
                arch = lower(module, chosen, {}, limits, errors, None)
        if arch is not None and not errors:
            report = analyze(arch)
            problems += [Problem(d) for d in check_budgets(arch, report)]
            problems += _warnings(arch, report)
        else:
            arch = None
    except SpecError as exc:
        errors.extend(exc.diagnostics)
    except (RecursionError, MemoryError) as exc:  # bounded by Limits; kept out of the editor all the same
        errors.append(Diagnostic(f"the spec could not be analyzed: {type(exc).__name__}", Pos(file, 1, 1)))
    except Exception as exc:  # noqa: BLE001  a bug in archspec must not take the editor's server down
        errors.append(Diagnostic(f"internal error in archspec ({type(exc).__name__}: {exc})", Pos(file, 1, 1),
                                 "please report it with this spec"))
    problems = [Problem(d) for d in errors] + problems
    result = Analysis(path, file, text, version, variants, chosen, module, arch,
                      report, {}, _files(module, path, file))
    for p in problems:
        result.problems.setdefault(p.diagnostic.pos.file if p.diagnostic.pos else file, []).append(p)
    if module is not None:  # parsed within the limits (a cache hit now); a huge document is not parsed again
        result.definitions, result.parsed = definitions(text, file)
    if report is not None:
        _index(result)
    return result


def other_variants(a: Analysis, limits: Limits = DEFAULT_LIMITS, stop=lambda: False) -> dict[str, list[Problem]]:
    """Errors of the variants other than the analyzed one (`archspec check` checks them all), each noted with
    its variant; a problem already reported is not repeated. `stop()` true: give up (the text changed)."""
    if a.module is None or len(a.variants) < 2:
        return {}
    seen = {(p.diagnostic.message, p.diagnostic.pos) for ps in a.problems.values() for p in ps}
    out: dict[str, list[Problem]] = {}
    for name in a.variants:
        if name == a.variant:
            continue
        if stop():
            return {}
        errors: list[Diagnostic] = []
        try:
            with gc_paused():
                arch = lower(a.module, name, {}, limits, errors, None)
            if arch is not None and not errors:
                errors = check_budgets(arch)
        except SpecError as exc:
            errors = exc.diagnostics
        except Exception as exc:  # noqa: BLE001  as in analyze_text
            errors = [Diagnostic(f"internal error in archspec ({type(exc).__name__}: {exc})", Pos(a.file, 1, 1))]
        for d in errors:
            if (d.message, d.pos) in seen:
                continue
            seen.add((d.message, d.pos))
            noted = Diagnostic(d.message, d.pos, d.hint, [*d.notes, f"in variant '{name}'"])
            out.setdefault(d.pos.file if d.pos else a.file, []).append(Problem(noted))
    return out


def borrow(current: Analysis, good: Analysis) -> Analysis:
    """The current text (its definitions if it parses) with the IR of `good`, an earlier analysis of it or of a
    document that uses it; lines that changed since `good` map to no IR node."""
    old = good.text_of(current.file)
    moved = None
    if old is not None and old != current.text:
        moved = line_map(old, current.text)
    elif old is None:
        moved = {}
    return Analysis(current.path, current.file, current.text, current.version, current.variants, good.variant,
                    good.module, good.arch, good.report, current.problems, good.files,
                    current.definitions if current.parsed else good.definitions, current.parsed, good.nodes_at,
                    good.scopes_at, moved)


def line_map(old: str, new: str) -> dict[int, int]:
    """Line of `new` -> line of `old` (1-based) for the lines before and after the changed region: exact for
    one contiguous edit (what typing makes), and linear, unlike a diff, on any text."""
    a, b = old.split("\n"), new.split("\n")
    n = min(len(a), len(b))
    head = 0
    while head < n and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < n - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    out = {i: i for i in range(1, head + 1)}
    out.update((len(b) - k, len(a) - k) for k in range(tail))
    return out


def _warnings(arch: Architecture, report: Report) -> list[Problem]:
    """The analyzer's warnings (`archspec analyze` prints them), each at the node it names."""
    spans = {n.name: n.span for n in arch.nodes}
    out = []
    for text in report.warnings:
        span = spans.get(text.split(" (", 1)[0])
        pos = Pos(span.file, span.line, span.col) if span else None
        out.append(Problem(Diagnostic(text, pos), WARNING))
    return out


def _files(module: SpecModule | None, path: Path, file: str) -> dict[str, Path]:
    files = {file: path}
    if module is not None:
        for block in module.blocks.values():
            files.setdefault(block.module.file, block.module.path)
    return files


def _index(a: Analysis) -> None:
    for i, layer in enumerate(a.arch.nodes):
        s = layer.span
        a.nodes_at.setdefault((s.file, s.line, s.col), []).append(i)
    for scope in a.arch.scopes:
        s = scope.span
        a.scopes_at.setdefault((s.file, s.line, s.col), []).append(scope)


# ---------------------------------------------------------------- declarations

_USE = re.compile(r"""^[ \t]*use[ \t]+(["'])([^"'\n]*)\1""", re.M)


def definitions(text: str, file: str) -> tuple[list[Definition], bool]:
    """Every declared name of a spec, from its parse tree (parsing is cached); ([], False) if it does not parse."""
    try:
        tree = parse(text, file)
    except SpecError:
        return [], False
    except RecursionError:
        return [], False
    found = _Declarations(text, file)
    for item in tree.items:
        handler = found.handlers.get(type(item))
        if handler is not None:
            handler(item)
    return found.out, True


class _Declarations:
    """Collects the Definitions of one spec's syntax tree: one method per kind of declaration."""

    def __init__(self, text: str, file: str):
        self.text, self.file = text, file
        self.out: list[Definition] = []
        self.handlers = {syntax.ParamDecl: self.param_decl, syntax.InputDecl: self.input_decl,
                         syntax.VariantDecl: self.variant_decl, syntax.BlockDecl: self.block_decl,
                         syntax.NetworkDecl: self.network_decl}

    def src(self, node) -> str:
        if isinstance(node, Token):
            return node.value
        meta = getattr(node, "meta", None)
        if node is None or meta is None or getattr(meta, "empty", True):
            return ""
        return self.text[meta.start_pos:meta.end_pos]

    def pos(self, tok: Token) -> Pos:
        return Pos(self.file, tok.line, tok.column, tok.end_line, tok.end_column)

    @staticmethod
    def span(t):
        m = t.meta
        return (m.line, m.column, m.end_line, m.end_column) if not getattr(m, "empty", True) else None

    def add(self, tok: Token, kind: str, within, detail: str = "", extent=None) -> None:
        self.out.append(Definition(tok.value, kind, self.pos(tok), within, detail, extent))

    def body(self, body: syntax.Body, within) -> None:
        """Names bound inside a body (assignments, saves, loop variables), visible within it."""
        for node in syntax.statements(body):
            if isinstance(node, syntax.Assign):
                self.add(node.name, "value", within, self.src(node.value))
            elif isinstance(node, syntax.Save):
                self.add(node.name, "saved tensor", within)
            elif isinstance(node, syntax.Repeat) and node.var is not None:
                self.add(node.var, "loop variable", within)
            elif isinstance(node, syntax.For):
                for tok in node.targets.items:
                    self.add(tok, "loop variable", within)

    def param_decl(self, item: syntax.ParamDecl) -> None:
        self.add(item.name, "param", None, self.src(item.value))

    def input_decl(self, item: syntax.InputDecl) -> None:
        self.add(item.name, "input", None, self.src(item.shape))

    def variant_decl(self, item: syntax.VariantDecl) -> None:
        self.add(item.name, "variant", None, self.src(item), self.span(item))
        for a in item.assigns:
            self.add(a.name, "variant value", None, f"{item.name.value}: {self.src(a.value)}")

    def block_decl(self, item: syntax.BlockDecl) -> None:
        within = self.span(item)
        self.add(item.name, "block", None, block_signature(self.text, item), within)
        for prm in item.params:
            self.add(prm.name, "block parameter", within, self.src(prm.default) if prm.default is not None else "")
        self.body(item.body, within)

    def network_decl(self, item: syntax.NetworkDecl) -> None:
        extent = self.span(item)
        if extent is not None:
            self.out.append(Definition("network", "network", Pos(self.file, extent[0], extent[1], extent[0],
                                                                 extent[1] + 7), None, "", extent))
        self.body(item.body, extent)


def block_signature(text: str, block_decl: syntax.BlockDecl) -> str:
    """`bottleneck(planes, stride = 1)`: the block's header as written."""
    params = block_decl.params_meta
    inner = ""
    if params is not None and not getattr(params, "empty", True):
        inner = " ".join(text[params.start_pos:params.end_pos].split())
    return f"{block_decl.name.value}({inner})"


def doc_comment(text: str, line: int) -> str:
    """The comment lines right above line `line` (1-based), without their '#'."""
    lines = text.split("\n")
    out: list[str] = []
    i = line - 2
    while 0 <= i < len(lines) and lines[i].lstrip().startswith("#"):
        out.append(lines[i].lstrip()[1:].strip())
        i -= 1
    return "\n".join(reversed(out))


def use_targets(a: Analysis) -> list[tuple[int, int, int, Path]]:
    """(line, start col, end col, target path) of each `use "path"` of the document (1-based; the quotes
    excluded)."""
    out = []
    for m in _USE.finditer(a.text):
        line = a.text.count("\n", 0, m.start()) + 1
        col = m.start(2) - (a.text.rfind("\n", 0, m.start(2)) + 1) + 1
        out.append((line, col, col + len(m.group(2)), a.path.parent / m.group(2)))
    return out

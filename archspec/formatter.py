"""`archspec fmt`: rewrite a spec in canonical form, keeping its comments and its line structure.

A token-stream re-indenter, not a pretty-printer of the parse tree, so comments, blank lines and the
author's choice of one statement per line or `;`-joined short lines all survive. The rules:

- indentation is 4 spaces per open `{ }` body; a line that starts with `}` sits at its opener's level;
- a continuation line inside ( ) or [ ] keeps its offset from the statement's first line, or stays aligned
  just after its open bracket when it was;
- one space around binary operators, `=`, keywords and `{ }` of bodies; none inside brackets, before
  `,` `;` `:` `)` `]` or after unary minus; none inside a label's `{expr}` (`layer{i + 1}:`);
- a run of spaces is kept where it lines a token up with one of the line above or below (the columns
  of a table); after `;` one space or two (the zoo's style) are kept;
- a trailing comment gets at least two spaces before it (more are kept: comments aligned down a
  block); full-line comments follow the indentation;
- redundant `;` (at a line end, before `}`, doubled) are dropped; trailing whitespace is removed;
  at most two blank lines at the top level and one inside a body; none just inside a body's braces.

The result is checked: it must parse to the same tree as the input, else the input is left alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Diagnostic, Pos, SpecError
from .parser import KEYWORDS as _GRAMMAR_KEYWORDS

INDENT = 4

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f]+)
  | (?P<cont>\\\r?\n)
  | (?P<nl>\r?\n)
  | (?P<comment>\#[^\n]*)
  | (?P<number>(\d[\d_]*(\.\d[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?[KMG]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"[^"\n]*"|'[^'\n]*')
  | (?P<op>\*\*|//|==|!=|<=|>=|[<>=+\-*/%()\[\]{},:;.])
""", re.X)

# Names that act as operators or start a clause: spaced like operators, and an opening bracket after
# them is a list or a parenthesised expression, not a call or an index. The constants are values, and
# `order`/`training` are only keywords at a statement's start, where no bracket can follow.
KEYWORDS = _GRAMMAR_KEYWORDS - {"true", "false", "order", "training"}
BINARY = {"=", "+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">", "<=", ">="}
OPENERS = {"(": ")", "[": "]"}


@dataclass
class Tok:
    kind: str       # name, number, string, op, comment, cont
    text: str
    col: int        # column in the original line (tabs expanded), 0-based
    gap: int        # width of the whitespace before it on its line (-1 at the line start)
    role: str = ""  # for braces: "body" or "label"; for ':' "slice"; for +/- "unary"
    line: int = 0   # index of its physical line


@dataclass
class Line:
    indent: int          # original indentation width
    toks: list[Tok]
    cont: bool = False   # a continuation of the previous line (inside brackets, or after a backslash)


def _tokenize(text: str, file: str) -> list[Line]:
    lines: list[Line] = []
    cur: list[Tok] = []
    col = 0
    gap = -1
    indent = 0
    pos = 0
    lineno = 1
    line_start = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SpecError(Diagnostic(f"unexpected character {text[pos]!r}", Pos(file, lineno, pos - line_start + 1),
                                       "remove it, or check for a typo"))
        kind, value = m.lastgroup, m.group()
        if kind == "ws":
            width = len(value.expandtabs(INDENT)) if "\t" in value else len(value)
            if not cur and gap == -1:
                indent = width
            else:
                gap = width
            col += width
        elif kind in ("nl", "cont"):
            if kind == "cont":
                cur.append(Tok("cont", "\\", col, max(gap, 0) if cur else -1))
            lines.append(Line(indent, cur))
            cur, col, gap, indent = [], 0, -1, 0
            lineno += 1
            line_start = m.end()
        else:
            if kind == "comment":
                value = value.rstrip()
            cur.append(Tok(kind, value, col, gap if cur else -1))
            col += len(value)
            gap = 0
        pos = m.end()
    lines.append(Line(indent, cur))
    return lines


def _mark_roles(lines: list[Line]) -> None:
    """Tell label braces from body braces, slice colons from label colons, unary from binary +/-,
    and mark continuation lines."""
    toks = []
    for k, ln in enumerate(lines):
        for t in ln.toks:
            t.line = k
            if t.kind not in ("comment", "cont"):
                toks.append(t)
    match = _match_braces(toks)
    _mark_label_braces(toks, match)
    for t in toks:
        if t.text in "{}" and t.kind == "op" and not t.role:
            t.role = "body"
    _mark_slices_and_unary(toks)
    _mark_dashed_labels(toks, match)
    _mark_continuations(lines)


def _match_braces(toks: list[Tok]) -> dict[int, int]:
    """The index of each `{`'s closing `}`."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, t in enumerate(toks):
        if t.text == "{" and t.kind == "op":
            stack.append(i)
        elif t.text == "}" and t.kind == "op" and stack:
            match[stack.pop()] = i
    return match


def _mark_label_braces(toks: list[Tok], match: dict[int, int]) -> None:
    """A label brace follows a name (or another label brace) and its group is followed by more label parts
    and then ':'.  `repeat n {` is followed by a line end instead."""
    for i, t in enumerate(toks):
        if t.text != "{" or t.kind != "op" or i not in match:
            continue
        prev = toks[i - 1] if i else None
        if prev is None or not (prev.kind == "name" and (prev.text not in KEYWORDS or t.gap == 0)
                                or prev.role == "label_close" or _label_word(prev) and t.gap == 0):
            continue
        j = match[i] + 1
        is_label = False
        while j < len(toks) and toks[j].line == t.line:  # a label sits on one line
            nxt = toks[j]
            if nxt.text == ":" and nxt.kind == "op":
                is_label = True
                break
            if nxt.kind == "name" and nxt.text not in KEYWORDS or _label_word(nxt) and nxt.gap == 0:
                j += 1
            elif nxt.text == "{" and j in match:
                j = match[j] + 1
            else:
                break
        if is_label:
            t.role = "label"
            toks[match[i]].role = "label_close"


def _mark_slices_and_unary(toks: list[Tok]) -> None:
    """Colons inside [ ] are slices; +/- after an operator or at an expression's start are unary."""
    brackets: list[str] = []
    prev = None
    for t in toks:
        if t.kind == "op":
            if t.text in ("(", "["):
                brackets.append(t.text)
            elif t.text in (")", "]") and brackets:
                brackets.pop()
            elif t.text == ":" and brackets and brackets[-1] == "[":
                t.role = "slice"
            elif t.text in ("+", "-") and (prev is None or _is_operator(prev) or prev.kind == "name" and prev.text in KEYWORDS
                                          and prev.text != "in"):
                t.role = "unary"
        prev = t


def _mark_continuations(lines: list[Line]) -> None:
    """A line is a continuation when it starts inside ( ) or [ ] or follows a backslash."""
    depth = 0
    after_backslash = False
    for ln in lines:
        ln.cont = depth > 0 or after_backslash
        after_backslash = False
        for t in ln.toks:
            if t.kind == "op" and t.text in ("(", "["):
                depth += 1
            elif t.kind == "op" and t.text in (")", "]"):
                depth = max(0, depth - 1)
            elif t.kind == "cont":
                after_backslash = True


def _label_word(t: Tok) -> bool:
    """A piece a dashed label is glued from: a name, a number or '-' (block1-0 tokenizes as three)."""
    return t.kind in ("name", "number") or t.kind == "op" and t.text == "-"


def _mark_dashed_labels(toks: list[Tok], match: dict[int, int]) -> None:
    """Mark the pieces of a label with '-' or a leading digit (block1-0:, block{i}-{j}:, 0:) at a
    statement's start, so that they stay glued: such a label is one token to the parser."""
    for i, t in enumerate(toks):
        prev = toks[i - 1] if i else None
        if not (prev is None or prev.line != t.line or prev.kind == "op" and prev.text in (";", "{", "}")
                and prev.role not in ("label", "label_close")) or not _label_word(t) or t.text == "-":
            continue
        run, j = [t], i + 1
        while j < len(toks) and toks[j].line == t.line and toks[j].gap == 0:
            nxt = toks[j]
            if nxt.role == "label" and j in match:
                j = match[j] + 1
                run.append(toks[j - 1])
            elif _label_word(nxt) and nxt.role != "label_close":
                run.append(nxt)
                j += 1
            else:
                break
        dashed = any(x.kind == "op" and x.text == "-" or x.kind == "number" for x in run)
        if dashed and j < len(toks) and toks[j].kind == "op" and toks[j].text == ":" and toks[j].line == t.line:
            for x in run:
                if x.role != "label_close":
                    x.role = "labelword"


def _is_operator(t: Tok) -> bool:
    if t.kind != "op":
        return False
    if t.text in ("(", "[", ",", ";", ":") or t.text in BINARY or t.role == "unary":
        return True
    return t.text == "{"


def _space(a: Tok, b: Tok) -> int:
    """Canonical number of spaces between two tokens on one line."""
    if b.kind == "comment":  # at least two spaces; more are the author's (comments aligned down a block)
        return max(2, b.gap)
    if a.kind == "op" and a.text == ";" and b.gap >= 2:  # the zoo's style: two spaces between statements
        return 2
    if b.kind == "cont":
        return 1
    at, bt = a.text if a.kind == "op" else None, b.text if b.kind == "op" else None
    if at == "{" and a.role == "label" or bt == "}" and b.role == "label_close":
        return 0
    if bt == "{" and b.role == "label":
        return 0
    if at == "}" and a.role == "label_close":
        return 0 if bt in (":", "{") or b.kind == "name" or b.role == "labelword" else 1
    if a.role == "labelword" and (b.role in ("labelword", "label") or bt == ":"):
        return 0
    if bt in (",", ";", ")", "]", "."):
        return 0
    if bt == ":":
        return 0
    if at in ("(", "[", "."):
        return 0
    if at == ":" and a.role == "slice" or bt == ":" or b.role == "slice":
        return 0
    if a.role == "unary":
        return 0
    if bt in ("(", "["):
        callable_ = a.kind in ("name", "string") and a.text not in KEYWORDS or at in (")", "]")
        return 0 if callable_ else 1
    if at == "{" and bt == "}":
        return 0
    if a.kind == "name" and a.text == "in" and bt == ".":
        return 0
    return 1


def _keeps_run(a: Tok, b: Tok, near: tuple[set[int], set[int]]) -> bool:
    """Whether the run of spaces before `b` is kept: when `b` lines up with a token of the line above or
    below (a table's column, a column of comments), or for the project's two spaces after `;`."""
    if a.role in ("label", "slice", "labelword") or b.role in ("label", "label_close", "slice", "labelword"):
        return False
    starts, ends = near
    return b.col in starts or (b.kind != "comment" and b.col + len(b.text) in ends)


def _drop_semicolons(lines: list[Line]) -> None:
    """Remove `;` that separate nothing: doubled, after `{`, before `}`, at a line end or line start."""
    for ln in lines:
        out: list[Tok] = []
        for i, t in enumerate(ln.toks):
            if t.kind == "op" and t.text == ";":
                prev = out[-1] if out else None
                nxt = next((x for x in ln.toks[i + 1:]), None)
                if (prev is None or prev.text in (";", "{") and prev.kind == "op" and prev.role != "label"
                        or nxt is None or nxt.kind == "comment"
                        or nxt.kind == "op" and nxt.text in (";", "}") and nxt.role != "label_close"):
                    if nxt is not None and out and nxt.gap < t.gap:
                        nxt.gap = t.gap
                    continue
            out.append(t)
        if out and ln.toks and out[0] is not ln.toks[0]:
            out[0].gap = -1
        ln.toks = out


def format_text(text: str, file: str = "<text>") -> str:
    """The canonical form of a spec's text. Raises SpecError if the text does not parse."""
    from .parser import parse
    before = parse(text, file)
    # Kept alignment depends on columns, which formatting moves: iterate to a fixed point, so that
    # formatting is idempotent; should that ever fail, drop alignment, which converges at once.
    out = _format(text, file)
    for _ in range(4):
        again = _format(out, file)
        if again == out:
            break
        out = again
    else:
        out = _format(_format(text, file, align=False), file, align=False)
    try:
        after = parse(out, file)
    except SpecError as exc:  # a formatter bug: never write a spec that no longer parses
        raise SpecError(Diagnostic("the formatter produced text that does not parse; the file was left alone",
                                   Pos(file, 1, 1), f"please report this bug: {exc.first.message}")) from None
    if before != after:
        raise SpecError(Diagnostic("the formatter changed the meaning of the spec; the file was left alone",
                                   Pos(file, 1, 1), "please report this bug"))
    return out


def _format(text: str, file: str, align: bool = True) -> str:
    lines = _tokenize(text.replace("\r\n", "\n"), file)
    columns = [({t.col for t in ln.toks}, {t.col + len(t.text) for t in ln.toks}) for ln in lines]
    none: tuple[set[int], set[int]] = (set(), set())
    _mark_roles(lines)
    _drop_semicolons(lines)
    out: list[str] = []
    depth = 0                         # open body braces
    open_brackets: list[tuple[int, int]] = []  # (original column after the bracket, new column after it)
    base_orig = base_new = 0          # indentation of the current statement's first line, before and after
    blank_run = 0
    prev_opened_body = False
    for k, ln in enumerate(lines):
        if not ln.toks:
            if not ln.cont:
                blank_run += 1
            continue
        first = ln.toks[0]
        closes_first = first.kind == "op" and first.text == "}" and first.role == "body"
        if ln.cont:
            new_indent = base_new + max(0, ln.indent - base_orig)
            if open_brackets and ln.indent == open_brackets[-1][0]:
                new_indent = open_brackets[-1][1]
        else:
            new_indent = INDENT * max(0, depth - (1 if closes_first else 0))
            base_orig, base_new = ln.indent, new_indent
        # Blank lines before this one.
        if blank_run and out and not ln.cont:
            limit = 2 if depth == 0 else 1
            if prev_opened_body or closes_first:
                limit = 0
            out.extend([""] * min(blank_run, limit))
        blank_run = 0
        above, below = columns[k - 1] if k else none, columns[k + 1] if k + 1 < len(lines) else none
        near = (above[0] | below[0], above[1] | below[1]) if align else none
        text_, depth = _render_line(ln, new_indent, near, open_brackets, depth)
        out.append(text_)
        last = [t for t in ln.toks if t.kind != "comment"]
        prev_opened_body = bool(last) and last[-1].text == "{" and last[-1].role == "body"
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _render_line(ln: Line, indent: int, near: tuple[set[int], set[int]], open_brackets: list[tuple[int, int]],
                 depth: int) -> tuple[str, int]:
    """One line's new text, and the body depth after it; `open_brackets` is updated in place."""
    parts = [" " * indent]
    col = indent
    prev = None
    for t in ln.toks:
        if prev is not None:
            n = _space(prev, t)
            if n >= 1 and t.gap > n and _keeps_run(prev, t, near):
                n = t.gap
            parts.append(" " * n)
            col += n
        parts.append(t.text)
        col += len(t.text)
        if t.kind == "op":
            if t.text in OPENERS:
                open_brackets.append((t.col + 1, col))
            elif t.text in (")", "]") and open_brackets:
                open_brackets.pop()
            elif t.text == "{" and t.role == "body":
                depth += 1
            elif t.text == "}" and t.role == "body":
                depth = max(0, depth - 1)
        prev = t
    return "".join(parts).rstrip(), depth

"""`archspec fmt`: rewrite a spec in canonical form, keeping its comments and its line structure.

A re-indenter of the parser's own token stream (parser.lex: the lexer's tokens and the comments it skips),
not a pretty-printer of the parse tree, so comments, blank lines and the author's choice of one statement
per line or `;`-joined short lines all survive. The rules:

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

from dataclasses import dataclass

from .errors import Diagnostic, Pos, SpecError
from .parser import KEYWORDS as _GRAMMAR_KEYWORDS, lex

INDENT = 4

# The lexer's terminals as the formatter's kinds of token: the grammar's quoted words are names, its other
# quoted strings operators. A label is one token to the lexer (block1-0, or layer and _x around {i}).
_KINDS = {"NAME": "name", "LABEL": "name", "LABEL_HEAD": "name", "LABEL_TAIL": "name", "NUMBER": "number",
          "STRING": "string", "COMMENT": "comment"}

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
    term: str = ""  # the lexer's terminal


@dataclass
class Line:
    indent: int          # original indentation width
    toks: list[Tok]
    cont: bool = False   # a continuation of the previous line (inside brackets, or after a backslash)


def _tokenize(text: str, file: str) -> list[Line]:
    """The lexer's tokens (parser.lex) in physical lines, with their columns and the blanks before them.
    Between two tokens lie only what the grammar ignores: blanks, newlines and backslash-newlines."""
    lines: list[Line] = []
    cur: list[Tok] = []
    col, gap, indent, pos = 0, -1, 0, 0
    for tok in [*(t for t in lex(text, file) if t.type != "_NL"), None]:
        for k, piece in enumerate(text[pos:len(text) if tok is None else tok.start_pos].split("\n")):
            if k:
                lines.append(Line(indent, cur))
                cur, col, gap, indent = [], 0, -1, 0
            blank = piece.rstrip("\\")
            if blank:
                width = len(blank.expandtabs(INDENT)) if "\t" in blank else len(blank)
                if not cur and gap == -1:
                    indent = width
                else:
                    gap = width
                col += width
            if blank != piece:  # a backslash-newline
                cur.append(Tok("cont", "\\", col, max(gap, 0) if cur else -1))
        if tok is None:
            break
        kind = _KINDS.get(tok.type) or ("name" if tok.value.isidentifier() else "op")
        value = tok.value.rstrip() if kind == "comment" else tok.value
        cur.append(Tok(kind, value, col, gap if cur else -1, term=tok.type))
        col += len(value)
        gap = 0
        pos = tok.end_pos
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
    _mark_labels(toks)
    for t in toks:
        if t.text in "{}" and t.kind == "op" and not t.role:
            t.role = "body"
    _mark_slices_and_unary(toks)
    _mark_continuations(lines)


def _mark_labels(toks: list[Tok]) -> None:
    """Mark the braces of an interpolated label (layer{i + 1}:), and the pieces of a label with '-' or a
    leading digit (block1-0:, block{i}-{j}:, 0:), which stay glued to each other and to ':'."""
    for i, t in enumerate(toks):
        if t.term not in ("LABEL", "LABEL_HEAD"):
            continue
        pieces, inside, j = [t], False, i + 1
        while t.term == "LABEL_HEAD" and (inside or toks[j].text != ":"):  # no braces nest in a label's {expr}
            nxt = toks[j]
            if nxt.kind == "op" and nxt.text in "{}":
                inside = nxt.text == "{"
                nxt.role = "label" if inside else "label_close"
            elif nxt.term == "LABEL_TAIL":
                pieces.append(nxt)
            j += 1
        if any("-" in p.text or p.text[0].isdigit() for p in pieces):
            for p in pieces:
                p.role = "labelword"


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
    lex(text, file)  # first: the parse that lexes `text` for _format also caches the tree that parse() returns
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

"""Text to parse tree: the Lark LALR parser, built once, with friendly syntax errors."""
from __future__ import annotations

from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import Diagnostic, Pos, SpecError
from .resources import grammar_file

# Display names for terminals in "expected ..." messages.
_PRETTY = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "COMP": "a comparison",
    "_NL": "a new line", "$END": "the end of the file",
}


class _BracketNewlines:
    """Postlexer: a newline inside ( ) or [ ] is whitespace, so argument lists and tables may span lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_file().read_text(encoding="utf-8"),
        parser="lalr",
        postlex=_BracketNewlines(),
        propagate_positions=True,
        maybe_placeholders=True,
    )


def _pretty_terminal(name: str) -> str:
    if name in _PRETTY:
        return _PRETTY[name]
    try:
        term = _parser().get_terminal(name)
    except KeyError:
        return name
    pattern = term.pattern
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "new line"
    return f"'{tok.value}'"


def parse(text: str, file: str) -> Tree:
    """Parse spec text; raise SpecError with file:line:col on a syntax error."""
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError(_syntax_diagnostic(exc, text, file)) from None


def _syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line = getattr(exc, "line", None) or 1
    col = getattr(exc, "column", None) or 1
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        hint = "strings use double quotes" if ch == "'" else "remove it, or check for a typo"
        return Diagnostic(f"unexpected character {ch!r}", Pos(file, line, col, line, col + 1), hint)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text.splitlines() or [""]
        last = len(lines)
        expected = sorted({_pretty_terminal(t) for t in getattr(exc, "expected", ()) if t != "_NL"})
        hint = "a closing '}' or ')' may be missing" if any(x in ("'}'", "')'", "']'") for x in expected) else None
        return Diagnostic("unexpected end of file" + (f"; expected {', '.join(expected[:6])}" if expected else ""),
                          Pos(file, last, len(lines[-1]) + 1), hint)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = sorted({_pretty_terminal(t) for t in exc.expected})
    end_col = (tok.end_column or col + 1) if tok.type != "_NL" else col + 1
    hint = None
    if tok.type == "_NL" or tok.value == "}":
        if "')'" in expected:
            hint = "a closing ')' is missing"
        elif "']'" in expected:
            hint = "a closing ']' is missing"
    if hint is None and tok.type == "NAME" and tok.value in ("else", "shortcut"):
        hint = f"'{tok.value}' must follow the closing '}}' on the same line"
    if hint is None and tok.value == "=" and "'('" in expected:
        hint = "an assignment is 'name = value' on a line of its own"
    if hint is None and expected:
        hint = "expected " + ", ".join(expected[:8]) + (" ..." if len(expected) > 8 else "")
    return Diagnostic(f"unexpected {_describe(tok)}", Pos(file, line, col, line, end_col), hint)


def pos_of(item, file: str) -> Pos:
    """The position of a tree or token."""
    if isinstance(item, Token):
        return Pos(file, item.line or 1, item.column or 1, item.end_line or item.line or 1, item.end_column or (item.column or 1) + 1)
    meta = item.meta
    if getattr(meta, "empty", True):
        return Pos(file, 1, 1)
    return Pos(file, meta.line, meta.column, meta.end_line, meta.end_column)

"""Text to parse tree: the Lark LALR parser, built once, with friendly syntax errors."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import lark
from lark import Lark, Token, Tree
from lark.grammar import Rule
from lark.lexer import TerminalDef
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


_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _tables_file():
    return grammar_file().with_suffix(".lark.json")


def _fingerprint(grammar: str) -> str:
    return hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest()


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # Building the LALR tables takes ~80 ms; loading them from the JSON file beside the grammar ~7 ms.
    # The file is used only when it was made from this grammar by this Lark version.
    grammar = grammar_file().read_text(encoding="utf-8")
    try:
        saved = json.loads(_tables_file().read_text(encoding="utf-8"), object_hook=_decode)
        if saved.get("fingerprint") == _fingerprint(grammar):
            return Lark._load_from_dict(saved["data"], saved["memo"], postlex=_BracketNewlines())
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return Lark(grammar, postlex=_BracketNewlines(), **_OPTIONS)


def tables_json() -> str:
    """The parser's tables as JSON, for grammar/archspec.lark.json (scripts/gen_grammar_tables.py)."""
    grammar = grammar_file().read_text(encoding="utf-8")
    data, memo = Lark(grammar, **_OPTIONS).memo_serialize([TerminalDef, Rule])
    return json.dumps(_encode({"fingerprint": _fingerprint(grammar), "data": data, "memo": memo}),
                      separators=(",", ":"), sort_keys=True)


def _encode(o):
    """JSON keeps neither tuples nor non-string keys: tag them."""
    if isinstance(o, dict):
        if all(isinstance(k, str) for k in o):
            return {k: _encode(v) for k, v in o.items()}
        return {"__items__": [[_encode(k), _encode(v)] for k, v in o.items()]}
    if isinstance(o, tuple):
        return {"__tuple__": [_encode(v) for v in o]}
    if isinstance(o, list):
        return [_encode(v) for v in o]
    return o


def _decode(d: dict):
    if len(d) == 1 and "__items__" in d:
        return {k: v for k, v in d["__items__"]}
    if len(d) == 1 and "__tuple__" in d:
        return tuple(d["__tuple__"])
    return d


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


_TREES: dict[tuple[str, str], Tree] = {}
_TREE_CACHE_SIZE = 64


def parse(text: str, file: str) -> Tree:
    """Parse spec text; raise SpecError with file:line:col on a syntax error.

    Trees are cached by (text, file): loading the same spec at another variant or parameter set,
    as analyze/diff/check do, parses it once. Trees are never mutated after parsing."""
    key = (text, file)
    tree = _TREES.get(key)
    if tree is not None:
        return tree
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError(_syntax_diagnostic(exc, text, file)) from None
    if len(_TREES) >= _TREE_CACHE_SIZE:
        _TREES.pop(next(iter(_TREES)))
    _TREES[key] = tree
    return tree


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

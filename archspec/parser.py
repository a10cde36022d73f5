"""Text to parse tree: the Lark LALR parser, built once, with friendly syntax errors.

The parser is Lark's standalone one, generated from grammar/archspec.lark into vendor/lark_parser.py
(scripts/gen_parser.py), so that loading a spec imports neither lark nor its grammar compiler."""
from __future__ import annotations

import re
import threading
from functools import lru_cache

from .vendor import lark_parser
from .syntax import Spec, build
from .errors import Diagnostic, Pos, SpecError
from .vendor.lark_parser import (Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput,
                               UnexpectedToken)
from .resources import grammar_file

__all__ = ["KEYWORDS", "RESERVED", "Token", "Tree", "lex", "parse", "pos_of"]

# The language's keywords, written once: the words the grammar quotes (read off the vendored copy, so no file
# is opened). `training` is only a keyword right after `output`; elsewhere it is an ordinary name.
KEYWORDS = frozenset(re.findall(r'"([a-z]+)"', lark_parser.GRAMMAR))
RESERVED = KEYWORDS - {"training"}  # the words no assignment may bind

# Display names for terminals in "expected ..." messages.
_PRETTY = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "COMP": "a comparison",
    "_NL": "a new line", "$END": "the end of the file",
}


class _Misplaced(Exception):
    """A mistake the postlexer sees sooner and better than the LALR parser would; carries its token."""

    def __init__(self, tok: Token, message: str, hint: str | None = None, width: int = 0):
        super().__init__(message)
        self.tok, self.message, self.hint, self.width = tok, message, hint, width


# Per-parse state shared with the postlexer (the parser is built once and shared).
_STATE = threading.local()
_OPENERS = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
_MAX_NESTING = 100  # Limits.max_nesting; parse() takes the caller's


class _BracketNewlines:
    """Postlexer: a newline inside ( ) or [ ] is whitespace, so argument lists and tables may span lines.

    It also bounds bracket nesting (deep trees would exhaust Python's stack later), remembers the open
    brackets for 'not closed' errors, and reports a malformed number or an else/shortcut that starts a
    line right where they are, rather than where the parser would notice."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        opened = _STATE.opened = []
        limit = getattr(_STATE, "max_nesting", _MAX_NESTING)
        prev = None
        record = getattr(_STATE, "record", None)
        for tok in stream:
            if record is not None:
                record.append(tok)
            kind = tok.type
            if kind in _OPENERS:
                opened.append(tok)
                if len(opened) > limit:
                    raise _Misplaced(tok, f"brackets nested deeper than {limit} levels",
                                     "split the expression or the statements into named parts")
            elif kind in _CLOSERS and opened and opened[-1].type == _CLOSERS[kind]:
                opened.pop()
            if kind in ("LPAR", "LSQB"):
                depth += 1
            elif kind in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif kind == "_NL" and depth:
                continue
            if prev is not None and prev.type == "NUMBER" and prev.end_pos == tok.start_pos and (
                    tok.value[:1].isalnum() or tok.value[:1] in "._"):
                word = _word_at(prev.start_pos)
                raise _Misplaced(prev, f"malformed number '{word}'",
                                 "a number is digits with an optional fraction, exponent and K, M or G suffix",
                                 len(word))
            if (prev is not None and prev.end_pos == tok.start_pos and prev.type not in ("NAME", "LABEL", "NUMBER")
                    and prev.value.isidentifier() and (tok.value[:1].isalnum() or tok.value[:1] == "_")):
                # Where no name may follow, the contextual lexer reads 'paramp' as the keyword 'param' + 'p'
                word = _word_at(prev.start_pos)
                raise _Misplaced(prev, f"unexpected '{word}'", f"did you mean '{prev.value} {word[len(prev.value):]}'?",
                                 len(word))
            if tok.value in ("else", "shortcut") and kind != "LABEL" and (prev is None or prev.type == "_NL"):
                raise _Misplaced(tok, f"'{tok.value}' at the start of a line",
                                 f"'{tok.value}' must follow the closing '}}' on the same line: '}} {tok.value} {{'")
            prev = tok
            yield tok


def _word_at(start: int) -> str:
    text = getattr(_STATE, "text", "")
    end = start
    while end < len(text) and (text[end].isalnum() or text[end] in "._"):
        end += 1
    return text[start:end]


@lru_cache(maxsize=1)
def _parser() -> Lark:
    if grammar_file().read_text(encoding="utf-8") != lark_parser.GRAMMAR:
        # Only a checkout can get here: the grammar was edited and the parser not regenerated.
        raise SpecError(Diagnostic(f"{grammar_file()} changed since archspec/vendor/lark_parser.py was made", None,
                                   "run: python scripts/gen_parser.py"))
    return lark_parser.Lark_StandAlone(postlex=_BracketNewlines(), lexer_callbacks={"COMMENT": _record_comment})


def _record_comment(tok: Token) -> Token:
    record = getattr(_STATE, "record", None)
    if record is not None:
        record.append(tok)
    return tok


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


_TREES: dict[tuple[str, str, int], Spec] = {}
_TREE_CACHE_SIZE = 64
_TOKENS: dict[str, list[Token]] = {}
_TOKEN_CACHE_SIZE = 8  # the formatter lexes a text and its formatted form


def parse(text: str, file: str, max_nesting: int = _MAX_NESTING) -> Spec:
    """Parse spec text into its typed syntax tree (syntax.py); raise SpecError with file:line:col on a
    syntax error.

    Trees are cached by (text, file): loading the same spec at another variant or parameter set,
    as analyze/diff/check do, parses it once. Trees are never mutated after parsing."""
    tree = _TREES.get((text, file, max_nesting))
    return tree if tree is not None else _parse(text, file, max_nesting)


def lex(text: str, file: str) -> list[Token]:
    """The tokens the parser reads in `text`, in order, with the comments it skips (COMMENT) and the
    newlines it drops inside brackets (_NL); what lies between them is blanks, newlines and backslash-newlines.
    The formatter lays these out. The lexer is contextual, so this parses `text`, raising SpecError as
    parse() does; tokens are cached like trees, and must not be mutated."""
    toks = _TOKENS.get(text)
    if toks is None:
        _STATE.record = toks = []
        try:
            _parse(text, file, _MAX_NESTING)
        finally:
            _STATE.record = None
        _remember(_TOKENS, text, toks, _TOKEN_CACHE_SIZE)
    return toks


def _parse(text: str, file: str, max_nesting: int) -> Spec:
    _STATE.text, _STATE.max_nesting = text, max_nesting
    try:
        tree = build(_parser().parse(text))
    except _Misplaced as exc:
        pos = pos_of(exc.tok, file)
        if exc.width:
            pos = Pos(file, pos.line, pos.col, pos.line, pos.col + exc.width)
        raise SpecError(Diagnostic(exc.message, pos, exc.hint)) from None
    except UnexpectedInput as exc:
        raise SpecError(_syntax_diagnostic(exc, text, file)) from None
    finally:
        _STATE.text = ""
    _remember(_TREES, (text, file, max_nesting), tree, _TREE_CACHE_SIZE)
    return tree


def _remember(cache: dict, key, value, size: int) -> None:
    if key not in cache and len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line = getattr(exc, "line", None) or 1
    col = getattr(exc, "column", None) or 1
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        hint = "a string opens and closes on one line" if ch in "'\"" else "remove it, or check for a typo"
        return Diagnostic(f"unexpected character {ch!r}", Pos(file, line, col, line, col + 1), hint)
    glued = _malformed_number(exc, text, file)
    if glued is not None:
        return glued
    unclosed = _unclosed(exc, text, file)
    if unclosed is not None:
        return unclosed
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


def _malformed_number(exc: UnexpectedInput, text: str, file: str) -> Diagnostic | None:
    """'12x', '0x10', '25m': the lexer splits them into a number and a name, and the parser stumbles on the
    name; the mistake is the whole word, a malformed number."""
    tok = getattr(exc, "token", None)
    start = getattr(tok, "start_pos", None)
    if tok is None or tok.type in ("$END", "_NL") or not start or not (text[start].isalnum() or text[start] in "._"):
        return None
    begin = start
    while begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] in "._"):
        begin -= 1
    if begin == start:
        return None
    end = begin
    while end < len(text) and (text[end].isalnum() or text[end] in "._"):
        end += 1
    line = text.count("\n", 0, begin) + 1
    col = begin - (text.rfind("\n", 0, begin) + 1) + 1
    pos = Pos(file, line, col, line, col + end - begin)
    word = text[begin:end]
    if text[begin].isdigit() or text[begin] == "." and text[begin + 1:begin + 2].isdigit():
        return Diagnostic(f"malformed number '{word}'", pos,
                          "a number is digits with an optional fraction, exponent and K, M or G suffix")
    if "." not in text[begin:start]:  # a keyword glued to a name: 'elserelu' read as 'else' + 'relu'
        return Diagnostic(f"unexpected '{word}'", pos, f"did you mean '{text[begin:start]} {text[start:end]}'?")
    return None


def _unclosed(exc: UnexpectedInput, text: str, file: str) -> Diagnostic | None:
    """'( is not closed' at the bracket itself, when the parser stumbled on a later line (a newline inside
    brackets is whitespace, so a missing ')' shows only at the next statement) or at the end of the file."""
    opened = getattr(_STATE, "opened", None)
    if not opened:
        return None
    last = opened[-1]
    closer = {"LPAR": "')'", "LSQB": "']'", "LBRACE": "'}'"}[last.type]
    tok = getattr(exc, "token", None)
    at_end = isinstance(exc, UnexpectedEOF) or (tok is not None and tok.type == "$END")
    if at_end:
        hint = f"add the closing {closer}"
    elif tok is not None and tok.line and tok.line > last.line and last.type != "LBRACE":
        expected = {_pretty_terminal(t) for t in getattr(exc, "expected", ())}
        if closer not in expected:
            return None
        also = " or a ','" if "','" in expected else ""
        hint = f"expected {closer}{also} before {_describe(tok)} at {tok.line}:{tok.column}"
    else:
        return None
    return Diagnostic(f"'{last.value}' is not closed", pos_of(last, file), hint)


def pos_of(item, file: str) -> Pos:
    """The position of a tree or token."""
    if isinstance(item, Token):
        return Pos(file, item.line or 1, item.column or 1, item.end_line or item.line or 1, item.end_column or (item.column or 1) + 1)
    meta = item.meta
    if getattr(meta, "empty", True):
        return Pos(file, 1, 1)
    return Pos(file, meta.line, meta.column, meta.end_line, meta.end_column)

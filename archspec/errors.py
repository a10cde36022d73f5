"""Source spans and the one error type of the language: every problem names file:line:col."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    """A position in a spec file (1-based line and column)."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    message: str
    pos: Pos | None = None
    hint: str | None = None
    notes: list[str] = field(default_factory=list)
    # A mistake in a load argument, not in the spec: ("variant", name) or ("param", name); the CLI names its option.
    arg: tuple[str, str] | None = None

    def render(self, sources: dict[str, str] | None = None, _lines: dict | None = None) -> str:
        """Render like a compiler: message, location, the line, a caret, the hint. `_lines` caches the
        split lines of each file across the diagnostics of one error."""
        out = [f"error: {printable(self.message)}"]
        if self.pos is not None:
            out.append(f"  --> {printable(str(self.pos))}")
            cache = {} if _lines is None else _lines
            lines = cache.get(self.pos.file)
            if lines is None:
                text = (sources or {}).get(self.pos.file)
                if text is None:
                    text = _SOURCES.get(self.pos.file)
                lines = cache[self.pos.file] = text.split("\n") if text else []  # as the lexer counts lines
            if 1 <= self.pos.line <= len(lines):
                src = printable(lines[self.pos.line - 1].removesuffix("\r").expandtabs(1))
                gutter = str(self.pos.line)
                width = 1
                if self.pos.end_line == self.pos.line and self.pos.end_col > self.pos.col:
                    width = self.pos.end_col - self.pos.col
                width = max(1, min(width, len(src) - self.pos.col + 1))
                out.append(f"{' ' * len(gutter)} |")
                out.append(f"{gutter} | {src}")
                out.append(f"{' ' * len(gutter)} | {' ' * (self.pos.col - 1)}{'^' * width}")
        for note in self.notes:
            out.append(f"  = note: {printable(note)}")
        if self.hint:
            out.append(f"  = hint: {printable(self.hint)}")
        return "\n".join(out)


def printable(text: str) -> str:
    """Control characters from a spec (terminal escapes in a string or comment, line breaks in a file name)
    are shown as U+FFFD, one for one so that columns still line up: printing a hostile spec's line must not
    drive the terminal, and text put in a comment of generated code cannot end the comment's line. The one
    escaping function for spec text shown anywhere."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def md_code(text) -> str:
    """Text as a Markdown code span in a table cell: no line break or control character, no backtick to
    close the span, no '|' to split the cell (names and file names cannot inject headings or links)."""
    return "`" + printable(str(text)).replace("`", "'").replace("|", "\\|") + "`"


# The spec files this process has read (modules.read_module remembers them), by display name: a diagnostic
# quotes its line from here and never opens the file its position names (an IR dump's span may name
# /etc/passwd, /dev/zero or a FIFO).
_SOURCES: dict[str, str] = {}
_MAX_SOURCES = 256


def remember_source(file: str, text: str) -> None:
    _SOURCES.pop(file, None)
    _SOURCES[file] = text
    if len(_SOURCES) > _MAX_SOURCES:
        _SOURCES.pop(next(iter(_SOURCES)))


class SpecError(Exception):
    """One or more problems in a spec, each with its position. The only error archspec raises for bad input."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str, pos: Pos | None = None, hint: str | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, pos, hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.sources: dict[str, str] = {}
        super().__init__(self.render())

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    def render(self) -> str:
        lines: dict = {}
        text = "\n\n".join(d.render(self.sources, lines) for d in self.diagnostics)
        if len(self.diagnostics) > 1:
            text += f"\n\n{len(self.diagnostics)} errors"
        return text

    def __str__(self) -> str:
        return self.render()


def did_you_mean(name: str, candidates) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"

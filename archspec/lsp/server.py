"""The language server (`archspec lsp`): pygls over stdio, on top of document.py and features.py.

Each document is analyzed in one worker thread, so the server keeps reading messages while a spec is
lowered. A change is analyzed at once when the document was quiet for `debounce` seconds, else after that
much quiet (typing is coalesced); a request waits for the analysis of the current text at most
`REQUEST_WAIT` seconds and otherwise answers from the last good analysis, so no request outlasts a slow or
hostile document. Other variants of a family file are checked once the document has been quiet for half a
second, after its own diagnostics are published.

Settings (initializationOptions, or the `archspec` section of workspace/didChangeConfiguration):
    variant      the variant to analyze in family files, or {file name: variant} (default: each file's first)
    debounce     seconds of quiet before a burst of edits is analyzed (default 0.15)
    inlayHints   show `-> [C, H, W]` after each line (default true)
"""
from __future__ import annotations

import asyncio
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..errors import Diagnostic
from ..limits import DEFAULT_LIMITS
from . import features
from .document import Analysis, Problem, analyze_text, borrow, other_variants

REQUEST_WAIT = 0.5  # seconds a request waits for a running analysis before answering from the last good one
_WHERE = re.compile(r"(\S+\.arch):(\d+):(\d+)")
_KINDS = {"op": t.CompletionItemKind.Function, "block": t.CompletionItemKind.Class,
          "param": t.CompletionItemKind.Constant, "value": t.CompletionItemKind.Variable,
          "function": t.CompletionItemKind.Function, "keyword": t.CompletionItemKind.Keyword,
          "argument": t.CompletionItemKind.Property}
_SYMBOLS = {"block": t.SymbolKind.Class, "variant": t.SymbolKind.EnumMember, "param": t.SymbolKind.Constant,
            "input": t.SymbolKind.Variable, "network": t.SymbolKind.Module}


@dataclass
class DocState:
    latest: Analysis | None = None       # of the newest text analyzed
    good: Analysis | None = None         # the last one that analyzed without errors
    running: asyncio.Future | None = None
    running_version: int | None = None
    pending: asyncio.Task | None = None  # the debounced diagnostics run
    last_change: float = 0.0


class ArchspecServer(LanguageServer):
    def __init__(self):
        super().__init__("archspec", __version__, text_document_sync_kind=t.TextDocumentSyncKind.Incremental)
        self.docs: dict[str, DocState] = {}
        self.settings: dict[str, Any] = {"variant": None, "debounce": 0.15, "inlayHints": True}
        self.own: dict[str, tuple[int | None, list[t.Diagnostic]]] = {}  # uri -> (version, its problems)
        self.found: dict[str, dict[str, list[t.Diagnostic]]] = {}  # uri -> {uri of a document using it: problems}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archspec-analysis")
        # The other variants are checked aside, so that a request never queues behind them.
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archspec-variants")

    # ---- settings

    def configure(self, options: Any) -> None:
        if isinstance(options, dict):
            options = options.get("archspec", options)
            if isinstance(options, dict):
                for key in self.settings:
                    if key in options:
                        self.settings[key] = options[key]

    def variant_for(self, path: Path) -> str | None:
        """The `variant` setting: one name for every file, or {file name: variant}."""
        chosen = self.settings["variant"]
        if isinstance(chosen, dict):
            chosen = chosen.get(path.name, chosen.get(path.stem))
        return chosen if isinstance(chosen, str) else None

    def debounce(self) -> float:
        try:
            return min(max(float(self.settings["debounce"]), 0.0), 5.0)
        except (TypeError, ValueError):
            return 0.15

    # ---- analysis

    async def analysis(self, uri: str, wait: float = REQUEST_WAIT) -> Analysis | None:
        """The analysis of the document's current text, or the newest one at hand if that takes longer than
        `wait` seconds."""
        doc = self.workspace.get_text_document(uri)
        st = self.docs.setdefault(uri, DocState())
        if st.latest is not None and st.latest.version == doc.version:
            return st.latest
        if st.running is None or st.running_version != doc.version:
            path = Path(to_fs_path(uri) or uri)
            variant = self.variant_for(path)
            st.running = asyncio.get_running_loop().run_in_executor(
                self.pool, analyze_text, path, doc.source, variant, doc.version)
            st.running_version = doc.version
        try:
            result = await asyncio.wait_for(asyncio.shield(st.running), wait)
        except asyncio.TimeoutError:
            return st.latest
        if st.latest is None or (result.version or 0) >= (st.latest.version or 0):
            st.latest = result
            if result.ok:
                st.good = result
        return result

    async def usable(self, uri: str) -> Analysis | None:
        """For requests: the current analysis, its definitions and IR taken from the last good one when the
        text does not analyze (a half-typed line must not blank out hovers and completion)."""
        a = await self.analysis(uri)
        if a is None:
            return None
        good = self.docs[uri].good
        if not a.ok and a.module is not None and a.module.network is None and not a.variants:
            # A library of blocks: its nodes are in the analysis of a document that uses it.
            good = next((d.good for d in self.docs.values() if d.good is not None and a.file in d.good.files
                         and d.good.file != a.file), good)
        doc = self.workspace.get_text_document(uri)
        if a.version != doc.version:  # the current text's analysis is taking long: answer for it from this one
            good = a if a.ok else good
            a = Analysis(a.path, a.file, doc.source, doc.version, a.variants, None, None, None, None, {}, a.files)
        if a.ok or good is None:
            return a
        return borrow(a, good)

    def refresh_all(self, but: str | None = None) -> None:
        """Analyze every open document again (a setting or a file they may use changed)."""
        for uri, st in self.docs.items():
            if uri != but and uri in self.workspace.text_documents:
                st.latest = st.running = None
                self.schedule(uri)

    def schedule(self, uri: str) -> None:
        """Debounced diagnostics: now if the document was quiet, else after `debounce` seconds of quiet."""
        st = self.docs.setdefault(uri, DocState())
        now = time.monotonic()
        delay = 0.0 if now - st.last_change >= self.debounce() else self.debounce()
        st.last_change = now
        if st.pending is not None and not st.pending.done():
            st.pending.cancel()
        st.pending = asyncio.ensure_future(self._diagnose(uri, delay))

    async def _diagnose(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if uri not in self.workspace.text_documents:
            return
        a = await self.analysis(uri, wait=60.0)
        if a is None or a.version != self.workspace.get_text_document(uri).version:
            return  # a newer text is on its way
        self.publish(uri, a, {})
        if a.module is not None and len(a.variants) > 1:
            # After a longer pause only: a burst of edits must not wait behind the other variants' checks.
            await asyncio.sleep(max(0.5, 3 * self.debounce()))
            doc = self.workspace.get_text_document(uri)
            if doc.version != a.version:
                return
            more = await asyncio.get_running_loop().run_in_executor(
                self.background, lambda: other_variants(a, stop=lambda: doc.version != a.version))
            if more and a.version == self.workspace.get_text_document(uri).version:
                self.publish(uri, a, more)

    def publish(self, uri: str, a: Analysis, more: dict[str, list[Problem]]) -> None:
        """Problems of the document to it; problems of files it uses to those, with a pointer at the
        document's `use` line. A document's list is its own problems plus those other documents found in it
        (a block of a library shows its errors only when a network calls it)."""
        own: list[t.Diagnostic] = []
        found: dict[str, list[t.Diagnostic]] = {}
        uses = {target.resolve(): line for line, _, _, target in features.use_targets(a)}
        for file, problems in [*a.problems.items(), *more.items()]:
            if file == a.file:
                own += [self.to_lsp(p, a.text.split("\n")) for p in problems]
                continue
            path = a.path_of(file).resolve()
            lines = _lines_of(a, file)
            found.setdefault(from_fs_path(str(path)), []).extend(self.to_lsp(p, lines) for p in problems)
            line = uses.get(path, 1)
            s = "s" if len(problems) > 1 else ""
            pointer = self.to_lsp(Problem(Diagnostic(f"{len(problems)} problem{s} in '{file}': "
                                                     f"{problems[0].diagnostic.message}", None),
                                          problems[0].severity), [])
            pointer.range = t.Range(t.Position(line - 1, 0), t.Position(line - 1, 0))
            own.append(pointer)
        self.own[uri] = (a.version, own)
        touched = {uri}
        for target, by in self.found.items():
            if by.pop(uri, None) is not None:
                touched.add(target)
        for target, items in found.items():
            self.found.setdefault(target, {})[uri] = items
            touched.add(target)
        for target in sorted(touched, key=lambda x: x == uri):  # the document's own list last
            self.flush(target)

    def flush(self, uri: str) -> None:
        """Publish a document's list: its own problems and those found in it by the documents using it."""
        version, items = self.own.get(uri, (None, []))
        seen, out = set(), []
        for d in [*items, *(d for by in self.found.get(uri, {}).values() for d in by)]:
            key = (d.range.start.line, d.range.start.character, d.message)
            if key not in seen:
                seen.add(key)
                out.append(d)
        self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=out,
                                                                          version=version))

    def forget(self, uri: str) -> None:
        """A document closed: drop its problems and what it found in other files."""
        self.own.pop(uri, None)
        touched = {uri}
        for target, by in self.found.items():
            if by.pop(uri, None) is not None:
                touched.add(target)
        for target in touched:
            self.flush(target)

    # ---- positions

    def unit(self) -> str:
        enc = self.workspace.position_encoding
        return str(getattr(enc, "value", enc) or "utf-16")

    def to_client(self, line_text: str, col: int) -> int:
        """1-based character column -> 0-based column in the client's units."""
        head = line_text[:max(col - 1, 0)]
        unit = self.unit()
        if unit == "utf-8":
            return len(head.encode("utf-8", errors="replace"))
        if unit == "utf-32":
            return len(head)
        return len(head.encode("utf-16-le", errors="surrogatepass")) // 2

    def from_client(self, lines: list[str], pos: t.Position) -> tuple[int, int]:
        """A client position -> 1-based (line, character column)."""
        text = lines[pos.line] if 0 <= pos.line < len(lines) else ""
        unit = self.unit()
        if unit == "utf-32" or text.isascii():
            return pos.line + 1, pos.character + 1
        units = 0
        for i, ch in enumerate(text):
            if units >= pos.character:
                return pos.line + 1, i + 1
            units += len(ch.encode("utf-8")) if unit == "utf-8" else (2 if ord(ch) > 0xFFFF else 1)
        return pos.line + 1, len(text) + 1

    def range(self, lines: list[str], line: int, col: int, end_line: int = 0, end_col: int = 0) -> t.Range:
        """An archspec span (1-based; a missing end: the word at the start) -> an LSP range."""
        line = max(line, 1)
        text = lines[line - 1] if line <= len(lines) else ""
        if not end_line or (end_line, end_col) <= (line, col):
            w = features.word_at(text, col)
            end_line, end_col = line, (w[2] if w and w[1] == col else col + 1)
        etext = lines[end_line - 1] if end_line <= len(lines) else ""
        return t.Range(t.Position(line - 1, self.to_client(text, col)),
                       t.Position(end_line - 1, self.to_client(etext, end_col)))

    def to_lsp(self, p: Problem, lines: list[str]) -> t.Diagnostic:
        d = p.diagnostic
        pos = d.pos
        rng = self.range(lines, pos.line, pos.col, pos.end_line, pos.end_col) if pos else t.Range(
            t.Position(0, 0), t.Position(0, 0))
        message = d.message + "".join(f"\nnote: {n}" for n in d.notes) + (f"\nhint: {d.hint}" if d.hint else "")
        related = []
        for note in d.notes:  # "in block 'basic' called at specs/resnet.arch:48:39": a link to the call
            for file, line, col in _WHERE.findall(note):
                path = Path(file) if Path(file).is_absolute() else Path.cwd() / file
                here = t.Position(int(line) - 1, int(col) - 1)  # columns as characters: close enough for a link
                related.append(t.DiagnosticRelatedInformation(
                    t.Location(from_fs_path(str(path)), t.Range(here, here)), note))
        return t.Diagnostic(range=rng, message=message, severity=t.DiagnosticSeverity(p.severity), source="archspec",
                            related_information=related or None)

    async def at(self, uri: str, position: t.Position) -> tuple[Analysis | None, int, int]:
        a = await self.usable(uri)
        if a is None:
            return None, 0, 0
        line, col = self.from_client(a.text.split("\n"), position)
        return a, line, col


def _lines_of(a: Analysis, file: str) -> list[str]:
    """The lines of a file the document uses (to convert columns): as loaded, else from disk."""
    if a.module is not None:
        for b in a.module.blocks.values():
            if b.module.file == file:
                return b.module.text.split("\n")
    try:
        with a.path_of(file).open("rb") as f:
            return f.read(DEFAULT_LIMITS.max_file_bytes).decode("utf-8", errors="replace").split("\n")
    except OSError:
        return []


def _markup(text: str) -> t.MarkupContent:
    return t.MarkupContent(kind=t.MarkupKind.Markdown, value=text)


def build_server() -> ArchspecServer:
    """The server with its features registered."""
    server = ArchspecServer()
    _register_sync(server)
    _register_navigation(server)
    _register_views(server)
    return server


def _register_sync(server: ArchspecServer) -> None:
    """The document's life: open, change, save, close, and the settings."""

    @server.feature(t.INITIALIZE)
    def initialize(ls: ArchspecServer, params: t.InitializeParams):
        ls.configure(params.initialization_options)

    @server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: ArchspecServer, params: t.DidChangeConfigurationParams):
        ls.configure(params.settings)
        ls.refresh_all()

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ArchspecServer, params: t.DidOpenTextDocumentParams):
        ls.docs[params.text_document.uri] = DocState()
        ls.schedule(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ArchspecServer, params: t.DidChangeTextDocumentParams):
        ls.schedule(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ArchspecServer, params: t.DidSaveTextDocumentParams):
        ls.refresh_all(but=params.text_document.uri)  # documents that use it read it from disk

    @server.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: ArchspecServer, params: t.DidChangeWatchedFilesParams):
        ls.refresh_all()

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchspecServer, params: t.DidCloseTextDocumentParams):
        st = ls.docs.pop(params.text_document.uri, None)
        if st is not None and st.pending is not None:
            st.pending.cancel()
        ls.forget(params.text_document.uri)


def _register_navigation(server: ArchspecServer) -> None:
    """Requests at a position: hover, definition, completion, signature help."""

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    async def hover(ls: ArchspecServer, params: t.HoverParams):
        a, line, col = await ls.at(params.text_document.uri, params.position)
        text = features.hover(a, line, col) if a is not None else None
        return t.Hover(contents=_markup(text)) if text else None

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    async def definition(ls: ArchspecServer, params: t.DefinitionParams):
        a, line, col = await ls.at(params.text_document.uri, params.position)
        target = features.definition(a, line, col) if a is not None else None
        if target is None:
            return None
        uri = from_fs_path(str(target.path.resolve()))
        same = target.path.resolve() == a.path.resolve()
        lines = a.text.split("\n") if same else _lines_of(a, next(
            (f for f, p in a.files.items() if p.resolve() == target.path.resolve()), ""))
        return t.Location(uri=uri, range=ls.range(lines, target.line, target.col, target.end_line, target.end_col))

    @server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=[]))
    async def completion(ls: ArchspecServer, params: t.CompletionParams):
        a, line, col = await ls.at(params.text_document.uri, params.position)
        if a is None:
            return None
        items = [t.CompletionItem(label=c.label, kind=_KINDS[c.kind], detail=c.detail or None,
                                  documentation=_markup(c.doc) if c.doc else None)
                 for c in features.completions(a, line, col)]
        return t.CompletionList(is_incomplete=False, items=items)

    @server.feature(t.TEXT_DOCUMENT_SIGNATURE_HELP, t.SignatureHelpOptions(trigger_characters=["(", ","]))
    async def signature_help(ls: ArchspecServer, params: t.SignatureHelpParams):
        a, line, col = await ls.at(params.text_document.uri, params.position)
        sig = features.signature_help(a, line, col) if a is not None else None
        if sig is None:
            return None
        info = t.SignatureInformation(label=sig.label, documentation=_markup(sig.doc) if sig.doc else None,
                                      parameters=[t.ParameterInformation(label=p) for p in sig.params])
        return t.SignatureHelp(signatures=[info], active_signature=0, active_parameter=sig.active)


def _register_views(server: ArchspecServer) -> None:
    """Requests about the whole document: its symbols, its formatting, its inlay hints."""

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def document_symbol(ls: ArchspecServer, params: t.DocumentSymbolParams):
        a = await ls.usable(params.text_document.uri)
        if a is None:
            return []
        lines = a.text.split("\n")
        out = []
        for d in features.symbols(a):
            name = ls.range(lines, d.pos.line, d.pos.col, d.pos.end_line, d.pos.end_col)
            whole = ls.range(lines, *d.extent) if d.extent else name
            out.append(t.DocumentSymbol(name=d.name, kind=_SYMBOLS[d.kind], range=whole, selection_range=name,
                                        detail=(a.variant or "") if d.kind == "network" else d.detail[:80] or d.kind))
        return out

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: ArchspecServer, params: t.DocumentFormattingParams):
        from ..errors import SpecError
        from ..formatter import format_text
        doc = ls.workspace.get_text_document(params.text_document.uri)
        if len(doc.source) > DEFAULT_LIMITS.max_file_bytes:
            return None  # as `archspec fmt`: the diagnostics say the file is over the limit
        try:
            new = format_text(doc.source, Path(doc.path or "spec.arch").name)
        except (SpecError, RecursionError):
            return None  # the diagnostics say why
        if new == doc.source:
            return []
        lines = doc.source.split("\n")
        end = t.Position(len(lines) - 1, ls.to_client(lines[-1], len(lines[-1]) + 1))
        return [t.TextEdit(range=t.Range(t.Position(0, 0), end), new_text=new)]

    @server.feature(t.TEXT_DOCUMENT_INLAY_HINT, t.InlayHintOptions())
    async def inlay_hint(ls: ArchspecServer, params: t.InlayHintParams):
        if not ls.settings.get("inlayHints", True):
            return []
        a = await ls.usable(params.text_document.uri)
        if a is None:
            return []
        lines = a.text.split("\n")
        hints = []
        for line, label in features.inlay_hints(a, params.range.start.line + 1, params.range.end.line + 1):
            text = lines[line - 1] if line <= len(lines) else ""
            hints.append(t.InlayHint(position=t.Position(line - 1, ls.to_client(text, len(text.rstrip()) + 1)),
                                     label=label, kind=t.InlayHintKind.Type, padding_left=True))
        return hints


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the protocol owns stdout: a stray print must not corrupt it
    build_server().start_io(stdin, stdout)
    return 0

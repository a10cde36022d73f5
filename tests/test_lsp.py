"""`archspec lsp`: the real server over stdio, driven by a real LSP client (pytest-lsp), plus the Pygments
lexer. Diagnostics are checked against the error fixtures' declared positions, hover figures against
torchvision's state_dict shapes (tests/reference), and every request against the 1 s bound."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from helpers import ROOT as REPO

SPECS = REPO / "specs"
FIXTURES = REPO / "tests" / "fixtures" / "errors"
REFERENCE = REPO / "tests" / "reference" / "torchvision_layouts.json"
SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "archspec", "lsp"],
                            server_env={**os.environ, "PYTHONPATH": str(REPO)})
REQUEST_BOUND = 1.0  # seconds: the bound on any request
_ERROR = re.compile(r"^# error: (?P<msg>.*) @ (?:(?P<file>\S+\.arch):)?(?P<line>\d+):(?P<col>\d+)\s*$", re.M)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), initialization_options={"debounce": 0.05}))
    yield
    await lsp_client.shutdown_session()


def uri_of(path: Path) -> str:
    return path.resolve().as_uri()


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = uri_of(path)
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(
        uri=uri, language_id="archspec", version=version, text=path.read_text() if text is None else text)))
    return uri


def change(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        t.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [t.TextDocumentContentChangeWholeDocument(text=text)]))


async def diagnostics(client: LanguageClient, uri: str, version: int, timeout: float = 10.0) -> list[t.Diagnostic]:
    """The diagnostics published for `uri` at `version` (waiting for them)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [p for p in published(client) if p.uri == uri and p.version == version]
        if got:
            return list(got[-1].diagnostics)
        assert time.monotonic() < deadline, f"no diagnostics for {uri} version {version}"
        await asyncio.sleep(0.005)  # polled: the client records a notification after waking its waiters


def published(client: LanguageClient) -> list[t.PublishDiagnosticsParams]:
    """Every publishDiagnostics the client received, in order (recorded by the handler below)."""
    return client.published


def where(text: str, needle: str, line_hint: str | None = None) -> t.Position:
    """Position (0-based) of `needle` in `text`, on the first line containing `line_hint` if given."""
    for i, line in enumerate(text.split("\n")):
        if (line_hint or needle) in line and needle in line:
            return t.Position(i, line.index(needle))
    raise AssertionError(f"{needle!r} not in the text")


async def timed(coro):
    start = time.perf_counter()
    result = await coro
    elapsed = time.perf_counter() - start
    assert elapsed < REQUEST_BOUND, f"the request took {elapsed:.3f} s"
    return result


def hover_text(h: t.Hover | None) -> str:
    assert h is not None
    return h.contents.value


@pytest.fixture
def lsp(client: LanguageClient):
    """The client, with publishDiagnostics recorded with their versions."""
    store = client.published = []
    original = client.protocol.fm.features.get(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    def keep(params: t.PublishDiagnosticsParams):
        store.append(params)
        if original is not None:
            original(params)

    client.protocol.fm.features[t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = keep
    return client


# ---------------------------------------------------------------- diagnostics

BROKEN = """arch t
input x: [3, 32, 32]
network {
    conv(8, 3, pad = 1)
    cnv(4, 3)
}
"""


@pytest.mark.asyncio
async def test_diagnostic_at_its_range_then_empty_when_fixed(lsp: LanguageClient, tmp_path):
    path = tmp_path / "t.arch"
    path.write_text(BROKEN)
    uri = open_doc(lsp, path)
    got = await diagnostics(lsp, uri, 1)
    assert len(got) == 1
    d = got[0]
    start = where(BROKEN, "cnv")
    assert d.range.start == start and d.range.end == t.Position(start.line, start.character + 3)
    assert "unknown" in d.message and "'conv'" in d.message  # the hint travels with the message
    assert d.severity == t.DiagnosticSeverity.Error
    # fixed by an incremental edit, as editors send them: insert 'o' after the 'c'
    at = t.Position(start.line, start.character + 1)
    lsp.text_document_did_change(t.DidChangeTextDocumentParams(
        t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        [t.TextDocumentContentChangePartial(range=t.Range(at, at), text="o")]))
    assert await diagnostics(lsp, uri, 2) == []


@pytest.mark.asyncio
async def test_ranges_in_utf16_units(lsp: LanguageClient, tmp_path):
    """VS Code counts columns in UTF-16 units: an emoji before the mistake is two of them."""
    text = 'arch t\ninput x: [3, 8, 8]\nnetwork {\n    s = "\U0001f642\U0001f642"; cnv(4, 3)\n}\n'
    path = tmp_path / "u.arch"
    path.write_text(text, encoding="utf-8")
    uri = open_doc(lsp, path, text)
    got = await diagnostics(lsp, uri, 1)
    line = text.split("\n")[3]
    col = len(line[:line.index("cnv")].encode("utf-16-le")) // 2
    assert [(d.range.start.line, d.range.start.character, d.range.end.character) for d in got] == [(3, col, col + 3)]
    h = await lsp.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri=uri), t.Position(3, col + 1)))
    assert h is None or "cnv" not in h.contents.value


def _fixtures() -> list[Path]:
    """The fixtures that fail as they are (not through command-line overrides)."""
    return sorted(p for p in FIXTURES.glob("*.arch") if _ERROR.search(p.read_text()) and "# args:" not in p.read_text())


@pytest.mark.asyncio
async def test_error_fixtures_at_their_declared_positions_and_documents(lsp: LanguageClient):
    """Every bad-input fixture, opened in the editor, gets its declared error at its line:col, in the document
    the fixture names (a used file's errors go to that file)."""
    fixtures = _fixtures()
    assert len(fixtures) > 100
    for path in fixtures:
        text = path.read_text()
        want = _ERROR.search(text)
        uri = open_doc(lsp, path, text)
        mine = await diagnostics(lsp, uri, 1)
        assert mine, f"{path.name}: no diagnostic"
        target = uri if want["file"] is None else uri_of(FIXTURES / want["file"])
        line, col = int(want["line"]) - 1, int(want["col"]) - 1
        if target == uri:
            found = mine
        else:
            found = [d for p in published(lsp) if p.uri == target for d in p.diagnostics]
            # the document itself points at the file with the problem
            assert any("problem" in d.message and want["file"].split("/")[-1] in d.message for d in mine), path.name
        assert any(d.range.start == t.Position(line, col) and want["msg"].split(" (")[0][:40] in d.message
                   for d in found), f"{path.name}: want {want['msg']!r} at {line + 1}:{col + 1}, got " + "; ".join(
            f"{d.range.start.line + 1}:{d.range.start.character + 1} {d.message.splitlines()[0]}" for d in found)
        lsp.text_document_did_close(t.DidCloseTextDocumentParams(t.TextDocumentIdentifier(uri=uri)))


@pytest.mark.asyncio
async def test_used_file_errors_go_to_the_used_document(lsp: LanguageClient, tmp_path):
    (tmp_path / "lib.arch").write_text("block stem(c) {\n    conv(c, 3, pad = 1)\n    rleu()\n}\n")
    main = tmp_path / "main.arch"
    text = 'arch m\nuse "lib.arch"\ninput x: [3, 16, 16]\nnetwork {\n    stem(8)\n}\n'
    main.write_text(text)
    uri = open_doc(lsp, main)
    mine = await diagnostics(lsp, uri, 1)
    lib = uri_of(tmp_path / "lib.arch")
    theirs = [d for p in published(lsp) if p.uri == lib for d in p.diagnostics]
    assert [(d.range.start.line, d.range.start.character) for d in theirs] == [(2, 4)]
    assert "rleu" in theirs[0].message
    # the note "in block 'stem' called at main.arch:5:5" links to the call
    calls = [r.location for r in theirs[0].related_information or ()]
    assert [(c.uri, c.range.start) for c in calls] == [(uri, where(text, "stem(8)"))]
    assert mine and mine[0].range.start.line == 1  # at the `use` line
    # go to definition of the block lands in the used file
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "stem"))))
    assert loc.uri == lib and loc.range.start == t.Position(0, 6)
    # and of the use path, on the file itself
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "lib.arch"))))
    assert loc.uri == lib
    # opened itself, the library still shows the error its caller found
    open_doc(lsp, tmp_path / "lib.arch")
    await diagnostics(lsp, lib, 1)
    await asyncio.sleep(0.3)
    last = [p for p in published(lsp) if p.uri == lib][-1]
    assert [(d.range.start.line, d.range.start.character) for d in last.diagnostics] == [(2, 4)]
    # fixing the used file on disk and saving clears both
    (tmp_path / "lib.arch").write_text("block stem(c) {\n    conv(c, 3, pad = 1)\n    relu()\n}\n")
    change(lsp, lib, (tmp_path / "lib.arch").read_text(), 2)
    lsp.text_document_did_save(t.DidSaveTextDocumentParams(t.TextDocumentIdentifier(uri=lib)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        last = {p.uri: list(p.diagnostics) for p in published(lsp)}
        if last.get(uri) == [] and last.get(lib) == []:
            break
        await asyncio.sleep(0.05)
    assert last.get(uri) == [] and last.get(lib) == []
    # a library hovers with the shapes of the network that calls it
    lib_text = (tmp_path / "lib.arch").read_text()
    h = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(
        t.TextDocumentIdentifier(uri=lib), where(lib_text, "conv")))))
    assert "`[8, 16, 16]`" in h and f"{8 * 3 * 3 * 3 + 8:,}" in h  # 3 -> 8 channels, 3x3, with bias


# ---------------------------------------------------------------- hover, definition, completion, format

def _layouts() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.mark.asyncio
async def test_hover_on_conv2_in_a_resnet_block(lsp: LanguageClient):
    path = SPECS / "resnet.arch"
    text = path.read_text()
    lsp.workspace_did_change_configuration(t.DidChangeConfigurationParams({"archspec": {"variant": "resnet50"}}))
    uri = open_doc(lsp, path, text)
    await diagnostics(lsp, uri, 1)
    shapes = dict(_layouts()["resnet50"]["state_dict"])
    weight = shapes["layer1.0.conv2.weight"]  # torchvision: [out, in / groups, kh, kw]
    h = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "conv2", "conv2: conv(width")))))
    # layer1 keeps the stem's 56x56 map (224 / 4); the conv keeps the map and has `weight` parameters
    assert f"[{weight[0]}, 56, 56]" in h and "layer1.0.conv2" in h
    assert f"{math.prod(weight):,}" in h
    blocks = [int(x) for x in re.search(r"resnet50 .*layers = \[([\d, ]+)\]", text)[1].split(",")]
    assert f"{sum(blocks)} instances in resnet50" in h
    # the op call gives the same node as its label
    h2 = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "conv(width, 3", "conv2: conv(width")))))
    assert h2 == h
    # a block call: the instance's totals, its signature; a name: its value in the variant
    h3 = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "unit(", "unit(64")))))
    layer = sum(math.prod(s) for k, s in shapes.items() if k.startswith("layer1.0.") and
                not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert "bottleneck" in h3 and f"{layer:,}" in h3 and "block bottleneck(planes, stride = 1)" in h3
    h4 = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(
        t.TextDocumentIdentifier(uri=uri), where(text, "groups", "param groups")))))
    assert "value in resnet50: `1`" in h4 and "resnext50_32x4d: 32" in h4


@pytest.mark.asyncio
async def test_variant_selector(lsp: LanguageClient):
    path = SPECS / "resnet.arch"
    text = path.read_text()
    uri = open_doc(lsp, path, text)
    await diagnostics(lsp, uri, 1)
    at = t.HoverParams(t.TextDocumentIdentifier(uri=uri), where(text, "conv2", "conv2: conv(width"))
    h = hover_text(await lsp.text_document_hover_async(at))  # the first variant, resnet18, has no bottleneck
    assert h == "*not built in resnet18*"
    lsp.workspace_did_change_configuration(t.DidChangeConfigurationParams({"archspec": {"variant": "resnet152"}}))
    blocks = [int(x) for x in re.search(r"resnet152 .*layers = \[([\d, ]+)\]", text)[1].split(",")]
    h = hover_text(await timed(lsp.text_document_hover_async(at)))
    assert f"{sum(blocks)} instances in resnet152" in h
    # one variant per file
    lsp.workspace_did_change_configuration(t.DidChangeConfigurationParams(
        {"archspec": {"variant": {"resnet.arch": "resnet101", "efficientnet.arch": "efficientnet_b7"}}}))
    blocks = [int(x) for x in re.search(r"resnet101 .*layers = \[([\d, ]+)\]", text)[1].split(",")]
    h = hover_text(await timed(lsp.text_document_hover_async(at)))
    assert f"{sum(blocks)} instances in resnet101" in h


@pytest.mark.asyncio
async def test_definition_symbols_completion_signature_format(lsp: LanguageClient, tmp_path):
    path = SPECS / "resnet.arch"
    text = path.read_text()
    uri = open_doc(lsp, path, text)
    doc = t.TextDocumentIdentifier(uri=uri)
    # definition of a block (from a variant's value), of a block parameter, of a local value
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(text, "bottleneck",
                                                                                            "variant resnet50"))))
    assert loc.uri == uri and loc.range.start == where(text, "bottleneck", "block bottleneck")
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(text, "out, 1", "conv3"))))
    assert loc.range.start == where(text, "out", "out = planes")
    # a parameter; a variant's value (the analyzed variant's: the first, resnet18)
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(text, "width_per_group /"))))
    assert loc.range.start == where(text, "width_per_group", "param width_per_group")
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(text, "layers)"))))
    assert loc.range.start == where(text, "layers", "variant resnet18")
    # symbols: the blocks, the variants, the network
    syms = await timed(lsp.text_document_document_symbol_async(t.DocumentSymbolParams(doc)))
    names = {s.name for s in syms}
    assert {"basic", "bottleneck", "network", "resnet50", "resnet152", "num_classes"} <= names
    block = next(s for s in syms if s.name == "bottleneck")
    lines = text.split("\n")
    first = lines.index(next(x for x in lines if x.startswith("block bottleneck")))
    assert block.kind == t.SymbolKind.Class and block.range.start == t.Position(first, 0)
    assert block.range.end.line == lines.index("}", first) and block.selection_range.start == t.Position(first, 6)
    # completion of 'con' at a fresh line offers conv with its signature from the op table
    edited = text.replace("    relu()\n}\n\nnetwork", "    con\n}\n\nnetwork", 1)
    change(lsp, uri, edited, 2)
    pos = where(edited, "con\n".strip(), "    con")
    pos = t.Position(pos.line, pos.character + 3)
    items = (await timed(lsp.text_document_completion_async(t.CompletionParams(doc, pos)))).items
    conv = [i for i in items if i.label == "conv"]
    assert conv and conv[0].detail.startswith("conv(out, kernel, stride=1")
    assert all(i.label.startswith("con") for i in items)
    # inside a call, the op's keyword arguments come first
    edited = text.replace("conv3: conv(out, 1, bias = false)", "conv3: conv(out, 1, bi)", 1)
    change(lsp, uri, edited, 3)
    pos = where(edited, "bi)", "conv3: conv(out, 1, bi)")
    items = (await timed(lsp.text_document_completion_async(t.CompletionParams(doc, t.Position(pos.line, pos.character
                                                                                                + 2))))).items
    assert items[0].label == "bias" and items[0].detail == "conv: bias=true"
    # signature help inside a call: the argument being written
    change(lsp, uri, text, 4)
    inside = where(text, "stride = stride, pad = 1, groups", "conv2: conv(width")
    sig = await timed(lsp.text_document_signature_help_async(t.SignatureHelpParams(doc, inside)))
    assert sig.signatures[0].label.startswith("conv(out, kernel") and sig.active_parameter == 2
    # formatting through `archspec fmt`
    messy = "arch  m\ninput x:[3,8,8]\nnetwork{\n  conv(4,3,pad=1);relu()\n}\n"
    other = tmp_path / "m.arch"
    other.write_text(messy)
    muri = open_doc(lsp, other, messy)
    edits = await timed(lsp.text_document_formatting_async(t.DocumentFormattingParams(
        t.TextDocumentIdentifier(uri=muri), t.FormattingOptions(tab_size=4, insert_spaces=True))))
    fmt = subprocess.run([sys.executable, "-m", "archspec", "fmt", "-"], input=messy, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert len(edits) == 1 and edits[0].new_text == fmt != messy
    assert edits[0].range.start == t.Position(0, 0) and edits[0].range.end == t.Position(5, 0)


TWO_HEADS = """arch two_heads
input image: [3, 64, 64]
network {
    stem: conv(32, 3, stride = 2, pad = 1);  relu()
    save features
    main: { conv(64, 3, stride = 2, pad = 1);  relu();  gap();  flatten();  linear(10) }
    save logits
    from features {
        aux: { gap();  flatten();  linear(10) }
        save aux_logits
    }
    output logits, aux_logits
}
"""


@pytest.mark.asyncio
async def test_saved_tensors_inputs_and_groups(lsp: LanguageClient, tmp_path):
    path = tmp_path / "two.arch"
    path.write_text(TWO_HEADS)
    uri = open_doc(lsp, path)
    doc = t.TextDocumentIdentifier(uri=uri)
    assert await diagnostics(lsp, uri, 1) == []
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(TWO_HEADS, "features {"))))
    assert loc.range.start == where(TWO_HEADS, "features", "save features")
    loc = await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, where(TWO_HEADS, "aux_logits",
                                                                                            "output"))))
    assert loc.range.start == where(TWO_HEADS, "aux_logits", "save aux_logits")
    # a labeled group: its totals (conv 3 -> 32 -> 64, 3x3 with bias; linear 64 -> 10)
    h = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(doc, where(TWO_HEADS, "main")))))
    assert "`main` → `[10]`" in h and f"{64 * 32 * 9 + 64 + 64 * 10 + 10:,}" in h and "5 layers" in h
    h = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(doc, where(TWO_HEADS, "image")))))
    assert "input" in h and "[3, 64, 64]" in h


@pytest.mark.asyncio
async def test_inlay_hints_show_each_lines_shape(lsp: LanguageClient, tmp_path):
    text = "arch m\ninput x: [3, 32, 32]\nnetwork {\n    conv(16, 3, stride = 2, pad = 1)\n    gap(); flatten()\n}\n"
    path = tmp_path / "m.arch"
    path.write_text(text)
    uri = open_doc(lsp, path, text)
    hints = await timed(lsp.text_document_inlay_hint_async(t.InlayHintParams(
        t.TextDocumentIdentifier(uri=uri), t.Range(t.Position(0, 0), t.Position(6, 0)))))
    # conv: (32 + 2 - 3) // 2 + 1 = 16; the last op of line 5 flattens [16, 1, 1]
    assert [(h.position.line, h.label) for h in hints] == [(3, "-> [16, 16, 16]"), (4, "-> [16]")]
    assert hints[0].position.character == len(text.split("\n")[3])


# ---------------------------------------------------------------- hostile input, speed

def _fuzz():
    spec = importlib.util.spec_from_file_location("archspec_fuzz", REPO / "benchmarks" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["archspec_fuzz"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.asyncio
async def test_fuzz_corpus_through_did_change_never_crashes_or_hangs(lsp: LanguageClient, tmp_path):
    """Generated specs, mutated zoo specs and the error fixtures replayed as edits of one document; after each,
    requests at a random position answer within the bound, and the server is still up at the end."""
    fuzz = _fuzz()
    c = fuzz.Chooser(random.Random(18))
    sources = fuzz.zoo_sources()
    cases = [fuzz.generate(c)[0] for _ in range(60)] + [fuzz.mutated_case(sources, c)[0] for _ in range(60)]
    cases += [p.read_text() for p in sorted((REPO / "tests" / "fixtures" / "fuzz_regressions").glob("*.arch"))]
    cases += ["", "\x00", "network {" * 200, "é" * 5000 + "\n", "\ud800", "block b(" * 50, "}" * 1000,
              "}\n" * 150_000, "x" * 300_000]  # over the size limit, in many lines and in one
    path = tmp_path / "fuzz.arch"
    path.write_text("")
    uri = open_doc(lsp, path, "")
    doc = t.TextDocumentIdentifier(uri=uri)
    rng = random.Random(1)
    for version, text in enumerate(cases, start=2):
        change(lsp, uri, text, version)
        lines = text.split("\n")
        line = rng.randrange(len(lines))
        pos = t.Position(line, rng.randrange(len(lines[line]) + 1))
        await timed(lsp.text_document_hover_async(t.HoverParams(doc, pos)))
        await timed(lsp.text_document_completion_async(t.CompletionParams(doc, pos)))
        await timed(lsp.text_document_signature_help_async(t.SignatureHelpParams(doc, pos)))
        await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, pos)))
        await timed(lsp.text_document_document_symbol_async(t.DocumentSymbolParams(doc)))
        await timed(lsp.text_document_inlay_hint_async(t.InlayHintParams(doc, t.Range(t.Position(0, 0), pos))))
        await timed(lsp.text_document_formatting_async(t.DocumentFormattingParams(doc, t.FormattingOptions(4, True))))
    # still alive and still right: a good spec after all that
    change(lsp, uri, BROKEN.replace("cnv", "conv"), len(cases) + 2)
    assert await diagnostics(lsp, uri, len(cases) + 2) == []


@pytest.mark.asyncio
async def test_every_request_within_a_second_on_the_largest_spec(lsp: LanguageClient):
    with_variants = [p for p in SPECS.glob("*.arch") if re.search(r"^variant \w+", p.read_text(), re.M)]
    path = max(with_variants, key=lambda p: p.stat().st_size)  # the largest spec with variants
    text = path.read_text()
    names = re.findall(r"^variant (\w+)", text, re.M)
    lsp.workspace_did_change_configuration(t.DidChangeConfigurationParams({"archspec": {"variant": names[-1]}}))
    uri = open_doc(lsp, path, text)
    doc = t.TextDocumentIdentifier(uri=uri)
    await diagnostics(lsp, uri, 1)
    lines = text.split("\n")
    for version in range(2, 6):  # after each edit (a comment appended), at positions across the file
        text += f"# edit {version}\n"
        change(lsp, uri, text, version)
        for line in range(0, len(lines), 7):
            pos = t.Position(line, len(lines[line]) // 2)
            await timed(lsp.text_document_hover_async(t.HoverParams(doc, pos)))
            await timed(lsp.text_document_completion_async(t.CompletionParams(doc, pos)))
            await timed(lsp.text_document_definition_async(t.DefinitionParams(doc, pos)))
        await timed(lsp.text_document_document_symbol_async(t.DocumentSymbolParams(doc)))
        await timed(lsp.text_document_inlay_hint_async(t.InlayHintParams(doc, t.Range(t.Position(0, 0),
                                                                                       t.Position(len(lines), 0)))))
        await timed(lsp.text_document_formatting_async(t.DocumentFormattingParams(doc, t.FormattingOptions(4, True))))
        start = time.perf_counter()
        await diagnostics(lsp, uri, version)
        assert time.perf_counter() - start < REQUEST_BOUND


# ---------------------------------------------------------------- packaging and the lexer

def test_import_archspec_does_not_import_the_server():
    code = "import sys, archspec, archspec.cli; archspec.cli.build_parser(); print(sorted(m for m in sys.modules " \
           "if m.split('.')[0] in ('pygls', 'lsprotocol', 'pygments') or m.startswith('archspec.lsp')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "[]"


def test_pygments_lexer_highlights_every_zoo_spec_without_error_tokens():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    from pygments.token import Error, Name

    lexer = get_lexer_for_filename("x.arch")  # through the entry point
    assert type(lexer) is type(get_lexer_by_name("archspec"))
    specs = sorted(SPECS.glob("*.arch")) + sorted(FIXTURES.glob("*.arch"))
    assert len(specs) > 100
    for path in specs:
        text = path.read_text()
        if path.name.startswith("syntax_"):
            continue  # text the language's own lexer refuses
        tokens = list(lexer.get_tokens(text))
        bad = [(v, ty) for ty, v in tokens if ty in Error]
        assert not bad, f"{path.name}: {bad[:5]}"
        assert "".join(v for _, v in tokens).rstrip("\n") == text.rstrip("\n")
    tokens = list(lexer.get_tokens("block b(c) {\n    stem: conv(c, 3)  # x\n}\n"))
    assert (Name.Function, "conv") in [(ty, v) for ty, v in tokens if ty in Name.Function] or \
           any(v == "conv" and ty in Name.Builtin for ty, v in tokens)
    assert any(v == "stem" and ty in Name.Label for ty, v in tokens)
    assert [v for ty, v in lexer.get_tokens("x = 1 ? 2") if ty in Error] == ["?"]
    stray = (FIXTURES / "syntax_stray_character.arch").read_text()
    assert [v for ty, v in lexer.get_tokens(stray) if ty in Error] == ["$"]


def test_without_the_extra_a_clear_error():
    code = "import sys; sys.modules['pygls'] = None; from archspec.cli import main; sys.exit(main(['lsp']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pip install 'archspec-dsl[lsp]'" in proc.stderr


# ---------------------------------------------------------------- editor files

EDITORS = REPO / "editors"


def _grammar_keywords() -> set[str]:
    """The words the grammar quotes (keywords), from grammar/archspec.lark."""
    return set(re.findall(r'"([a-z]+)"', (REPO / "grammar" / "archspec.lark").read_text()))


def test_textmate_grammar_and_vscode_extension():
    grammar = json.loads((EDITORS / "archspec.tmLanguage.json").read_text())
    assert (EDITORS / "vscode" / "syntaxes" / "archspec.tmLanguage.json").read_bytes() == \
        (EDITORS / "archspec.tmLanguage.json").read_bytes()
    regexes = []

    def walk(node):
        if isinstance(node, dict):
            regexes.extend(v for k, v in node.items() if k in ("match", "begin", "end"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(grammar)
    for rx in regexes:
        re.compile(rx)  # these are plain enough to mean the same to Oniguruma and to Python
    words = set(re.findall(r"[a-z]+", " ".join(r for r in regexes if r.startswith("\\b("))))
    assert _grammar_keywords() <= words, _grammar_keywords() - words
    pkg = json.loads((EDITORS / "vscode" / "package.json").read_text())
    assert pkg["contributes"]["languages"][0]["extensions"] == [".arch"]
    assert pkg["contributes"]["grammars"][0]["scopeName"] == grammar["scopeName"]
    command = pkg["contributes"]["configuration"]["properties"]["archspec.server.command"]["default"]
    assert command[0] == "archspec" and command[1:] == ["lsp"]
    settings = {k.split(".", 1)[1] for k in pkg["contributes"]["configuration"]["properties"]} - {"server.command"}
    from archspec.lsp.server import ArchspecServer
    assert settings == set(ArchspecServer().settings)
    json.loads((EDITORS / "vscode" / "language-configuration.json").read_text())
    assert "vscode-languageclient" in (EDITORS / "vscode" / "extension.js").read_text()


def test_lexer_and_completion_know_every_keyword():
    from archspec.highlight import CONSTANTS, DECLARATIONS, OPERATORS, STATEMENTS
    from archspec.lsp import features
    assert _grammar_keywords() == set(features.KEYWORDS) == set(DECLARATIONS + STATEMENTS + OPERATORS + CONSTANTS)
    assert {"make_divisible", "enumerate", "min"} <= set(features.BUILTINS)


def test_a_broken_edit_keeps_the_last_good_figures_on_the_lines_it_left_alone():
    """In process (no server): the IR of the last good text serves the lines an edit did not touch, and only them."""
    from archspec.lsp.document import analyze_text, borrow
    from archspec.lsp.features import hover, inlay_hints
    path = SPECS / "resnet.arch"
    text = path.read_text()
    good = analyze_text(path, text, "resnet50")
    lines = text.split("\n")
    conv2 = next(i for i, x in enumerate(lines) if "conv2: conv(width" in x) + 1
    # insert a broken line above: every later line moves down by one
    broken = "\n".join(lines[:conv2 - 2] + ["    oops(("] + lines[conv2 - 2:])
    now = analyze_text(path, broken, "resnet50")
    assert not now.ok
    mixed = borrow(now, good)
    col = lines[conv2 - 1].index("conv2") + 1
    assert "layer1.0.conv2" in hover(mixed, conv2 + 1, col)  # found on its new line
    assert hover(mixed, conv2, col) is None or "conv2" not in hover(mixed, conv2, col)
    shapes = dict(inlay_hints(good))
    moved = dict(inlay_hints(mixed))
    assert moved[conv2 + 1] == shapes[conv2] and conv2 - 1 not in moved  # the broken line has no figure
    # a changed line has no figure even though the IR has one for its old text
    changed = "\n".join(lines[:conv2 - 1] + [lines[conv2 - 1].replace("pad = 1", "pad = 2") + " oops(("] + lines[conv2:])
    mixed = borrow(analyze_text(path, changed, "resnet50"), good)
    assert conv2 not in dict(inlay_hints(mixed)) and "conv2" not in (hover(mixed, conv2, col) or "")


def test_other_variants_errors_are_reported_with_their_variant(tmp_path):
    """In process: `archspec check` checks every variant; the editor reports the others' errors, noted."""
    from archspec.lsp.document import analyze_text, other_variants
    text = ("arch f\nparam width = 8\ninput x: [4, 16, 16]\nvariant small { width = 8 }\nvariant odd { width = 3 }\n"
            "network {\n    conv(width, 3, groups = 2)\n}\n")
    path = tmp_path / "f.arch"
    a = analyze_text(path, text)
    assert a.ok and a.variant == "small"
    more = other_variants(a)
    (problems,) = more.values()
    assert len(problems) == 1 and problems[0].diagnostic.notes[-1] == "in variant 'odd'"
    assert problems[0].diagnostic.pos.line == 7 and "groups" in problems[0].diagnostic.message
    assert other_variants(a, stop=lambda: True) == {}


@pytest.mark.asyncio
async def test_server_reports_other_variants_after_a_pause(lsp: LanguageClient, tmp_path):
    text = ("arch f\nparam width = 8\ninput x: [4, 16, 16]\nvariant small { width = 8 }\nvariant odd { width = 3 }\n"
            "network {\n    conv(width, 3, groups = 2)\n}\n")
    path = tmp_path / "f.arch"
    path.write_text(text)
    uri = open_doc(lsp, path)
    assert await diagnostics(lsp, uri, 1) == []  # the first variant at once
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [p for p in published(lsp) if p.uri == uri][-1].diagnostics:
        await asyncio.sleep(0.05)
    (d,) = [p for p in published(lsp) if p.uri == uri][-1].diagnostics
    assert d.range.start == where(text, "conv") and "in variant 'odd'" in d.message


@pytest.mark.asyncio
async def test_a_slow_document_does_not_hold_requests(lsp: LanguageClient, tmp_path):
    """A document at the node limit's scale takes a second or more to lower and analyze: requests still answer
    within the bound (timed), from what is at hand, and the diagnostics come when the analysis is done."""
    text = "arch t\ninput x: [3, 8, 8]\nnetwork {\n    stem: conv(4, 3)\n}\n"
    path = tmp_path / "slow.arch"
    path.write_text(text)
    uri = open_doc(lsp, path, text)
    doc = t.TextDocumentIdentifier(uri=uri)
    assert await diagnostics(lsp, uri, 1) == []
    # 16,000 block calls of 3 layers (48,000 nodes, under the node limit): seconds of lowering and analysis
    slow = text.replace("    stem: conv(4, 3)\n", "    stem: conv(4, 3)\n    repeat 16000 { b() }\n") + \
        "block b() { c: conv(4, 3, pad = 1); n: bn(); relu() }\n"
    change(lsp, uri, slow, 2)
    h = hover_text(await timed(lsp.text_document_hover_async(t.HoverParams(doc, where(slow, "stem")))))
    assert "`[4, 6, 6]`" in h  # the line the edit left alone, from the last analysis
    await timed(lsp.text_document_completion_async(t.CompletionParams(doc, t.Position(4, 4))))
    await timed(lsp.text_document_document_symbol_async(t.DocumentSymbolParams(doc)))
    assert await diagnostics(lsp, uri, 2, timeout=60) == []


def test_every_node_of_the_zoo_hovers_with_its_shape():
    """In process: for each zoo model, hovering where the IR says a node comes from shows that node (its first
    instance's name and shape), so spans and the cursor's reading of the line agree everywhere."""
    from archspec import zoo
    from archspec.lsp.document import analyze_text
    from archspec.lsp.features import hover
    checked = 0
    for name, entry in sorted(zoo.entries().items()):
        a = analyze_text(entry.path, entry.path.read_text(), entry.variant)
        assert a.ok, name
        first = {}
        for node in a.arch.nodes:
            first.setdefault((node.span.file, node.span.line, node.span.col), node)
        for (file, line, col), node in first.items():
            if file != a.file:
                continue
            h = hover(a, line, col)
            shape = "[" + ", ".join(map(str, node.shape)) + "]"
            assert h and f"`{node.name}` → `{shape}`" in h, (name, node.name, line, col, h)
            checked += 1
    assert checked > 500


def test_block_call_hover_has_the_instance_totals_signature_and_doc_comment():
    from archspec.lsp.document import analyze_text
    from archspec.lsp.features import hover
    path = SPECS / "densenet.arch"
    text = path.read_text()
    a = analyze_text(path, text, "densenet121")
    lines = text.split("\n")
    decl = next(i for i, x in enumerate(lines) if x.startswith("block dense_layer"))
    call = next(i for i, x in enumerate(lines) if "dense_layer()" in x and not x.startswith("block"))
    h = hover(a, call + 1, lines[call].index("dense_layer") + 1)
    assert lines[decl - 1].lstrip("# ") in h and "block dense_layer()" in h
    layer = a.report.scope("features.denseblock1.denselayer1")  # the first instance
    assert f"`features.denseblock1.denselayer1` → `[{', '.join(map(str, layer.shape))}]`" in h
    assert f"params **{layer.params:,}**" in h
    blocks = [int(x) for x in re.search(r"densenet121 .*blocks = \[([\d, ]+)\]", text)[1].split(",")]
    assert f"{sum(blocks)} instances in densenet121" in h

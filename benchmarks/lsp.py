"""Language-server latency: diagnostics and hover after an edit, on resnet152 and efficientnet_b7, side by side
with `archspec check` of the same file and variant (a whole process) and the front end in process.

Target (issue 18): median below 50 ms for hover and diagnostics after an edit. The server runs as
`archspec lsp` over stdio, driven by pygls's client; each edit changes a parameter's value (1000 <-> 1001
classes), so every edit is a real re-analysis, and edits are spaced beyond the debounce, as typing pauses
are (a burst of keystrokes is analyzed once, after the debounce). The check of the other variants waits for
0.5 s of quiet, so it does not run between these edits.

Run: .venv/bin/python benchmarks/lsp.py [--repeat N]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsprotocol import types as t  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

CASES = [("resnet152", "resnet.arch", "conv2: conv(width"), ("efficientnet_b7", "efficientnet.arch", "conv(")]
DEBOUNCE = 0.15


def figures(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
    return f"median {statistics.median(xs) * 1e3:6.1f} ms  p90 {p90 * 1e3:6.1f}  spread {xs[0] * 1e3:.1f}-{xs[-1] * 1e3:.1f}"


async def measure(variant: str, path: Path, needle: str, repeat: int) -> dict[str, list[float]]:
    client = LanguageClient("bench", "1")
    published: dict[int, float] = {}
    arrived = asyncio.Event()

    @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: t.PublishDiagnosticsParams):
        if params.version is not None and params.version not in published:
            published[params.version] = time.perf_counter()
            arrived.set()

    await client.start_io(sys.executable, "-m", "archspec", "lsp", env={**os.environ, "PYTHONPATH": str(ROOT)})
    await client.initialize_async(t.InitializeParams(capabilities=t.ClientCapabilities(), initialization_options={
        "archspec": {"variant": variant, "debounce": DEBOUNCE}}))
    client.initialized(t.InitializedParams())
    uri = path.resolve().as_uri()
    text = path.read_text()
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "archspec", 1, text)))
    lines = text.split("\n")
    line = next(i for i, x in enumerate(lines) if needle in x)
    at = t.Position(line, lines[line].index(needle) + 1)
    doc = t.TextDocumentIdentifier(uri=uri)

    async def until(version: int) -> float:
        while version not in published:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 30)
        return published[version]

    await until(1)
    out: dict[str, list[float]] = {"diagnostics": [], "hover": [], "hover, unchanged": []}
    version = 1
    for i in range(repeat):
        for kind in ("diagnostics", "hover"):
            version += 1
            text = text.replace("num_classes = 1000", "num_classes = 1001") if version % 2 else \
                text.replace("num_classes = 1001", "num_classes = 1000")
            await asyncio.sleep(DEBOUNCE * 1.5)  # a pause in typing
            start = time.perf_counter()
            client.text_document_did_change(t.DidChangeTextDocumentParams(
                t.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [t.TextDocumentContentChangeWholeDocument(text=text)]))
            if kind == "diagnostics":
                out[kind].append(await until(version) - start)
            else:
                h = await client.text_document_hover_async(t.HoverParams(doc, at))
                out[kind].append(time.perf_counter() - start)
                assert h is not None, "no hover"
                await until(version)
        start = time.perf_counter()
        await client.text_document_hover_async(t.HoverParams(doc, at))
        out["hover, unchanged"].append(time.perf_counter() - start)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return out


def check_process(path: Path, variant: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archspec", "check", str(path), "--variant", variant, "-q"], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return times


def in_process(path: Path, variant: str, repeat: int) -> list[float]:
    from archspec.lsp.document import analyze_text
    text = path.read_text()
    times = []
    for i in range(repeat + 1):
        edited = text.replace("num_classes = 1000", f"num_classes = {1000 + i}")  # a fresh parse each time
        start = time.perf_counter()
        analyze_text(path, edited, variant)
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    os.chdir(ROOT)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (others' work slows every figure)")
    for variant, file, needle in CASES:
        path = ROOT / "specs" / file
        lsp = asyncio.run(measure(variant, path, needle, args.repeat))
        check = check_process(path, variant, max(5, args.repeat // 4))
        front = in_process(path, variant, args.repeat)
        print(f"{variant} ({file}, {args.repeat} edits)")
        for kind, xs in lsp.items():
            print(f"  lsp {kind:<26} {figures(xs)}   = {statistics.median(xs) / statistics.median(check):.2f}x check")
        print(f"  analyze_text in process        {figures(front)}")
        print(f"  archspec check --variant       {figures(check)}")
        ok = all(statistics.median(lsp[k]) < 0.050 for k in ("diagnostics", "hover"))
        print(f"  target: median below 50 ms after an edit: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

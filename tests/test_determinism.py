"""Determinism: the same spec and parameters give byte-identical IR JSON, analysis JSON and error messages
in fresh interpreters with different hash seeds (set and dict iteration orders change with them).
ONNX byte-identity is tested with the ONNX backend (tests/test_onnx.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import archspec
from helpers import ROOT as REPO

# Writes, for every zoo model (and a few with overrides), NAME.ir.json and NAME.analysis.json, and for every
# error fixture the output of `archspec check` (messages, hints, 'did you mean' lists) into the folder argv[1].
_DUMP = textwrap.dedent('''
    import contextlib, io, os, sys
    from pathlib import Path
    import archspec
    from archspec.cli import main

    out = Path(sys.argv[1])
    cases = [(name, name, {}) for name in archspec.list_models()]
    cases += [("resnet50-small", "resnet50", {"num_classes": 10, "input_size": (160, 128)}),
              ("mobilenet_v2-wide", "mobilenet_v2", {"width": 1.4}),
              ("efficientnet_b0-tiny", "efficientnet_b0", {"resolution": 96})]
    for label, name, kw in cases:
        arch = archspec.load(name, **kw)
        (out / f"{label}.ir.json").write_text(arch.model_dump_json())
        if hasattr(archspec, "analyze"):
            (out / f"{label}.analysis.json").write_text(archspec.analyze(arch).to_json())
    fixtures = Path(sys.argv[2])
    os.chdir(fixtures)
    for f in sorted(fixtures.glob("*.arch")):
        args = [l[len("# args: "):].split() for l in f.read_text().splitlines() if l.startswith("# args: ")]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            main(["check", f.name, *(args[0] if args else [])])
        (out / f"{f.stem}.check.txt").write_text(buf.getvalue())
''')


def _dump(folder: Path, hash_seed: str) -> dict[str, bytes]:
    folder.mkdir()
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", _DUMP, str(folder), str(REPO / "tests" / "fixtures" / "errors")],
                   check=True, env=env, cwd=REPO, timeout=300)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_interpreters_with_different_hash_seeds_agree_byte_for_byte(tmp_path):
    a = _dump(tmp_path / "a", "1")
    b = _dump(tmp_path / "b", "31337")
    models = archspec.list_models()
    assert len([n for n in a if n.endswith(".ir.json")]) == len(models) + 3
    if hasattr(archspec, "analyze"):
        assert len([n for n in a if n.endswith(".analysis.json")]) == len(models) + 3
    assert len([n for n in a if n.endswith(".check.txt")]) >= 60
    assert a.keys() == b.keys()
    for name in a:
        if a[name] != b[name]:
            la, lb = a[name].decode().splitlines(), b[name].decode().splitlines()
            first = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
            raise AssertionError(f"{name} differs at line {first + 1}:\n  {la[first:first + 1]}\n  {lb[first:first + 1]}")


def test_loading_twice_in_one_process_is_identical():
    """Caches (parsed trees, zoo index, op validators) do not change what a second load returns."""
    for name in ("resnet18", "googlenet", "densenet121"):
        first = archspec.load(name).model_dump_json()
        other = archspec.load("resnet50")  # something else in between
        assert archspec.load(name).model_dump_json() == first and other.model_dump_json() != first


def test_ir_json_round_trips():
    arch = archspec.load("efficientnet_b0")
    text = arch.model_dump_json()
    again = archspec.Architecture.model_validate_json(text)
    assert again == arch and again.model_dump_json() == text

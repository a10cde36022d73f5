"""Bad-input fixtures: every tests/fixtures/errors/*.arch must fail `archspec check` with exactly the
errors its header declares (message and file:line:col), and never with a traceback.

Header lines of a fixture (comments, so the spec text is unchanged by them):
    # error: <the full message> @ LINE:COL          (or @ other/file.arch:LINE:COL for a used file)
    # output: <text that must appear in the output>  (a hint, a note, both shapes of a mismatch...)
    # args: <extra command-line arguments>           (e.g. --variant big, --set width=abc)
Every reported error must be declared, in order: a spurious follow-on error fails the test too.
Files under tests/fixtures/errors/lib/ are helpers that fixtures `use`; they are not fixtures.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from helpers import ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "errors"
CASES = sorted(FIXTURES.glob("*.arch"))

_ERROR = re.compile(r"^# error: (?P<msg>.*) @ (?P<loc>\S+)\s*$")
_OUTPUT = re.compile(r"^# output: (?P<text>.*\S)\s*$")
_ARGS = re.compile(r"^# args: (?P<args>.*\S)\s*$")


def expectations(path: Path):
    errors, outputs, args = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := _ERROR.match(line):
            loc = m["loc"]
            if loc.count(":") == 1:  # LINE:COL in the fixture itself
                loc = f"{path.name}:{loc}"
            errors.append((m["msg"], loc))
        elif m := _OUTPUT.match(line):
            outputs.append(m["text"])
        elif m := _ARGS.match(line):
            args += shlex.split(m["args"])
    return errors, outputs, args


def run_check(name: str, args=()) -> tuple[int, str]:
    """`archspec check NAME` in-process; returns (exit status, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["check", name, *args])
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, out.getvalue() + err.getvalue()


def reported(output: str) -> list[tuple[str, str]]:
    """(message, file:line:col) of every error the CLI printed."""
    lines = output.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("error: "):
            loc = lines[i + 1].strip() if i + 1 < len(lines) else ""
            found.append((line[len("error: "):], loc[len("--> "):] if loc.startswith("--> ") else "<no position>"))
    return found


def test_enough_fixtures():
    assert len(CASES) >= 60


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_fixture(path: Path, monkeypatch):
    errors, outputs, args = expectations(path)
    assert errors, f"{path.name} declares no '# error: MESSAGE @ LINE:COL' line"
    monkeypatch.chdir(FIXTURES)  # positions are then printed relative to the fixtures folder
    rc, output = run_check(path.name, args)
    assert rc != 0, output
    assert "Traceback" not in output
    got = reported(output)
    assert got == errors, "\n" + output
    for text in outputs:
        assert text in output, f"missing {text!r} in:\n{output}"
    # Every error shows the offending line under its position, with a caret.
    assert output.count("^") >= len(errors)


def test_several_errors_reported_together(tmp_path, monkeypatch):
    """Independent mistakes in one spec are all reported in one run, each at its own place."""
    (tmp_path / "many.arch").write_text(
        "arch many\n"
        "input x: [3, 32, 32]\n"
        "network {\n"
        "    cnov(8, 3)\n"
        "    k = 1 / 0\n"
        "    a: { conv(8, 3, strde = 2) }\n"
        "    b: { dropout(p = 2) }\n"
        "}\n")
    monkeypatch.chdir(tmp_path)
    rc, output = run_check("many.arch")
    assert rc == 1
    assert [loc for _, loc in reported(output)] == ["many.arch:4:5", "many.arch:5:9", "many.arch:6:21",
                                                     "many.arch:7:18"]
    assert "4 errors" in output


def test_missing_variant_lists_them(tmp_path):
    """A family file loaded without a variant names every variant (check itself expands them all)."""
    spec = tmp_path / "fam.arch"
    spec.write_text("arch fam\ninput x: [3, 8, 8]\nvariant small { w = 4 }\nvariant large { w = 8 }\n"
                    "network { conv(w, 1) }\n")
    with pytest.raises(archspec.SpecError) as info:
        archspec.load(spec)
    d = info.value.first
    assert "holds 2 variants; choose one" in d.message
    assert d.hint == "variants: small, large"
    assert (d.pos.line, d.pos.col) == (3, 9)
    assert archspec.load(spec, variant="large").nodes[0].shape == (8, 8, 8)


def test_unknown_zoo_model_suggests():
    rc, output = run_check("resnet5O")
    assert rc == 1 and "Traceback" not in output
    assert "no zoo model or file named 'resnet5O'" in output and "did you mean 'resnet50'" in output


def test_missing_file():
    rc, output = run_check("no/such/file.arch")
    assert rc == 1 and "no/such/file.arch" in output and "No such file" in output and "Traceback" not in output


def test_no_network(tmp_path):
    """`check` takes a file without a network for a library of blocks; loading it as a model is an error."""
    spec = tmp_path / "nonet.arch"
    spec.write_text("arch t\ninput x: [3, 32, 32]\nparam width = 8\n")
    with pytest.raises(archspec.SpecError) as info:
        archspec.load(spec)
    d = info.value.first
    assert d.message == "the spec has no network" and (d.pos.line, d.pos.col) == (1, 1)
    assert "network {" in d.hint


def test_error_limit_stops_collecting(tmp_path, monkeypatch):
    """A spec with hundreds of mistakes reports the first max_errors of them, not all, and stays fast."""
    body = "\n".join(f"    k{i} = 1 / 0" for i in range(500))
    (tmp_path / "lots.arch").write_text(f"arch lots\ninput x: [3, 8, 8]\nnetwork {{\n{body}\n    relu()\n}}\n")
    monkeypatch.chdir(tmp_path)
    rc, output = run_check("lots.arch")
    assert rc == 1
    assert len(reported(output)) == archspec.Limits().max_errors


def test_real_process_prints_no_traceback():
    """The same through `python -m archspec check` in a fresh process: exit 1, errors on stderr, no traceback."""
    import subprocess
    import sys
    names = ["syntax_missing_paren.arch", "recursion_mutual.arch", "limit_power_tower.arch", "use_etc_passwd.arch"]
    proc = subprocess.run([sys.executable, "-m", "archspec", "check", *names], cwd=FIXTURES, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT),
                                                      "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    for name in names:
        errors, _, _ = expectations(FIXTURES / name)
        for message, loc in errors:
            assert f"error: {message}\n  --> {loc}" in proc.stderr

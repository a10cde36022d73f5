"""Installs as a user makes them (slow: fresh virtual environments, pip's cache reused).

- Each extra, in a fresh venv from the built wheel, runs the commands it is for; a command whose extra is missing
  stops with one line naming the `pip install` to run, never a traceback.
- A clone of the repository runs the README's first command, then the tutorial's commands, without a traceback.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

TINY = ("arch tiny\ninput x: [3, 16, 16]\nnetwork { conv1: conv(8, 3, pad = 1, bias = false); bn1: bn(); relu(); "
        "gap(); flatten(); fc: linear(10) }\n")
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS", "TORCH_INDEX_URL")}


def sh(argv, cwd, check=False, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stdout + proc.stderr, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    if check:
        assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    sh([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT], cwd=dist, check=True)
    return next(dist.glob("archspec_dsl-*.whl"))


def missing(proc, extra: str) -> bool:
    """The command stopped with one line naming the install of `extra`."""
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 1 and len(lines) == 1 and lines[0].endswith(f"pip install 'archspec-dsl[{extra}]'")


# extra -> (commands that must work, commands that must name the extra they lack)
OK, LACKS = "ok", "lacks"
PLAN = {
    "": [(OK, ["check", "resnet18"]), (OK, ["analyze", "resnet50"]), (OK, ["diff", "resnet18", "resnet34"]),
         (OK, ["list", "lenet5"]), (LACKS, ["compile", "tiny.arch"], "torch"),
         (LACKS, ["export", "tiny.arch"], "onnx"), (LACKS, ["bench", "tiny.arch"], "onnx")],
    "torch": [(OK, ["compile", "tiny.arch", "-o", "tiny.py"]), (LACKS, ["export", "tiny.arch"], "onnx")],
    "onnx": [(OK, ["export", "tiny.arch", "-o", "tiny.onnx"]),
             (OK, ["bench", "tiny.onnx", "--iters", "3", "--warmup", "1", "--provider", "cpu"]),
             (OK, ["bench", "tiny.arch", "--iters", "3", "--warmup", "1", "--provider", "cpu"])],
    "gpu": [(OK, ["export", "tiny.arch", "-o", "tiny.onnx"]),
            (OK, ["bench", "tiny.onnx", "--iters", "3", "--warmup", "1"])],  # CUDA, else the CPU with a note
    "rich": [(OK, ["analyze", "resnet50"])],
}


@pytest.mark.slow
@pytest.mark.parametrize("extra", list(PLAN), ids=[e or "base" for e in PLAN])
def test_each_extra_runs_its_commands(extra, wheel, tmp_path):
    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", venv], cwd=tmp_path, check=True)
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    sh([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
        target],
       cwd=tmp_path, check=True)
    (tmp_path / "tiny.arch").write_text(TINY)
    for kind, argv, *lack in PLAN[extra]:
        proc = sh([venv / "bin" / "archspec", *argv], cwd=tmp_path)
        if kind == OK:
            assert proc.returncode == 0, f"[{extra}] {argv}\n{proc.stdout}\n{proc.stderr}"
        else:
            assert missing(proc, lack[0]), f"[{extra}] {argv}\n{proc.stdout}\n{proc.stderr}"
    if extra == "":  # the base install holds neither torch nor rich, and analyze needed neither
        code = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'rich') if u.find_spec(m)])"
        assert sh([venv / "bin" / "python", "-c", code], cwd=tmp_path, check=True).stdout.strip() == "[]"


def readme_first_command() -> str:
    """The first command of the README's first ```bash block."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return next(line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#"))


@pytest.mark.slow
def test_a_clone_runs_the_readme_then_the_tutorial(tmp_path):
    """What a new user does first: clone, run the README's first command, follow the tutorial. Every command
    exits as the page says, and nothing prints a traceback (sh checks)."""
    from test_docs import TUTORIAL, examples, tutorial_steps
    clone = tmp_path / "archspec"
    sh(["git", "clone", "-q", ROOT, clone], cwd=tmp_path, check=True)
    first = readme_first_command()
    assert first.startswith("bash scripts/setup.sh")
    proc = sh(["bash", "-c", first], cwd=clone, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resnet50: 25,557,032 params" in proc.stdout and "checker: ok" in proc.stdout
    assert (clone / "resnet50.onnx").stat().st_size > 90e6

    work = tmp_path / "tutorial"
    work.mkdir()
    for ex in examples(clone / TUTORIAL.relative_to(ROOT)):
        if ex.file:
            (work / ex.file).write_text(ex.text)
    bin_dir = clone / ".venv" / "bin"
    ran = set()
    for kind, text, _shown in tutorial_steps():
        if kind == "python":
            sh([bin_dir / "python", "-c", text], cwd=work, check=True)
            continue
        argv = shlex.split(text, comments=True)
        if argv[1] == "bench":
            argv += ["--iters", "3", "--warmup", "1"]
        proc = sh([bin_dir / argv[0], *argv[1:]], cwd=work)
        assert proc.returncode == (1 if "# fails" in text else 0), f"{text}\n{proc.stdout}\n{proc.stderr}"
        ran.add(argv[1])
    assert ran >= {"check", "analyze", "diff", "fmt", "diagram", "compile", "export", "bench"}

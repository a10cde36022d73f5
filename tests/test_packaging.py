"""The wheel: built from the checkout, installed into a fresh virtual environment, it runs the CLI on the zoo."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_wheel_installs_and_checks_resnet50(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(dist.glob("archspec_dsl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "archspec/grammar/archspec.lark" in names and "archspec/vendor/lark_parser.py" in names
    assert "archspec/specs/resnet.arch" in names and "archspec_compiler/onnx.py" in names
    assert not any(n.startswith("compiler/") for n in names)  # the generic top-level name is not shipped

    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    # Without PYTHONPATH: the checkout on it (its archspec_dsl.egg-info) would make pip skip the install.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], check=True,
                   env=env)
    # Run from an unrelated folder so nothing can come from the checkout.
    out = subprocess.run([str(env_dir / "bin" / "archspec"), "check", "resnet50"], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert "resnet50" in out.stdout and "ok" in out.stdout
    where = subprocess.run([str(py), "-c", "import archspec.resources as r; print(r.zoo_dir())"], check=True,
                           capture_output=True, text=True, cwd=tmp_path, env=env).stdout.strip()
    assert where.startswith(str(env_dir)), where
    # A user's own compiler.py next to their script no longer shadows (or is shadowed by) the backends.
    (tmp_path / "compiler.py").write_text("raise SystemExit('the user module')\n")
    where = subprocess.run([str(py), "-c", "import archspec_compiler as c; print(c.__file__)"], check=True,
                           capture_output=True, text=True, cwd=tmp_path, env=env).stdout.strip()
    assert where.startswith(str(env_dir)), where


def _run(code: str, *flags: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_backends_import_as_archspec_compiler_and_the_old_name_is_deprecated():
    """`archspec_compiler` is the backends' import path; `import compiler` from a checkout warns, naming it, and
    yields the very same module objects (one backend, one op table)."""
    code = ("import sys, warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import compiler, compiler.runtime\n"
            "import archspec_compiler, archspec_compiler.runtime\n"
            "msgs = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
            "assert len(msgs) == 1 and 'archspec_compiler' in msgs[0], msgs\n"
            "assert compiler is archspec_compiler and compiler.runtime is archspec_compiler.runtime\n"
            "assert archspec_compiler.__name__ == 'archspec_compiler'\n"
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules\n")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr


def test_old_name_works_from_a_bare_checkout():
    """Without any install (no site-packages: -S), `import compiler` from the repository root still loads the
    folder as `archspec_compiler`."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import warnings; warnings.simplefilter('ignore')\n"
            "import compiler, archspec_compiler\n"
            "assert compiler is archspec_compiler and compiler.__name__ == 'archspec_compiler'\n"
            "assert sorted(compiler.__all__) == ['emit_python', 'to_onnx', 'to_torch']\n") % str(ROOT)
    proc = _run(code, "-S", "-I")
    assert proc.returncode == 0, proc.stderr


def _fake_setup(tmp_path: Path, **env: str) -> list[str]:
    """Run scripts/setup.sh in a copy whose .venv/bin/python only records the pip calls it gets."""
    import shutil
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    log = tmp_path / "pip.log"
    fake = root / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    bin_dir = tmp_path / "bin"  # a `dot`, so that the script never reaches for apt-get
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\n")
    (bin_dir / "dot").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("TORCH_INDEX_URL", "PYTHONPATH")}
    base["PATH"] = f"{bin_dir}:{base['PATH']}"
    subprocess.run(["bash", str(root / "scripts" / "setup.sh")], check=True, env={**base, **env},
                   capture_output=True)
    return log.read_text().splitlines()


def test_setup_takes_the_torch_index_from_torch_index_url(tmp_path):
    calls = _fake_setup(tmp_path / "a", TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    assert len(calls) == 2 and calls[1].endswith('-e .[dev]')
    pin = next(x for x in calls[0].split() if x.startswith("torch=="))
    assert "--index-url https://download.pytorch.org/whl/cpu" in calls[0]
    assert f'"{pin}"' in (ROOT / "pyproject.toml").read_text()  # the very pin the extras use
    # unset: pip's own choice, the one call of before
    assert [c.split()[-1] for c in _fake_setup(tmp_path / "b")] == [".[dev]"]


def test_docs_say_what_pip_install_torch_really_does():
    """No page promises a CPU build from the bare pin; each names the CPU index for laptops."""
    for rel in ("README.md", "docs/tutorial.md", "scripts/setup.sh", "pyproject.toml"):
        text = (ROOT / rel).read_text()
        assert "CUDA build" in text and "download.pytorch.org/whl/cpu" in text, rel
        assert "the CPU build; an unpinned" not in text and "torch (CPU)" not in text, rel


def test_extras_match_the_commands():
    """Each backend extra holds everything its commands import (export needs torch for the weights)."""
    import re
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]")[1].split("\n[")[0]

    def names(extra):  # the requirement names of `extra = [...]` (tomllib is Python 3.11+)
        (deps,) = re.findall(rf"^{extra} = \[(.*?)\]", section, re.M | re.S)
        return {re.split(r"[=<>!\[ ]", d.strip().strip('"'))[0] for d in deps.split(",") if d.strip()}
    assert {"torch", "numpy"} <= names("torch")
    assert {"onnx", "onnxruntime", "numpy", "torch"} <= names("onnx")
    assert {"onnx", "onnxruntime-gpu", "numpy", "torch"} <= names("gpu")
    assert "rich" in names("rich")

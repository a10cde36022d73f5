"""The wheel: built from the checkout, installed into a fresh virtual environment, it runs the CLI on the zoo."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_checks_resnet50(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(dist.glob("archspec_dsl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "archspec/grammar/archspec.lark" in names and "archspec/vendor/lark_parser.py" in names
    assert "archspec/specs/resnet.arch" in names and any(n.startswith("compiler/") for n in names)

    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], check=True)
    # Run from an unrelated folder so nothing can come from the checkout.
    out = subprocess.run([str(env_dir / "bin" / "archspec"), "check", "resnet50"], check=True, capture_output=True,
                         text=True, cwd=tmp_path)
    assert "resnet50" in out.stdout and "ok" in out.stdout
    where = subprocess.run([str(py), "-c", "import archspec.resources as r; print(r.zoo_dir())"], check=True,
                           capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(env_dir)), where

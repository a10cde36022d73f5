"""The wheel: built from the checkout, installed into a fresh virtual environment, it runs the CLI on the zoo."""
from __future__ import annotations

import os
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

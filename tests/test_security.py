"""Loading a spec from a stranger is safe: `use` stays inside the spec's directory tree, and loading runs
no code, opens no socket, starts no process, reads no environment variable and opens no file outside
the spec's tree and the package's own data."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import archspec
from archspec import SpecError
from helpers import ROOT as REPO

PACKAGE = REPO / "archspec"
H = "arch t\ninput x: [3, 8, 8]\n"


def _load_error(path: Path) -> archspec.errors.Diagnostic:
    with pytest.raises(SpecError) as info:
        archspec.load(path)
    assert len(info.value.diagnostics) == 1, info.value.render()
    return info.value.first


@pytest.fixture
def tree(tmp_path):
    """tmp/outside/evil.arch beside tmp/specs/, the spec tree."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.arch").write_text("block evil(c) { conv(c, 1) }\n")
    specs = tmp_path / "specs"
    (specs / "lib").mkdir(parents=True)
    (specs / "lib" / "ok.arch").write_text("block fine(c) { conv(c, 1) }\n")
    return specs


def _main(tree: Path, use: str) -> Path:
    path = tree / "main.arch"
    path.write_text(H + f'use "{use}"\nnetwork {{ relu() }}\n')
    return path


@pytest.mark.parametrize("use", ["../../etc/passwd", "../../../../../../../../etc/passwd", "../outside/evil.arch",
                                 "lib/../../outside/evil.arch", "./../outside/evil.arch"])
def test_use_cannot_leave_the_tree(tree, use):
    d = _load_error(_main(tree, use))
    assert d.message.startswith(f"use of '{use}' leaves the spec's directory tree")
    assert (d.pos.line, d.pos.col) == (3, 5) and d.hint


@pytest.mark.parametrize("use", ["/etc/passwd", "/etc/passwd.arch", "\\\\server\\share\\x.arch", "C:\\specs\\x.arch",
                                 "c:/specs/x.arch"])
def test_use_of_an_absolute_path_is_refused(tree, use):
    d = _load_error(_main(tree, use))
    assert d.message == f"use of an absolute path '{use}' is not allowed"
    assert (d.pos.line, d.pos.col) == (3, 5)


def test_symlinked_file_escaping_the_tree_is_refused(tree):
    (tree / "lib" / "link.arch").symlink_to(tree.parent / "outside" / "evil.arch")
    d = _load_error(_main(tree, "lib/link.arch"))
    assert d.message.startswith("use of 'lib/link.arch' leaves the spec's directory tree")


def test_symlinked_folder_escaping_the_tree_is_refused(tree):
    (tree / "vendor").symlink_to(tree.parent / "outside", target_is_directory=True)
    d = _load_error(_main(tree, "vendor/evil.arch"))
    assert d.message.startswith("use of 'vendor/evil.arch' leaves the spec's directory tree")


def test_symlink_loop_is_an_error(tree):
    (tree / "a.arch").symlink_to(tree / "b.arch")
    (tree / "b.arch").symlink_to(tree / "a.arch")
    d = _load_error(_main(tree, "a.arch"))
    assert d.message.startswith("use of 'a.arch'") and d.pos.line == 3


def test_use_inside_the_tree_works(tree):
    """The positive control: a used file in a subfolder, and a link that stays inside the tree."""
    (tree / "lib" / "inner.arch").symlink_to(tree / "lib" / "ok.arch")
    (tree / "main.arch").write_text(H + 'use "lib/inner.arch"\nnetwork { fine(4) }\n')
    assert archspec.load(tree / "main.arch").nodes[0].attrs["out"] == 4
    # a used file may reach a sibling folder, as long as it stays under the main spec's folder
    (tree / "lib" / "uses_up.arch").write_text('use "../shared.arch"\n')
    (tree / "shared.arch").write_text("block shared(c) { conv(c, 1) }\n")
    (tree / "main.arch").write_text(H + 'use "lib/uses_up.arch"\nnetwork { shared(5) }\n')
    assert archspec.load(tree / "main.arch").nodes[0].attrs["out"] == 5


def test_used_file_cannot_escape_from_a_subfolder(tree):
    """The tree is the main spec's folder, not the used file's: lib/x.arch cannot use ../../outside."""
    (tree / "lib" / "x.arch").write_text('use "../../outside/evil.arch"\n')
    with pytest.raises(SpecError) as info:
        archspec.load(_main(tree, "lib/x.arch"))
    d = info.value.first
    assert "leaves the spec's directory tree" in d.message and d.pos.file.endswith("x.arch")


# ---- no code execution, no network, no environment: by reading the source ----

# name -> why it is forbidden in the language package
FORBIDDEN_CALLS = {"eval": "runs code", "exec": "runs code", "compile": "compiles code", "__import__": "imports by name",
                   "breakpoint": "debugger", "input": "reads the terminal", "getattr_static": "introspection"}
FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "subprocess", "socket", "ssl", "http",
                     "urllib", "requests", "httpx", "ftplib", "smtplib", "ctypes", "multiprocessing", "code",
                     "codeop", "runpy", "importlib", "torch", "onnx", "onnxruntime"}
FORBIDDEN_ATTRS = {("os", "system"), ("os", "popen"), ("os", "environ"), ("os", "getenv"), ("os", "putenv"),
                   ("os", "execv"), ("os", "execvp"), ("os", "spawnl"), ("os", "fork"), ("sys", "settrace"),
                   ("builtins", "eval"), ("builtins", "exec")}
# Reviewed exceptions: module -> the forbidden names it may use, and why it is safe.
ALLOWED = {
    "archspec/diagram.py": ({"subprocess"}, "runs Graphviz's `dot` on DOT text the diagram command generated "
                                            "(never spec text) when a rendered image is asked for; not loading"),
    "archspec/commands/__init__.py": ({"importlib"}, "imports the package's own command modules by their file names"),
}


def _violations(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.add(node.func.id)
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.add(node.module.split(".")[0])
            if node.module in ("os", "builtins", "sys"):
                found |= {f"{node.module}.{a.name}" for a in node.names if (node.module, a.name) in FORBIDDEN_ATTRS}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRS:
                found.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
            found.add(node.id)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scanner_finds_what_it_must():
    """The scan itself is tested on a sample with one of each forbidden thing."""
    sample = textwrap.dedent("""
        import pickle, subprocess as sp
        from socket import socket
        from os import environ
        import os
        eval("1"); exec("x = 1"); compile("1", "f", "eval"); __import__("os")
        os.system("ls"); os.getenv("HOME"); os.environ["HOME"]
        re.compile("ok")  # an attribute named compile is fine
    """)
    path = Path(__file__).parent / "fixtures" / "_scanner_sample.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(sample)
    try:
        assert _violations(path) == {"pickle", "subprocess", "socket", "os.environ", "eval", "exec", "compile",
                                     "__import__", "os.system", "os.getenv"}
    finally:
        path.unlink()


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_language_package_runs_no_code_and_reaches_nothing(path):
    rel = str(path.relative_to(REPO))
    allowed, why = ALLOWED.get(rel, (set(), ""))
    bad = _violations(path) - allowed
    assert not bad, f"{rel} uses {sorted(bad)}: " + "; ".join(FORBIDDEN_CALLS.get(b, b) for b in sorted(bad))


def test_allowed_exceptions_are_still_needed_and_not_loaded():
    """Each reviewed exception still exists (else remove it), and loading a spec never imports it."""
    for rel, (names, _) in ALLOWED.items():
        assert _violations(REPO / rel) & names == names, f"{rel} no longer needs its exception"
    code = ("import sys, archspec; archspec.load('resnet50'); "
            "print('\\n'.join(m for m in sys.modules if m.startswith('archspec')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    loaded = {m.replace(".", "/") for m in out.split()}
    for rel in ALLOWED:
        mod = rel.removesuffix(".py").removesuffix("/__init__")
        assert mod not in loaded, f"loading imports {mod}"


def test_weights_are_never_unpickled_unsafely():
    """The backends read weights with torch.load(weights_only=True) or safetensors, never plain pickle."""
    for path in sorted((REPO / "compiler").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
                if owner == "torch" and node.func.attr == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                    assert ok, f"{path.name}:{node.lineno}: torch.load without weights_only=True"
                assert not (owner in ("pickle", "marshal", "dill") and node.func.attr in ("load", "loads")), \
                    f"{path.name}:{node.lineno}: {owner}.{node.func.attr}"


# ---- and by watching a load: files opened, processes, sockets, environment ----

_WATCH = textwrap.dedent("""
    import os, sys, json
    import archspec
    archspec.load("lenet5")                 # warm: the grammar, the zoo index, lazy imports are not watched
    events, env_reads = [], []

    def reader():
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename in ("<string>", "<frozen os>", os.__file__):
            f = f.f_back
        return f.f_code.co_filename if f is not None else "?"

    class Env(dict):
        def __getitem__(self, k): env_reads.append([k, reader()]); return super().__getitem__(k)
        def get(self, k, d=None): env_reads.append([k, reader()]); return super().get(k, d)
        def __contains__(self, k): env_reads.append([k, reader()]); return super().__contains__(k)

    watching = False
    def hook(event, args):
        if watching and not event.startswith(("object.", "sys._getframe", "code.", "import", "marshal.")):
            events.append([event, str(args[0]) if args else ""])
    sys.addaudithook(hook)
    os.environ = Env(os.environ)
    spec = sys.argv[1]
    watching = True
    try:
        archspec.load(spec)
    except archspec.SpecError:
        pass
    watching = False
    reads = list(env_reads)
    os.getenv("PATH")                        # the probe works: os.getenv goes through os.environ
    assert len(env_reads) == len(reads) + 1
    print(json.dumps({"events": events, "env": reads}))
""")


def _watch(spec: str, cwd: Path) -> dict:
    import json
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _WATCH, spec], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("spec", ["resnet50", "lib-user", "escape"])
def test_loading_touches_only_the_spec_tree(spec, tree):
    """Audit hooks see every file opened, process started and socket made while a spec loads."""
    if spec == "lib-user":
        (tree / "main.arch").write_text(H + 'use "lib/ok.arch"\nnetwork { fine(4) }\n')
        target, allowed = str(tree / "main.arch"), [tree.resolve()]
    elif spec == "escape":
        target, allowed = str(_main(tree, "../outside/evil.arch")), [tree.resolve()]
    else:
        target, allowed = spec, [archspec.zoo.zoo_dir().resolve()]
    seen = _watch(target, tree)
    # (libraries may read their own settings, e.g. pydantic's PYDANTIC_DISABLE_PLUGINS; archspec reads none)
    ours = [(k, f) for k, f in seen["env"] if str(PACKAGE) in f or "/archspec/" in f]
    assert ours == [], f"environment variables read by archspec: {ours}"
    for event, arg in seen["events"]:
        assert not event.startswith(("subprocess", "os.system", "os.exec", "os.spawn", "os.fork", "socket",
                                     "urllib", "http", "ftplib", "exec", "compile", "pickle", "ctypes")), (event, arg)
        if event == "open":
            p = (tree / arg).resolve()  # relative to the watched process's folder
            assert any(p.is_relative_to(a) for a in allowed), f"opened {p} outside {allowed}"
    opened = [Path(a).name for e, a in seen["events"] if e == "open"]
    assert "evil.arch" not in opened and "passwd" not in opened
    if spec == "lib-user":
        assert opened.count("ok.arch") == 1


# ---- printing a hostile spec's errors cannot drive the terminal ----

def test_terminal_escapes_are_not_printed(tmp_path, capsys):
    """Escape sequences in a comment on the error line, in a string in the message: shown as U+FFFD."""
    from archspec.cli import main
    spec = tmp_path / "esc.arch"
    spec.write_text(H + 'init conv = "\x1b]0;pwned\x07"\nnetwork {\n    cnov(8, 3)  # \x1b[2J\x1b[31m red\n}\n')
    raw = tmp_path / "raw.arch"
    raw.write_text(H + "network {\n    relu(\x1b[2J)\n}\n")
    assert main(["check", str(spec), str(raw)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "unknown init scheme" in err and "unknown name 'cnov'" in err and "\ufffd[2J\ufffd[31m red" in err
    assert "unexpected character '\\x1b'" in err and "relu(\ufffd[2J)" in err


def test_line_numbers_follow_newlines_only(tmp_path):
    """A form feed or U+2028 in a comment is not a line break for the lexer, nor for the error display."""
    spec = tmp_path / "ff.arch"
    spec.write_text(H + "# a\x0cform feed and a\u2028line separator\nnetwork {\n    cnov(8, 3)\n}\n")
    with pytest.raises(SpecError) as info:
        archspec.load(spec)
    d = info.value.first
    assert (d.pos.line, d.pos.col) == (5, 5)
    assert "5 |     cnov(8, 3)" in d.render()


def test_byte_order_mark_is_ignored(tmp_path):
    spec = tmp_path / "bom.arch"
    spec.write_bytes(b"\xef\xbb\xbf" + (H + "network {\n    cnov(8, 3)\n}\n").encode())
    with pytest.raises(SpecError) as info:
        archspec.load(spec)
    assert (info.value.first.pos.line, info.value.first.pos.col) == (4, 5)
    spec.write_bytes(b"\xef\xbb\xbf" + (H + "network { relu() }\n").encode())
    assert archspec.load(spec).nodes[0].op == "relu"


@pytest.mark.parametrize("data, line, col, message", [
    (b"arch t\ninput x: [3, 8, 8]\nnetwork { r\xffelu() }\n", 3, 12, "spec file is not valid UTF-8 text"),
    (b"arch t\ninput x: [3, 8, 8]\nnetwork { \xc3\xa9\x00 }\n", 3, 12, "spec file contains NUL bytes: it is not a text file"),
])
def test_binary_files_are_refused_with_a_position(tmp_path, data, line, col, message):
    spec = tmp_path / "bin.arch"
    spec.write_bytes(data)
    d = _load_error(spec)
    assert d.message == message and (d.pos.line, d.pos.col) == (line, col)


def test_deeply_nested_set_value_is_an_error():
    from archspec.cli import main
    assert main(["check", "resnet18", "--set", "layers=" + "[" * 5000 + "]" * 5000]) == 1

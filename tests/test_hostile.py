"""Hostile input, round two (issue 16): no code runs from a spec, no small file takes minutes, no output is
left half-written. One section per finding; each test failed before its fix."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import archspec
from archspec import Limits, SpecError

from helpers import ROOT as REPO, write_spec

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args, cwd=None, timeout=120) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "archspec", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def spec(tmp: Path, text: str, name: str = "x.arch") -> Path:
    return write_spec(tmp, text, name, dedent=False)


def load_error(path, **kw) -> str:
    with pytest.raises(SpecError) as info:
        archspec.load(path, **kw)
    return str(info.value)


# ---------------------------------------------------------------- 1. code in generated Python

AUDIT = """
import os, sys
here = os.path.realpath(sys.argv[1])
def hook(event, args):
    if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn"):
        raise SystemExit(f"AUDIT: {event} {args!r:.80}")
    if event == "open" and isinstance(args[0], str) and args[1] and any(c in str(args[1]) for c in "wax+"):
        path = os.path.realpath(args[0])
        if not path.startswith(here + os.sep) and not path.startswith("/dev/"):
            raise SystemExit(f"AUDIT: write to {path}")
sys.addaudithook(hook)
sys.path.insert(0, here)
import m
m.build()
print("IMPORTED")
"""


def import_audited(folder: Path) -> str:
    """Import folder/m.py in a fresh interpreter that refuses to start processes or write outside `folder`."""
    proc = subprocess.run([sys.executable, "-c", AUDIT, str(folder)], capture_output=True, text=True, env=ENV,
                          timeout=120, cwd=folder)
    return proc.stdout + proc.stderr


PAYLOAD = '""";__import__("os").system("echo PWNED > pwned.txt");"""'


@pytest.mark.parametrize("where", ["param", "folder", "string_param_backslash"])
def test_spec_text_never_runs_in_generated_python(where, tmp_path):
    folder = tmp_path
    text = "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n"
    if where == "param":
        text = f"param p = '{PAYLOAD}'\n" + text
    elif where == "string_param_backslash":
        text = "param p = \"\\\\\"\nparam q = 'x\"\"\"'\n" + text
    else:
        folder = tmp_path / 'a""";__import__("os").system("echo PWNED > pwned.txt");"""'
        folder.mkdir()
    path = spec(folder, text)
    rc, out = cli("compile", path.name, "-o", tmp_path / "m.py", cwd=folder)
    assert rc == 0, out
    result = import_audited(tmp_path)
    assert "IMPORTED" in result and "AUDIT" not in result, result
    assert not list(tmp_path.rglob("pwned.txt"))


def test_file_name_with_a_newline_stays_in_its_comment(tmp_path):
    path = spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n",
                'x\nimport os; os.system("echo PWNED > pwned.txt")\n#.arch')
    arch = archspec.load(path)
    from archspec_compiler.pysource import emit_python
    (tmp_path / "m.py").write_text(emit_python(arch))
    result = import_audited(tmp_path)
    assert "IMPORTED" in result and "AUDIT" not in result, result


@pytest.mark.parametrize("decl, message", [
    ("input class: [3, 8, 8]", "the input name 'class' is a Python keyword"),
    ("input self: [3, 8, 8]", "the input name 'self' is used by the generated code"),
    ("input torch: [3, 8, 8]", "the input name 'torch' is used by the generated code"),
    ("input _get: [3, 8, 8]", "the input name '_get' is reserved"),
])
def test_unsafe_input_names_are_refused_at_their_position(decl, message, tmp_path):
    text = load_error(spec(tmp_path, f"arch x\n{decl}\nnetwork {{ relu() }}\n"))
    assert message in text and "x.arch:2:7" in text


@pytest.mark.parametrize("label", ["forward", "meta", "graph", "_code", "recompile", "train", "code", "class"])
def test_labels_that_clash_with_pytorch_are_refused(label, tmp_path):
    text = load_error(spec(tmp_path, f"arch x\ninput img: [3, 8, 8]\nnetwork {{\n    {label}: relu()\n}}\n"))
    assert f"the label '{label}'" in text and "x.arch:4:5" in text


def test_the_reserved_names_cover_pytorch():
    """archspec.names lists nn.Module's and GraphModule's attributes without importing torch: check them here."""
    import torch.fx as fx
    from archspec.names import MODULE_ATTRIBUTES
    public = {n for n in dir(fx.GraphModule) if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES


@pytest.mark.parametrize("name", ["None", "True", "False", "class"])
def test_arch_names_that_are_keywords_compile_and_import(name, tmp_path):
    path = spec(tmp_path, f"arch {name}\ninput img: [3, 8, 8]\nnetwork {{ conv(4, 3) }}\n")
    arch = archspec.load(path)
    from archspec_compiler import emit_python, to_torch
    import torch
    assert to_torch(arch)(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 6, 6)
    (tmp_path / "m.py").write_text(emit_python(arch))
    assert "IMPORTED" in import_audited(tmp_path)


# ---------------------------------------------------------------- 2. unbounded work in the evaluator

@pytest.mark.parametrize("expr, message", [
    ("round(5, -10 ** 9)", "digits -1000000000 out of range"),
    ("round(5.5, 10 ** 9)", "out of range"),
    ("1e308 // 1e-308", "number out of range"),
    ("1e308 * 10", "number out of range"),
])
def test_builtins_bound_their_arguments(expr, message, tmp_path):
    t0 = time.perf_counter()
    text = load_error(spec(tmp_path, f"arch x\nparam p = {expr}\ninput img: [3]\nnetwork {{ relu() }}\n"))
    assert message in text and "x.arch:2:" in text
    assert time.perf_counter() - t0 < 5


def test_interpolated_labels_count_against_the_limits(tmp_path):
    """A 10**6-character string in 40,000 labels would be 40 GB of names."""
    t0 = time.perf_counter()
    text = load_error(spec(tmp_path, 'arch x\ninput img: [3]\nnetwork {\n    s = "a" * 1000000\n'
                                     '    for i in range(40000) { l{i}{s}: relu() }\n}\n'))
    assert "a label of over 200 characters" in text and "x.arch:5:" in text
    assert time.perf_counter() - t0 < 10


def test_node_name_bytes_count_against_built_items(tmp_path):
    body = "".join(f"{'    ' * (d + 1)}g{d}{'x' * 150}: {{\n" for d in range(40))
    close = "".join(f"{'    ' * (d + 1)}}}\n" for d in reversed(range(40)))
    inner = "    " * 41 + "repeat 10000 { relu() }\n"
    text = load_error(spec(tmp_path, "arch x\ninput img: [3]\nnetwork {\n" + body + inner + close + "}\n"),
                      limits=Limits(max_built_items=1_000_000))
    assert "more than 1,000,000 list items" in text


# ---------------------------------------------------------------- 3. IR dumps are data

@pytest.fixture
def dump(tmp_path):
    """resnet18's IR as a dict, and a function writing a changed copy to a .json file."""
    data = json.loads(archspec.load("resnet18").model_dump_json())

    def write(change) -> Path:
        d = json.loads(json.dumps(data))
        change(d)
        path = tmp_path / "ir.json"
        path.write_text(json.dumps(d))
        return path
    return data, write


def _set(path_keys, value):
    def change(d):
        obj = d
        for k in path_keys[:-1]:
            obj = obj[k]
        obj[path_keys[-1]] = value
    return change


def test_ir_spans_are_never_opened(dump, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (secret, fifo, Path("/dev/zero")):
        def change(d, target=target):
            for n in d["nodes"]:
                n["span"]["file"] = str(target)
            d["nodes"][3]["op"] = "no_such_op"
        rc, out = cli("analyze", dump[1](change), timeout=30)
        assert rc == 1 and "TOP-SECRET" not in out and "Traceback" not in out, out
        assert "unknown op 'no_such_op'" in out


@pytest.mark.parametrize("change, message", [
    (_set(["nodes", 0, "attrs"], {}), "argument 'out' is missing"),
    (_set(["nodes", 0, "attrs", "kernel"], "7"), "expects an integer"),
    (_set(["nodes", 0, "shape"], [64, -112, 112]), "has shape [64, -112, 112], but conv gives [64, 112, 112]"),
    (_set(["nodes", 0, "shape"], [64, 100, 112]), "but conv gives [64, 112, 112]"),
    (_set(["nodes", 0, "attrs", "out"], 32), "has shape [64, 112, 112], but conv gives [32, 112, 112]"),
    (_set(["nodes", 0, "attrs", "extra"], 1), "are not what conv makes of them"),
    (_set(["nodes", 0, "op"], "exec"), "unknown op 'exec'"),
    (_set(["nodes", 0, "inputs"], ["nothing"]), "before it is defined"),
    (_set(["nodes", 0, "name"], "# Heading\n[x](javascript:alert(1))"), "is not a dotted path of labels"),
    (_set(["nodes", 0, "name"], "forward"), "the label 'forward'"),
    (_set(["inputs", 0, "name"], "self"), "the input name 'self'"),
    (_set(["inputs", 0, "shape"], [3, 0, 224]), "1 to 3 positive sizes"),
    (_set(["name"], "[link=https://evil]x[/link]"), "is not letters, digits"),
    (_set(["init"], {"conv": 'x"""'}), "unknown op or scheme"),
    (_set(["budgets"], [{"metric": "params", "op": "<=", "limit": float("nan"), "scope": "", "span":
                         {"file": "x", "line": 1, "col": 1}}]), "is not valid"),
])
def test_ir_dumps_are_validated_before_use(dump, change, message):
    path = dump[1](change)
    for command in (["analyze", path, "--format", "md"], ["diff", path, path]):
        rc, out = cli(*command, timeout=60)
        assert rc == 1 and "Traceback" not in out, out
        assert message in out, out


def test_a_valid_dump_still_round_trips(dump, tmp_path):
    path = dump[1](lambda d: None)
    rc, out = cli("diff", path, "resnet18", "--format", "md")
    assert rc == 0 and "No scope changed" in out, out


def test_ir_dump_that_is_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "ir.json"
    os.mkfifo(fifo)
    rc, out = cli("analyze", fifo, timeout=30)
    assert rc == 1 and "is not a regular file" in out


# ---------------------------------------------------------------- 4. bounded work on small files
# (tests/test_hostile.py::test_every_command_is_bounded_on_small_files drives them all under a CPU/RSS bound)

def test_diagram_of_a_flat_network_is_cut_with_a_note(tmp_path):
    from archspec.diagram import build
    from archspec.limits import MAX_DIAGRAM_BOXES
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3]\nnetwork {\n    repeat 5000 { relu() }\n}\n"))
    d = build(arch)
    assert len(d.boxes) <= MAX_DIAGRAM_BOXES and "not drawn" in d.note and d.note in d.summary


def test_diagram_of_a_deep_network_collapses_with_a_note(tmp_path):
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3]\nnetwork {\n    repeat 30 { { repeat 100 { relu() } } }\n}\n"))
    from archspec.diagram import build
    d = build(arch)
    assert len(d.boxes) == 32 and "collapsed to depth 1" in d.note


def test_declaration_errors_stop_at_max_errors(tmp_path):
    path = spec(tmp_path, "arch x\n" + "param p = 1\n" * 5000 + "input img: [3]\nnetwork { relu() }\n")
    with pytest.raises(SpecError) as info:
        archspec.load(path, limits=Limits(max_errors=20))
    assert len(info.value.diagnostics) == 20


def test_use_diamond_is_read_once_and_does_not_clash(tmp_path, monkeypatch):
    """a uses b and c, both use common: one reading of common, and its block is the same block."""
    (tmp_path / "common.arch").write_text("block unit() { relu() }\n")
    for side in "bc":
        (tmp_path / f"{side}.arch").write_text(f'use "common.arch"\nblock {side}() {{ unit() }}\n')
    path = spec(tmp_path, 'use "b.arch"\nuse "c.arch"\narch x\ninput img: [3]\nnetwork { b()\n c() }\n')
    from archspec import modules
    reads = []
    real = modules.parse
    monkeypatch.setattr(modules, "parse", lambda text, file, n: reads.append(file) or real(text, file, n))
    arch = archspec.load(path)
    assert len(arch.nodes) == 2
    assert sum(Path(f).name == "common.arch" for f in reads) == 1


def test_a_deep_use_diamond_is_linear(tmp_path):
    """Eight levels of diamonds: 2**8 paths to the bottom file, each file read once."""
    (tmp_path / "l8a.arch").write_text("block u8a() { relu() }\n")
    (tmp_path / "l8b.arch").write_text("block u8b() { relu() }\n")
    for level in range(7, -1, -1):
        for side in "ab":
            (tmp_path / f"l{level}{side}.arch").write_text(
                f'use "l{level + 1}a.arch"\nuse "l{level + 1}b.arch"\nblock u{level}{side}() {{ u{level + 1}a() }}\n')
    path = spec(tmp_path, 'use "l0a.arch"\nuse "l0b.arch"\narch x\ninput img: [3]\nnetwork { u0a() }\n')
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as info:  # 9 files deep: over max_use_depth (8), reported once per path
        archspec.load(path)
    assert "use chain deeper than 8 files" in str(info.value)
    assert time.perf_counter() - t0 < 5


# ---------------------------------------------------------------- 5. sizes checked before allocating

def test_huge_linear_is_refused_by_check(tmp_path):
    rc, out = cli("check", spec(tmp_path, "arch x\ninput v: [300000]\nnetwork { linear(300000) }\n"))
    assert rc == 1 and "90,000,300,000 parameters, over the limit of 10,000,000,000" in out and "x.arch:3:1" in out


def test_inputs_count_against_the_activation_limit(tmp_path):
    rc, out = cli("check", spec(tmp_path, "arch x\ninput v: [1, 1000000, 1000000]\nnetwork { gap() }\n"))
    assert rc == 1 and "bytes of activations per sample, over the limit" in out


def test_to_torch_checks_memory_before_allocating(tmp_path, monkeypatch):
    from archspec_compiler import runtime, torch as backend
    monkeypatch.setattr(runtime, "available_memory", lambda: 1000)
    arch = archspec.load(spec(tmp_path, "arch x\ninput v: [300]\nnetwork { linear(300) }\n"))
    with pytest.raises(SpecError, match="needs 0.0 GiB, more than the 0.0 GiB of memory available"):
        backend.to_torch(arch)


def test_large_models_are_exported_with_external_data(tmp_path, monkeypatch):
    """Past EXTERNAL_DATA_BYTES (2 GB in practice; 1 kB here) the weights go to NAME.onnx.data, and
    onnxruntime runs the model from there."""
    from archspec_compiler import onnx as backend
    from archspec_compiler.torch import to_torch
    monkeypatch.setattr(backend, "EXTERNAL_DATA_BYTES", 1000)
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3, 16, 16]\nnetwork { conv(16, 3);  gap();  flatten();  linear(10) }\n"))
    module = to_torch(arch)
    out = tmp_path / "m.onnx"
    backend.to_onnx(arch, out, module=module)
    import onnx
    stored = onnx.load(str(out), load_external_data=False)
    assert {t.name for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL} >= {"0.weight"}
    assert (tmp_path / "m.onnx.data").stat().st_size >= 4 * 16 * 27
    assert backend.check(arch, out) == 4
    assert backend.compare_outputs(arch, module, out) < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data", "x.arch"]  # no temporaries


# ---------------------------------------------------------------- 6. atomic outputs

def test_a_killed_export_leaves_the_old_file(tmp_path):
    """kill -9 once the model is written but before its checks end: the old file is still there, whole."""
    target = tmp_path / "model.onnx"
    target.write_bytes(b"OLD")
    path = spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n")
    code = ("import os, sys\nimport compiler.onnx as backend\nfrom archspec import cli\n"
            "backend.check = lambda *a, **k: os.kill(os.getpid(), 9)\n"
            f"cli.main(['export', {str(path)!r}, '-o', {str(target)!r}])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, timeout=300)
    assert proc.returncode == -9
    assert target.read_bytes() == b"OLD"


def test_parallel_exports_to_one_path_all_succeed(tmp_path):
    path = spec(tmp_path, "arch x\ninput img: [3, 32, 32]\nnetwork { conv(64, 3);  relu();  gap();  flatten();  linear(100) }\n")
    procs = [subprocess.Popen([sys.executable, "-m", "archspec", "export", str(path), "-o", str(tmp_path / "m.onnx")],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    import onnx
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "x.arch"]


@pytest.mark.parametrize("command", [["compile", "-o"], ["diagram", "-o"], ["diff", "SPEC", "-o"]])
def test_outputs_are_renamed_into_place(command, tmp_path, monkeypatch):
    """compile, diagram and diff write through archspec.output (a temporary file renamed)."""
    from archspec import cli as main_cli, output
    path = spec(tmp_path, "arch x\ninput img: [3]\nnetwork { relu() }\n")
    out = tmp_path / ("out.mmd" if command[0] == "diagram" else "out.txt")
    renamed = []
    real = os.replace
    monkeypatch.setattr(output.os, "replace", lambda a, b: renamed.append(Path(b)) or real(a, b))
    argv = [command[0], str(path)] + [str(path) if a == "SPEC" else a for a in command[1:]] + [str(out)]
    assert main_cli.main(argv) == 0
    assert renamed == [out] and out.stat().st_size > 0


def test_fmt_does_not_write_through_a_symlink_out_of_its_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.arch"
    victim.write_text("arch   x\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "link.arch").symlink_to(victim)
    (folder / "own.arch").write_text("arch   y\n")
    rc, out = cli("fmt", folder)
    assert rc == 1 and "outside" in out
    assert victim.read_text() == "arch   x\n"
    assert (folder / "own.arch").read_text() == "arch y\n"
    assert (folder / "link.arch").is_symlink()


# ---------------------------------------------------------------- 7. torch and onnxruntime agree

@pytest.mark.parametrize("shape, call", [
    ([1, 3, 4], "avgpool(2, stride = 3, ceil = true)"),
    ([2, 7, 7], "avgpool(3, stride = 2, pad = 1, ceil = true)"),
    ([2, 5, 6], "avgpool(2, stride = 2, ceil = true)"),
    ([2, 5, 6], "avgpool(3, stride = 2, pad = 1, ceil = true, count_include_pad = false)"),
    ([2, 9], "avgpool(2, stride = 3, ceil = true)"),
])
def test_ceil_mode_average_pooling_matches_torch(shape, call, tmp_path):
    from archspec_compiler.onnx import compare_outputs, to_onnx
    from archspec_compiler.torch import to_torch
    arch = archspec.load(spec(tmp_path, f"arch x\ninput img: {shape}\nnetwork {{ {call} }}\n"))
    module = to_torch(arch)
    to_onnx(arch, tmp_path / "m.onnx", module=module)
    assert compare_outputs(arch, module, tmp_path / "m.onnx") < 1e-6


def test_export_compares_outputs(tmp_path, monkeypatch, capsys):
    """A lowering that computes the wrong values (right shapes) fails the export, and leaves no file."""
    from archspec_compiler import onnx as backend
    from archspec import cli as main_cli
    path = spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3);  relu() }\n")
    out = tmp_path / "m.onnx"
    assert main_cli.main(["export", str(path), "-o", str(out)]) == 0
    assert "outputs match PyTorch" in capsys.readouterr().out
    good = out.read_bytes()
    monkeypatch.setitem(backend.LOWERINGS, "relu", backend.LOWERINGS["identity"])
    assert main_cli.main(["export", str(path), "-o", str(out)]) == 1
    assert "onnxruntime and PyTorch disagree on output 'output'" in capsys.readouterr().err
    assert out.read_bytes() == good  # the failed model never replaced the good one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "x.arch"]
    assert main_cli.main(["export", str(path), "-o", str(out), "--no-compare"]) == 0


# ---------------------------------------------------------------- 8. smaller findings

def test_non_finite_parameters_never_reach_the_ir(tmp_path):
    text = load_error(spec(tmp_path, "arch x\nparam p = 1e308 // 1e-308\ninput img: [3]\nnetwork { relu() }\n"))
    assert "number out of range" in text


@pytest.mark.parametrize("dtype, message", [
    ("int8", "is int8, the model's is float32"),
    ("bool", "is bool, the model's is float32"),
    ("float64", "is float64, the model's is float32: converting it would change its values"),
    ("nan", "holds NaN or infinite values"),
])
def test_safetensors_of_another_type_or_with_nan_are_refused(dtype, message, tmp_path):
    import torch
    safetensors = pytest.importorskip("safetensors.torch")
    from archspec_compiler import to_torch
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n"))
    state = to_torch(arch).state_dict()
    w = state["0.weight"]
    if dtype == "nan":
        w = w.clone()
        w[0, 0, 0, 0] = float("nan")
    elif dtype == "float64":
        w = w.double() + 1e-12
    else:
        w = (w > 0).to(getattr(torch, dtype))
    state["0.weight"] = w
    safetensors.save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(SpecError) as info:
        to_torch(arch, weights=str(tmp_path / "w.safetensors"))
    assert f"weight '0.weight' {message}" in str(info.value) and "x.arch:3:11" in str(info.value)


def test_lossless_weight_casts_are_warned_about(tmp_path):
    from archspec_compiler import to_torch
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n"))
    state = {k: v.half() for k, v in to_torch(arch).state_dict().items()}
    with pytest.warns(UserWarning, match="weight '0.weight' is float16, converted without loss to float32"):
        to_torch(arch, weights=state)


def test_file_names_do_not_drive_the_terminal_or_markup(tmp_path):
    name = "\x1b]8;;https:evil\x1b\\x[link=https:evil]y\x1b[2J.arch"
    path = spec(tmp_path, "arch x\ninput img: [3]\nnetwork { relu(1) }\n", name)
    rc, out = cli("check", path)
    assert rc == 1 and "\x1b" not in out
    path.write_text("input img: [3]\nnetwork { relu() }\n")  # no arch: the title is the file's name
    for args in (["analyze", path], ["analyze", path, "--format", "md"], ["diff", path, path, "--format", "md"]):
        rc, out = cli(*args)
        assert rc == 0 and "\x1b" not in out, out
    rc, out = cli("analyze", path)
    assert "[link=https:evil]" in out  # shown as text, not turned into a link


def test_a_newline_in_a_file_name_keeps_the_mermaid_fence(tmp_path):
    path = spec(tmp_path, "input img: [3]\nnetwork { relu() }\n", "x\n```\n# owned.arch")
    rc, out = cli("diagram", path, "-o", "-", "--format", "md")
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "```mermaid" and lines.count("```") == 1 and lines[-1] == "```"


@pytest.mark.parametrize("content, message", [
    (b"", "is 0 bytes: not an ONNX model"),
    (b"\x08\x07garbage" * 20, "is not an ONNX model"),
])
def test_bench_refuses_malformed_onnx_files(content, message, tmp_path):
    (tmp_path / "m.onnx").write_bytes(content)
    rc, out = cli("bench", tmp_path / "m.onnx", "--iters", "1")
    assert rc == 1 and message in out and "Traceback" not in out, out


def test_bench_refuses_external_data_outside_the_model_folder(tmp_path):
    from archspec_compiler import onnx as backend
    arch = archspec.load(spec(tmp_path, "arch x\ninput img: [3, 8, 8]\nnetwork { conv(4, 3) }\n"))
    model = backend.to_onnx(arch)
    import onnx
    from onnx.external_data_helper import set_external_data
    t = model.graph.initializer[0]
    set_external_data(t, location="../../../../etc/passwd", offset=0, length=64)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    rc, out = cli("bench", tmp_path / "m.onnx", "--iters", "1")
    assert rc == 1 and "outside the model's folder" in out and "Traceback" not in out, out


def test_bench_refuses_impossible_batches(tmp_path):
    rc, out = cli("bench", spec(tmp_path, "arch x\ninput img: [3, 64, 64]\nnetwork { conv(8, 3) }\n"),
                  "--batch", "100000000", "--iters", "1")
    assert rc == 1 and "more than the" in out and "Traceback" not in out, out


# ---------------------------------------------------------------- the bound: every command, worst cases

WORST = {
    "flat.arch": "arch r\ninput x: [3]\nnetwork {\n    repeat 49000 { relu() }\n}\n",
    "groups.arch": "arch g\ninput x: [3]\nnetwork {\n    repeat 24000 { { relu() } }\n}\n",
    "variants.arch": "arch v\nparam w = 1\ninput x: [3]\n" + "".join(f"variant v{i} {{ w = 1 }}\n" for i in range(2600))
                     + "network { relu() }\n",
    "blank.arch": "arch b\ninput x: [3]\n" + "\n" * 60000 + "network { relu() }\n",
    "errors.arch": "arch e\n" + "param p = 1\n" * 5000 + "input x: [3]\nnetwork { relu() }\n",
    "round.arch": "arch r\nparam p = round(5, -10 ** 9)\ninput x: [3]\nnetwork { relu() }\n",
    "labels.arch": 'arch l\ninput x: [3]\nnetwork {\n    s = "a" * 1000000\n    for i in range(40000) { l{i}{s}: relu() }\n}\n',
}
MEASURE = """
import resource, subprocess, sys
p = subprocess.run([sys.executable, "-m", "archspec", *sys.argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(p.returncode, r.ru_utime + r.ru_stime, r.ru_maxrss, "Traceback" in p.stderr.decode())
"""


@pytest.mark.slow
def test_every_command_is_bounded_on_small_files(tmp_path):
    """Every CLI command on each worst case above (all under 64 KB) takes under 10 s of CPU and 1 GB, or fails
    with an error: never a traceback."""
    import shutil
    for name, text in WORST.items():
        spec(tmp_path, text, name)
        assert len(text.encode()) < 64_000, name
    (tmp_path / "common.arch").write_text("block unit() { relu() }\n")
    commands = []
    for name in WORST:
        p = str(tmp_path / name)
        commands += [["check", p], ["analyze", p], ["analyze", p, "--depth", "0"], ["analyze", p, "--format", "md"],
                     ["diff", p, p, "--format", "md"], ["diff", p, p], ["compile", p, "-o", str(tmp_path / "m.py")],
                     ["diagram", p, "-o", str(tmp_path / "d.mmd")], ["fmt", "--check", p]]
        if shutil.which("dot"):
            commands.append(["diagram", p, "-o", str(tmp_path / "d.svg")])
    failures = []
    for args in commands:
        out = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, env=ENV,
                             timeout=300).stdout.split()
        rc, cpu, rss_kb, traceback = int(out[0]), float(out[1]), int(out[2]), out[3] == "True"
        if cpu > 10 or rss_kb > 1 << 20 or traceback:
            failures.append(f"{' '.join(args[:1] + [Path(args[1]).name] + args[2:3])}: rc {rc}, {cpu:.1f} s CPU, "
                            f"{rss_kb / 1024:.0f} MB, traceback {traceback}")
    assert not failures, "\n".join(failures)


def test_fan_based_init_of_a_norm_is_refused(tmp_path):
    """Found by the fuzz campaign: `init bn = "xavier_uniform"` crashed to_torch and the generated build()."""
    text = load_error(spec(tmp_path, 'arch x\ninput img: [3, 8, 8]\ninit bn = "xavier_uniform"\n'
                                     "network { conv(4, 3);  bn() }\n"))
    assert "needs a weight of 2 or more dimensions" in text and "x.arch:3:11" in text


# ---------------------------------------------------------------- the fuzzer's new surfaces, briefly

@pytest.mark.parametrize("kind, n", [("ir", 300), ("filename", 150), ("python", 40)])
def test_fuzz_hostile_surfaces(kind, n, tmp_path):
    """A fixed-seed taste of benchmarks/fuzz.py's new surfaces (the campaign runs them for minutes)."""
    import importlib.util
    loader = importlib.util.spec_from_file_location("archspec_fuzz_hostile", REPO / "benchmarks" / "fuzz.py")
    fuzz = importlib.util.module_from_spec(loader)
    sys.modules["archspec_fuzz_hostile"] = fuzz
    loader.loader.exec_module(fuzz)
    import random
    c = fuzz.Chooser(random.Random(16))
    importer = fuzz.AuditedImporter(tmp_path) if kind == "python" else None
    outcomes = {}
    try:
        for _ in range(n):
            out = (fuzz.run_ir_case(c) if kind == "ir" else fuzz.run_filename_case(c, tmp_path) if kind == "filename"
                   else fuzz.run_python_case(c, tmp_path, importer))
            assert not out.failed, f"{out.kind}: {out.detail}"
            outcomes[out.kind] = outcomes.get(out.kind, 0) + 1
    finally:
        if importer is not None:
            importer.close()
    assert outcomes.get("ok", 0) >= n // 20, outcomes  # the cases reach the end, not only errors

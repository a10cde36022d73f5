"""issue 17, "the first hour": what a new user meets first. Command-line mistakes are reported as command-line
errors, files of another kind are recognised, and nothing prints a traceback."""
from __future__ import annotations

import json

import pytest

from archspec.cli import main
from archspec.commands import parse_value
from helpers import write_spec


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# ---------------------------------------------------------------- errors where the mistake is

@pytest.mark.parametrize("argv, option, hint", [
    (("analyze", "resnet50", "--set", "num_clases=10"), "--set num_clases=10", "did you mean 'num_classes'?"),
    (("analyze", "specs/resnet.arch", "--variant", "resnet51"), "--variant resnet51", "did you mean 'resnet50'"),
    (("diff", "resnet18", "--set-b", "layerz=[1,1,1,1]"), "--set layerz=[1,1,1,1]", "did you mean 'layers'?"),
])
def test_command_line_mistakes_name_the_option(capsys, argv, option, hint):
    code, _, err = run(capsys, *argv)
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith(f"error: {option}: unknown "), err
    assert "-->" not in err  # no spec position: the mistake is on the command line
    assert hint in err


def test_set_lists_are_lists():
    assert parse_value("[[4,1],[8,2]]") == [[4, 1], [8, 2]]
    assert parse_value("[1, [2, [3]], true]") == [1, [2, [3]], True]
    assert parse_value("[]") == [] and parse_value("[[]]") == [[]]


def test_set_list_reaches_the_spec(capsys, tmp_path):
    spec = tmp_path / "net.arch"
    spec.write_text("param stages = [[4, 1]]\ninput x: [3, 8, 8]\n"
                    "network { for c, s in stages { conv(c, 3, stride = s, pad = 1) } }\n")
    code, out, _ = run(capsys, "analyze", str(spec), "--set", "stages=[[4,1],[8,2]]", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["params"] == (3 * 9 * 4 + 4) + (4 * 9 * 8 + 8)


@pytest.mark.parametrize("text", ["[[1,2]", "[1],[2]"])
def test_set_unbalanced_list_is_an_error(capsys, text):
    code, _, err = run(capsys, "analyze", "resnet18", "--set", f"layers={text}")
    assert code == 1 and "unbalanced brackets" in err


# ---------------------------------------------------------------- files of another kind

@pytest.mark.parametrize("name, kind, todo", [
    ("model.onnx", "an ONNX model", "archspec bench model.onnx"),
    ("weights.pth", "a PyTorch weights file", "--weights weights.pth"),
    ("model.py", "Python source", "archspec compile"),
])
def test_other_file_kinds_are_recognised(capsys, tmp_path, monkeypatch, name, kind, todo):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(b"\x08\x07" * (1 << 20))  # large and binary, like the real thing
    code, _, err = run(capsys, "analyze", name)
    assert code == 1 and f"'{name}' is {kind}, not an archspec spec" in err and todo in err


def test_list_a_spec_file_says_what_to_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_net.arch").write_text("input x: [3, 8, 8]\nnetwork { conv(4, 3) }\n")
    code, _, err = run(capsys, "list", "my_net.arch")
    assert code == 1 and "archspec analyze my_net.arch" in err


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_file_fails_check(capsys, tmp_path, text):
    spec = tmp_path / "empty.arch"
    spec.write_text(text)
    code, out, err = run(capsys, "check", str(spec))
    assert code == 1 and "is empty" in err and "ok" not in out


def test_diff_needs_a_second_spec(capsys):
    code, out, err = run(capsys, "diff", "resnet18")
    assert code == 1 and out == "" and "diff needs a second spec" in err
    code, out, _ = run(capsys, "diff", "resnet18", "--set-b", "num_classes=10")
    assert code == 0 and "num_classes=10" in out


# (moved from tests/fixtures/errors/, whose format needs a spec position: these mistakes have none)
@pytest.mark.parametrize("spec, argv, first, hint", [
    ("param width = 16\nnetwork { conv(width, 3) }", ("--set", "widht=8"),
     "--set widht=8: unknown parameter 'widht' of ", "did you mean 'width'?"),
    ("variant small { w = 8 }\nvariant large { w = 16 }\nnetwork { conv(w, 3) }", ("--variant", "big"),
     "--variant big: unknown variant 'big' of ", "variants: small, large"),
    ("network { conv(8, 3) }", ("--variant", "small"),
     "--variant small: 'net.arch' has no variants, but variant 'small' was asked for", "without a variant"),
])
def test_check_names_the_option(capsys, tmp_path, monkeypatch, spec, argv, first, hint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.arch").write_text("arch t\ninput x: [3, 32, 32]\n" + spec + "\n")
    code, _, err = run(capsys, "check", "net.arch", *argv)
    assert code == 1 and err.startswith("error: " + first) and hint in err and "-->" not in err, err


# ---------------------------------------------------------------- the language

def load_text(tmp_path, text: str, name: str = "net.arch"):
    import archspec
    return archspec.load(write_spec(tmp_path, text, name, dedent=False))


def errors_of(tmp_path, text: str):
    from archspec.errors import SpecError
    with pytest.raises(SpecError) as info:
        load_text(tmp_path, text)
    return info.value.diagnostics


def test_unknown_call_suggests_ops_and_blocks_not_builtins(tmp_path):
    # enumerat is a typo of the builtin enumerate, which a call must not suggest (interpolate is an op now)
    (d,) = errors_of(tmp_path, "input x: [3, 8, 8]\nnetwork {\n    enumerat(2)\n}\n")
    assert d.message == "unknown name 'enumerat'" and (d.pos.line, d.pos.col) == (3, 5)
    assert "enumerate" not in d.hint and "parameter" not in d.hint
    assert "neither an op nor a block" in d.hint and "docs/language.md" in d.hint
    (d,) = errors_of(tmp_path, "input x: [3, 8, 8]\nblock stem(c) { conv(c, 3) }\nnetwork { stm(4) }\n")
    assert d.hint.startswith("did you mean 'stem'")


def test_keyword_label_at_the_start_of_a_line(tmp_path):
    text = ("input x: [3, 8, 8]\nnetwork {\n    for i in range(2) {\n        block{i + 1}: conv(4, 1)\n    }\n"
            "    input: relu()\n}\n")
    arch = load_text(tmp_path, text)
    assert [n.name for n in arch.nodes] == ["block1", "block2", "input"]
    from archspec.formatter import format_text
    assert format_text(text) == text  # fmt keeps the label's brace tight


def test_an_earlier_error_does_not_poison_names_a_block_assigns(tmp_path):
    text = ("input x: [3, 8, 8]\nblock good(c) {\n    width = in.channels * 2\n    conv(width, 3)\n}\n"
            "network {\n    conv(nosuch, 3)\n    good(4)\n}\n")
    (d,) = errors_of(tmp_path, text)  # one error: no follow-on 'unknown name width'
    assert d.message == "unknown name 'nosuch'" and d.pos.line == 7


def test_nested_loop_targets_as_in_python(tmp_path):
    text = ("input x: [3, 16, 16]\nparam pairs = [[4, 1], [8, 2]]\nnetwork {\n"
            "    for i, (c, s) in enumerate(pairs) {\n        layer{i}: conv(c, 3, stride = s, pad = 1)\n    }\n"
            "    for (c, s) in [(c * 2, s) for j, (c, s) in enumerate(pairs) if j == 0] { conv(c, 1, stride = s) }\n"
            "}\n")
    arch = load_text(tmp_path, text)
    assert [(n.name, n.shape) for n in arch.nodes] == [("layer0", (4, 16, 16)), ("layer1", (8, 8, 8)),
                                                       ("2", (8, 8, 8))]  # unlabeled: its position
    (d,) = errors_of(tmp_path, "input x: [3, 8, 8]\nnetwork { for i, (a, b) in enumerate([1]) { conv(a, 1) } }\n")
    assert "cannot unpack 1 value into 2 names" in d.message


def test_pool_sizes_as_pytorch():
    """Every pool output size, ceil mode included, is the one nn.MaxPool2d gives (or both refuse)."""
    torch = pytest.importorskip("torch")
    from archspec.ops.conv import conv_out
    for size in range(1, 10):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in range(0, k // 2 + 1):
                    for ceil in (False, True):
                        try:
                            want = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), k, s, p,
                                                                  ceil_mode=ceil).shape[-1]
                        except RuntimeError:
                            want = 0
                        assert max(conv_out(size, k, s, p, 1, ceil), 0) == want, (size, k, s, p, ceil)


SQUEEZENET1_1 = """
arch squeezenet1_1
param resolution = 224
input image: [3, resolution, resolution]
block fire(squeeze, expand) {
    squeeze: conv(squeeze, 1);  squeeze_activation: relu()
    branch concat {
        { expand1x1: conv(expand, 1);  expand1x1_activation: relu() }
        { expand3x3: conv(expand, 3, pad = 1);  expand3x3_activation: relu() }
    }
}
network {
    features: {
        conv(64, 3, stride = 2);  relu();  maxpool(3, stride = 2, ceil = true)
        fire(16, 64);  fire(16, 64);  maxpool(3, stride = 2, ceil = true)
        fire(32, 128);  fire(32, 128);  maxpool(3, stride = 2, ceil = true)
        fire(48, 192);  fire(48, 192);  fire(64, 256);  fire(64, 256)
    }
    classifier: { dropout(0.5);  conv(1000, 1);  relu();  gap() }
    flatten()
}
"""


def test_squeezenet1_1_at_torchvision_minimum_size(tmp_path):
    """torchvision documents min_size 17x17 for SqueezeNet 1.1: three ceil-mode pools take 8 -> 4 -> 2 -> 1."""
    import archspec
    from refdata import modern
    path = tmp_path / "squeezenet.arch"
    path.write_text(SQUEEZENET1_1)
    arch = archspec.load(path, resolution=17)
    assert archspec.analyze(arch).params == modern()["squeezenet1_1"]["params"]
    pools = [n.shape for n in arch.nodes if n.op == "maxpool"]
    assert pools == [(64, 4, 4), (128, 2, 2), (256, 1, 1)]


@pytest.mark.parametrize("decl, message", [
    ('init stochastic_depth = "normal_0.01"', "init for 'stochastic_depth', an op without weights"),
    ('init bn = "kaiming_normal_fan_out"', "init scheme 'kaiming_normal_fan_out' needs a weight of 2 or more"),
])
def test_init_scheme_the_backends_cannot_apply_is_a_spec_error(tmp_path, decl, message):
    (d,) = errors_of(tmp_path, f"input x: [3, 8, 8]\n{decl}\nnetwork {{ conv(4, 3); bn(); stochastic_depth(0.1) }}\n")
    assert d.message.startswith(message) and d.pos.line == 2


def test_compile_never_emits_invalid_init_code(tmp_path):
    """Even an IR (a dump, say) that asks to initialise a weightless op gives source that parses."""
    import ast
    import dataclasses
    pytest.importorskip("torch")
    from archspec_compiler import emit_python
    arch = load_text(tmp_path, "input x: [3, 8, 8]\ninit conv = \"normal_0.01\"\n"
                               "network { conv(4, 3); stochastic_depth(0.1) }\n")
    arch = dataclasses.replace(arch, init={**arch.init, "stochastic_depth": "normal_0.01"})
    text = emit_python(arch)
    ast.parse(text)
    assert "isinstance(m, (nn.Conv2d,))" in text


# ---------------------------------------------------------------- reading the output

@pytest.mark.parametrize("model, depth", [("resnet50", 1), ("efficientnet_b0", 0), ("efficientnet_b0", 1)])
@pytest.mark.parametrize("width", [60, 80, 100])
def test_analyze_table_fits_the_terminal_and_never_cuts_a_number(model, depth, width):
    import archspec
    from archspec.analysis import human
    from archspec.commands.analyze import _rows, table_text
    report = archspec.analyze(archspec.load(model))
    text = table_text(report, depth, width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "…" not in text and "..." not in text
    body = lines[3:lines.index("")]
    rows = _rows(report, depth)
    starts = [i for i, x in enumerate(body) if len(x.split()) > 1]  # a wrapped name continues alone on its line
    assert len(starts) == len(rows)
    for (name, _kind, _n, shape, params, macs, _f), i, j in zip(rows, starts, starts[1:] + [len(body)]):
        line = body[i]
        assert line.split()[0] + "".join(x.strip() for x in body[i + 1:j]) == name
        padded = f" {line} "
        assert f" {'x'.join(map(str, shape))} " in padded and f" {human(macs)} " in padded, line
        assert f" {params:,} " in padded or f" {human(params)} " in padded, line


def test_piped_table_is_not_cut_at_120_columns(tmp_path):
    import os
    import subprocess
    import sys
    label = "a_very_long_label_" * 8  # 144 characters
    spec = tmp_path / "wide.arch"
    spec.write_text(f"input x: [3, 8, 8]\nnetwork {{ {label}: conv(4, 3) }}\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "archspec", "analyze", str(spec), "--depth", "0"], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith(label))
    assert len(line) > 150 and line.split()[-1] == "1" and "112" in line.split()  # stride and params, whole


class _Terminal:
    """A stand-in for a terminal's stderr: records what is written, says it is a tty."""

    def __init__(self):
        import io
        self.buf = io.StringIO()

    def isatty(self):
        return True

    def write(self, s):
        return self.buf.write(s)

    def flush(self):
        pass

    def fileno(self):
        raise OSError("no descriptor")


TINY = "arch tiny\ninput x: [3, 16, 16]\nnetwork { conv1: conv(8, 3, pad = 1, bias = false); bn1: bn(); relu(); gap(); " \
       "flatten(); fc: linear(10) }\n"


def test_export_speaks_like_analyze_and_shows_progress_only_on_a_terminal(capsys, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    import sys
    import archspec
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    report = archspec.analyze(archspec.load(spec))
    code, out, err = run(capsys, "export", str(spec), "-o", str(tmp_path / "a.onnx"))
    assert code == 0 and err == ""  # piped: no progress
    assert f" {report.params:,} params, {report.buffers:,} buffers, " in out and "parameters" not in out
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["export", str(spec), "-o", str(tmp_path / "b.onnx")]) == 0
    assert "exporting tiny" in term.buf.getvalue()


def test_export_checks_its_destination_before_building(capsys, tmp_path, monkeypatch):
    import archspec.loader
    calls = []
    monkeypatch.setattr(archspec.loader, "load", lambda *a, **k: calls.append(a))
    code, _, err = run(capsys, "export", "resnet18", "-o", str(tmp_path / "nope" / "x.onnx"))
    assert code == 1 and err.startswith(f"error: -o {tmp_path / 'nope' / 'x.onnx'}: the folder ") and not calls
    code, _, err = run(capsys, "export", "resnet18", "-o", str(tmp_path))
    assert code == 1 and "is a folder" in err and not calls


@pytest.mark.parametrize("argv", [("diagram", "resnet18"), ("diff", "resnet18", "resnet34"),
                                  ("compile", "resnet18")])
def test_other_outputs_check_their_destination_first(capsys, tmp_path, monkeypatch, argv):
    import archspec.loader
    monkeypatch.setattr(archspec.loader, "load", lambda *a, **k: pytest.fail("loaded before checking -o"))
    code, _, err = run(capsys, *argv, "-o", str(tmp_path / "nope" / "out.svg"))
    assert code == 1 and "the folder" in err and "does not exist" in err


@pytest.mark.parametrize("argv, missing, extra", [
    (("compile", "resnet18"), "torch", "torch"),
    (("export", "resnet18"), "onnx", "onnx"),
    (("bench", "model.onnx"), "onnxruntime", "onnx"),
])
def test_a_missing_extra_is_one_line_naming_the_install(capsys, monkeypatch, argv, missing, extra):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.strip() == f"error: archspec {argv[0]} needs {missing}, not installed: pip install 'archspec-dsl[{extra}]'"

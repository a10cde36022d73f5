"""issue 17, "the first hour": what a new user meets first. Command-line mistakes are reported as command-line
errors, files of another kind are recognised, and nothing prints a traceback."""
from __future__ import annotations

import json

import pytest

from archspec.cli import main
from archspec.commands import parse_value


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

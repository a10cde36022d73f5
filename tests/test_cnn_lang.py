"""Issue 14's language features: dashed labels, channel split and shuffle, training-only outputs, constant
per-channel affines, resampling ops (upsample, interpolate, transposed conv, pixel shuffle, crop) and 3-D."""
from __future__ import annotations

import textwrap

import pytest

import archspec
from archspec import SpecError
from archspec.formatter import format_text


def load(tmp_path, text: str, **kw):
    p = tmp_path / "x.arch"
    p.write_text(textwrap.dedent(text))
    return archspec.load(p, **kw)


def error(tmp_path, text: str):
    with pytest.raises(SpecError) as exc:
        load(tmp_path, text)
    return exc.value.first


# ---------------------------------------------------------------- labels: any PyTorch module path segment

DASHED = """\
    arch regnet_names
    input image: [3, 8, 8]
    network {
        trunk_output: {
            block1: {
                block1-0: conv(4, 3, pad = 1)
                for j in range(1, 3) {
                    block1-{j}: relu()
                }
            }
            for i in range(2, 4) {
                block{i}: { block{i}-0: relu() }
            }
        }
        0: relu()
        x = [1, 2, 3][2 - 1:]
        y = x[0] - 1
        stage{y}-{y + 1}_a: relu()
    }
    """


def test_dashed_and_interpolated_labels_name_modules(tmp_path):
    arch = load(tmp_path, DASHED)
    assert [n.name for n in arch.nodes] == [
        "trunk_output.block1.block1-0", "trunk_output.block1.block1-1", "trunk_output.block1.block1-2",
        "trunk_output.block2.block2-0", "trunk_output.block3.block3-0", "0", "stage1-2_a"]
    text = textwrap.dedent(DASHED)
    assert format_text(text) == text  # canonical: the dashes stay glued, arithmetic keeps its spaces
    assert "y = x[0] - 1" in format_text(text.replace("y = x[0] - 1", "y = x[0]-1"))


def test_dashed_labels_reach_torch_and_source(tmp_path):
    torch = pytest.importorskip("torch")
    from compiler import to_torch
    from compiler.pysource import emit_python
    arch = load(tmp_path, DASHED)
    module = to_torch(arch)
    assert list(module.state_dict()) == ["trunk_output.block1.block1-0.weight", "trunk_output.block1.block1-0.bias"]
    namespace: dict = {}
    exec(compile(emit_python(arch), "gen.py", "exec"), namespace)
    gen = namespace["build"]()
    assert list(gen.state_dict()) == list(module.state_dict())
    gen.load_state_dict(module.state_dict())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(gen.eval()(x), module.eval()(x))


@pytest.mark.parametrize("text, where, what", [
    ('    s = "a.b"\n    x{s}: relu()\n', (5, 5), "invalid label 'xa.b'"),
    ('    a-b : relu();  c = 1 -d: relu()\n', (4, 28), None),  # '1 -d:' is no label
    ('    -a: relu()\n', (4, 5), None),
])
def test_bad_labels_are_positioned_errors(tmp_path, text, where, what):
    d = error(tmp_path, "arch bad\ninput image: [3, 4, 4]\nnetwork {\n" + text + "}\n")
    assert (d.pos.line, d.pos.col) == where
    if what:
        assert what in d.message

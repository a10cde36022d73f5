"""Windowed attention's ops (archspec/ops/window.py): the shifted-window mask's rule on a case small enough to work
out by hand, every op in one Swin V2 attention against onnxruntime, linear's zero_bias, the order statement, and
the positioned errors of hostile arguments."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import archspec
from archspec import SpecError
from archspec.ops.tensor import relative_coords_table, relative_position_index
from archspec.ops.window import shifted_window_mask


def test_shifted_window_mask_4x4():
    # 4x4 map, 2x2 windows, shift 1: rows 0-1 are region 0, row 2 region 1, row 3 region 2 (same for columns)
    m = shifted_window_mask(4, 4, 2, 2, 1, 1)
    assert len(m) == 4 * 4 * 4
    windows = [m[i * 16:(i + 1) * 16] for i in range(4)]
    assert windows[0] == [0.0] * 16  # top-left window: one region
    # top-right window: columns 2 (region 1) and 3 (region 2), rows in region 0: tokens 0, 2 vs 1, 3
    assert windows[1][:4] == [0.0, -100.0, 0.0, -100.0]
    # bottom-right window: four regions, each token sees only itself
    assert windows[3] == [0.0 if i == j else -100.0 for i in range(4) for j in range(4)]


# ---------------------------------------------------------------- the ops in a spec

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "window_ops.arch"   # the example of docs/language.md


def _load(tmp_path, body: str, head: str = "input x: [8, 8, 16]"):
    path = tmp_path / "t.arch"
    path.write_text(f"arch t\n{head}\nnetwork {{\n{textwrap.dedent(body)}\n}}\n")
    return archspec.load(path)


def _error(tmp_path, body: str, head: str = "input x: [8, 8, 16]"):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, body, head)
    d = info.value.first
    assert d.pos is not None and d.pos.file.endswith("t.arch")
    return d


def test_window_ops_in_torch_and_onnxruntime():
    """Every op of window.py in one Swin V2 attention: the stored buffers (not the mask), and onnxruntime equal to
    torch in float32 on two opsets and in float16."""
    import numpy as np
    import torch

    from archspec_compiler import to_onnx, to_torch
    from archspec_compiler.runtime import Session

    arch = archspec.load(FIXTURE)
    module = to_torch(arch).eval()
    state = module.state_dict()
    # `order qkv, proj, cpb_mlp`: the bias MLP, which the data meets before proj, is registered last
    assert list(state) == ["attn.logit_scale", "attn.relative_coords_table", "attn.relative_position_index",
                           "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                           "attn.cpb_mlp.0.weight", "attn.cpb_mlp.0.bias", "attn.cpb_mlp.2.weight"]  # no attn_mask
    assert state["attn.relative_position_index"].dtype == torch.int64
    assert state["attn.relative_position_index"].tolist() == relative_position_index(4, 4)[0]
    assert state["attn.relative_coords_table"].flatten().tolist() == pytest.approx(relative_coords_table(4, 4)[0])
    assert archspec.analyze(arch).buffers == 16 * 16 + 7 * 7 * 2
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        want = module(x).numpy()
    for opset in (13, 21):
        got = Session(to_onnx(arch, module=module, opset=opset), providers="cpu").run(x.numpy())[0]
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    half = Session(to_onnx(arch, module=module, dtype="float16"), providers="cpu").run(x.numpy().astype(np.float16))[0]
    assert np.abs(half.astype(np.float32) - want).max() <= 1e-2 * np.abs(want).max()


def test_zero_bias_holds_a_bias_range_at_zero():
    import torch

    from archspec_compiler import to_torch

    module = to_torch(archspec.load(FIXTURE)).eval()
    qkv = module.get_submodule("attn.qkv")
    x = torch.randn(3, 16)
    bias = qkv.bias.detach().clone()
    bias[16:32] = 0
    assert torch.allclose(qkv(x), x @ qkv.weight.T + bias)


@pytest.mark.parametrize("body, words", [
    ("mask: shifted_window_mask([8, 8, 8], window = [4, 4], shift = [2, 2])", "one size or two"),
    ("mask: shifted_window_mask([9, 8], window = [4, 4], shift = [2, 2])", "no whole number"),
    ("mask: shifted_window_mask([8, 8], window = [4, 4], shift = [4, 2])", "smaller than the window"),
    ("mask: shifted_window_mask([1000000, 1000000], window = [1, 1], shift = [0, 0])", "must be positive"),
    ("mask: shifted_window_mask([4096, 4096], window = [64, 64], shift = [1, 1])", "over the limit"),
    ("clamp()", "min, max or both"),
    ("clamp(min = 1, max = 0)", "above max"),
    ("normalize(dim = 3)", "out of range"),
    ("linear(48, zero_bias = [16, 64])", "zero_bias"),
    ("linear(48, bias = false, zero_bias = [0, 16])", "needs a bias"),
])
def test_hostile_window_ops_get_positioned_errors(tmp_path, body, words):
    assert words in _error(tmp_path, body).message


def test_order_reorders_the_state_dict(tmp_path):
    from archspec_compiler import to_torch

    body = """
        {
            residual { attn: linear(16);  norm: layernorm() }   # post-norm: the data meets attn first
            order norm, attn
        }
    """
    arch = _load(tmp_path, body)
    assert arch.orders == {"0": ("norm", "attn")}
    assert list(to_torch(arch).state_dict()) == ["0.norm.weight", "0.norm.bias", "0.attn.weight", "0.attn.bias"]


@pytest.mark.parametrize("body, words", [
    ("a: linear(16);  b: linear(16)\norder b, c", "order names 'c', which is no layer or scope"),
    ("a: linear(16);  b: linear(16)\norder b, a, b", "order names a child twice"),
    ("a: linear(16);  b: linear(16)\norder b, a\norder a, b", "one order statement"),
])
def test_order_errors(tmp_path, body, words):
    assert words in _error(tmp_path, body).message

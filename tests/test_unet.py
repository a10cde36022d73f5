"""specs/unet.arch: Ronneberger et al. 2015 (the paper's layout) and the common same-padding bilinear layout.
Parameter counts and the output's receptive field are derived by hand here, from the paper's Fig. 1."""
from __future__ import annotations

import numpy as np
import pytest

import archspec


def double_conv(cin: int, c: int, bias: bool = True, bn: bool = False) -> int:
    """Two 3x3 convolutions cin -> c -> c (with biases, or followed by batch norm)."""
    return 9 * cin * c + 9 * c * c + (2 * c if bias else 0) + (4 * c if bn else 0)


def test_paper_layout_shapes_and_parameters():
    arch = archspec.load("unet")
    assert arch.inputs[0].shape == (1, 572, 572) and arch.nodes[-1].shape == (2, 388, 388)  # Fig. 1
    widths = [64, 128, 256, 512, 1024]
    encoder = double_conv(1, 64) + sum(double_conv(a, b) for a, b in zip(widths, widths[1:]))
    # each expanding step: a 2x2 up-convolution c -> c/2 (with bias), then two 3x3 convs on the concatenation
    decoder = sum(c * (c // 2) * 4 + c // 2 + double_conv(c, c // 2) for c in widths[:0:-1])
    head = 64 * 2 + 2
    assert encoder + decoder + head == 31_030_658
    assert archspec.analyze(arch).params == 31_030_658
    # the map sizes of Fig. 1, level by level
    sizes = {n.name: n.shape[1] for n in arch.nodes}
    assert [sizes[f"inc.double_conv.{i}"] for i in (0, 2)] == [570, 568]
    assert sizes["down4.maxpool_conv.1.double_conv.2"] == 28 and sizes["up1.up"] == 56
    assert sizes["up1.1"] == 56  # the 64x64 skip cropped to 56x56


def test_paper_layout_receptive_field_by_hand():
    # Receptive-field recurrences (Araujo et al. 2019) along the deepest path, by hand:
    # r = 1, j = 1; a 3x3 valid conv adds 2j, a 2x2/2 pool adds j and doubles j, a 2x2/2 up-convolution
    # reads one unit per output unit and halves j.
    r, j = 1, 1
    for level in range(4):          # contracting path: two convs, then a pool
        r += 2 * 2 * j
        r += j
        j *= 2
    r += 2 * 2 * j                  # bottom: two convs at j = 16
    for level in range(4):          # expanding path: up-convolution, then two convs
        j //= 2
        r += 2 * 2 * j
    assert (r, j) == (200, 1)
    # Padding: no conv pads; each up-convolution's output units come in pairs reading one unit, whose
    # centres the half-pixel line puts 1/4 of an input unit (of stride 16, 8, 4, 2) before the pair's first
    p = sum(0.25 * j_in for j_in in (16, 8, 4, 2))
    assert p == 7.5
    report = archspec.analyze(archspec.load("unet"))
    field = report.receptive_field
    assert field.size == (200, 200) and field.stride == (1, 1) and field.padding == (7.5, 7.5)
    assert not report.warnings  # each cropped skip lines up with its up-convolved path
    # every conv is unpadded: no field reaches outside the tile, and 572 - 388 = 184 pixels of context
    assert 572 - 388 == 184 <= 200


def test_bilinear_layout_parameters():
    arch = archspec.load("unet_bilinear")
    assert arch.inputs[0].shape == (3, 256, 256) and arch.nodes[-1].shape == (2, 256, 256)
    bn = dict(bias=False, bn=True)
    enc = double_conv(3, 64, **bn) + double_conv(64, 128, **bn) + double_conv(128, 256, **bn) \
        + double_conv(256, 512, **bn) + double_conv(512, 512, **bn)       # down4: 1024 // 2
    def up(cat, out):  # bilinear: DoubleConv(cat, out, mid = cat // 2), no up-convolution weights
        mid = cat // 2
        return 9 * cat * mid + 2 * mid + 9 * mid * out + 2 * out
    dec = up(1024, 256) + up(512, 128) + up(256, 64) + up(128, 64)
    assert archspec.analyze(arch).params == enc + dec + 64 * 2 + 2 == 17_263_042


@pytest.mark.parametrize("variant, size", [("unet", 572), ("unet_bilinear", 96)])
def test_unet_exports_and_runs_in_onnxruntime_as_in_torch(variant, size):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from archspec_compiler import to_onnx, to_torch
    from archspec_compiler.runtime import Session
    arch = archspec.load(variant, base=4, input_size=(size, size))  # the same layout, 1/16 of the channels
    torch.manual_seed(0)
    module = to_torch(arch).eval()
    x = torch.randn(2, *arch.inputs[0].shape)
    with torch.no_grad():
        want = module(x).numpy()
    got = Session(to_onnx(arch, module=module), providers="cpu").run(x.numpy())[0]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    # the standalone source (its CenterCrop copied in) computes the same
    from archspec_compiler.pysource import emit_python
    namespace: dict = {}
    exec(compile(emit_python(arch), "unet_gen.py", "exec"), namespace)
    gen = namespace["build"]()
    gen.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert torch.equal(gen.eval()(x), module(x))

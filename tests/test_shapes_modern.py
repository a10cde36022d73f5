"""The modern half of the zoo (DenseNet, MobileNetV2/V3, EfficientNet): shapes at checkpoints, parameter
counts, state_dict layout and batch-norm settings.

Expected shapes are worked out by hand from the papers' tables and the reference README (224 input:
stem /2, then each stride-2 stage halves the side); parameter counts and layouts come from
/work/shared/reference (torchvision). Nothing here is copied from the code's own output."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import archspec
from archspec import ops

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "torchvision_layouts.json"

MODELS = ["densenet121", "densenet161", "densenet169", "densenet201", "mobilenet_v2",
          *[f"efficientnet_b{i}" for i in range(8)], "mobilenet_v3_large", "mobilenet_v3_small"]


def out_shape(arch, scope: str) -> tuple[int, ...]:
    """Shape of a scope's output: its last node (nodes are topologically ordered and these are chains)."""
    inside = [n for n in arch.nodes if n.name == scope or n.name.startswith(scope + ".")]
    assert inside, f"no scope {scope!r} in {arch.title}"
    return inside[-1].shape


def param_count(arch) -> int:
    shapes = arch.shapes()
    return sum(ops.REGISTRY[n.op].params(n.attrs, [shapes[i] for i in n.inputs], n.shape) for n in arch.nodes)


def expected_layout(arch) -> list[tuple[str, list[int]]]:
    """The state_dict a torch module with these names would have, read off the IR: conv, bn, linear."""
    out = []
    for n in arch.nodes:
        a = n.attrs
        if n.op == "conv":
            out.append((f"{n.name}.weight", [a["out"], a["in"] // a["groups"], *a["kernel"]]))
            out += [(f"{n.name}.bias", [a["out"]])] if a["bias"] else []
        elif n.op == "bn":
            c = [a["channels"]]
            out += [(f"{n.name}.{k}", c) for k in ("weight", "bias", "running_mean", "running_var")]
            out.append((f"{n.name}.num_batches_tracked", []))
        elif n.op == "linear":
            out.append((f"{n.name}.weight", [a["out"], a["in"]]))
            out += [(f"{n.name}.bias", [a["out"]])] if a["bias"] else []
    return out


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


# ---------------------------------------------------------------- parameters and layout

@pytest.mark.parametrize("name", MODELS)
def test_params_and_layout_match_torchvision(name, reference):
    arch = archspec.load(name)
    ref = reference[name]
    assert param_count(arch) == ref["params"]
    assert expected_layout(arch) == [(k, list(s)) for k, s in ref["state_dict"]]
    assert arch.nodes[-1].shape == (1000,)


@pytest.mark.parametrize("width, params", [(0.5, 1_968_680), (1.0, 3_504_872), (1.4, 6_108_776)])
def test_mobilenet_v2_width(width, params):
    assert param_count(archspec.load("mobilenet_v2", width=width)) == params


@pytest.mark.parametrize("name, eps, momentum", [
    *[(f"efficientnet_b{i}", 1e-5, 0.1) for i in range(5)],
    *[(f"efficientnet_b{i}", 1e-3, 0.01) for i in range(5, 8)],
    ("mobilenet_v3_large", 1e-3, 0.01), ("mobilenet_v3_small", 1e-3, 0.01),
    ("densenet121", 1e-5, 0.1), ("mobilenet_v2", 1e-5, 0.1),
])
def test_batch_norm_settings(name, eps, momentum):
    bns = [n.attrs for n in archspec.load(name).nodes if n.op == "bn"]
    assert bns and all(a["eps"] == eps and a["momentum"] == momentum for a in bns)


# ---------------------------------------------------------------- DenseNet

# (growth k, layers per block, initial channels): channels after block b = in + n_b * k; transitions halve.
DENSENET = {"densenet121": (32, [6, 12, 24, 16], 64), "densenet161": (48, [6, 12, 36, 24], 96),
            "densenet169": (32, [6, 12, 32, 32], 64), "densenet201": (32, [6, 12, 48, 32], 64)}
DENSENET_BLOCKS = {  # hand-computed (channels, side) after each dense block and transition, 224 input
    "densenet121": [(256, 56), (128, 28), (512, 28), (256, 14), (1024, 14), (512, 7), (1024, 7)],
    "densenet161": [(384, 56), (192, 28), (768, 28), (384, 14), (2112, 14), (1056, 7), (2208, 7)],
    "densenet169": [(256, 56), (128, 28), (512, 28), (256, 14), (1280, 14), (640, 7), (1664, 7)],
    "densenet201": [(256, 56), (128, 28), (512, 28), (256, 14), (1792, 14), (896, 7), (1920, 7)],
}


@pytest.mark.parametrize("name", DENSENET)
def test_densenet_checkpoints(name):
    arch = archspec.load(name)
    assert out_shape(arch, "features.conv0") == (DENSENET[name][2], 112, 112)
    assert out_shape(arch, "features.pool0") == (DENSENET[name][2], 56, 56)
    scopes = ["features.denseblock1", "features.transition1", "features.denseblock2", "features.transition2",
              "features.denseblock3", "features.transition3", "features.denseblock4"]
    assert [out_shape(arch, s) for s in scopes] == [(c, s, s) for c, s in DENSENET_BLOCKS[name]]
    assert out_shape(arch, "features.norm5") == out_shape(arch, "features.denseblock4")
    assert not [n for n in arch.nodes if n.name.startswith("features.transition4")]  # none after the last block
    # every dense layer adds k channels by concatenation, in order: input first
    k, blocks, _ = DENSENET[name]
    cats = [n for n in arch.nodes if n.op == "cat"]
    assert len(cats) == sum(blocks)
    assert all(arch.shapes()[c.inputs[1]][0] == k and c.inputs[0] != c.inputs[1] for c in cats)


# ---------------------------------------------------------------- MobileNetV2

# features.N output per stage end (stem, 7 stages, last conv) at 224: (channels, side)
MNV2_CHECKPOINTS = {
    1.0: {0: (32, 112), 1: (16, 112), 3: (24, 56), 6: (32, 28), 10: (64, 14), 13: (96, 14), 16: (160, 7),
          17: (320, 7), 18: (1280, 7)},
    # make_divisible(c * 0.5, 8): 16 8 16 16 32 48 80 160; the last conv never shrinks below 1280
    0.5: {0: (16, 112), 1: (8, 112), 3: (16, 56), 6: (16, 28), 10: (32, 14), 13: (48, 14), 16: (80, 7),
          17: (160, 7), 18: (1280, 7)},
    # c * 1.4 rounded to the nearest multiple of 8: 48 24 32 48 88 136 224 448, last 1792
    1.4: {0: (48, 112), 1: (24, 112), 3: (32, 56), 6: (48, 28), 10: (88, 14), 13: (136, 14), 16: (224, 7),
          17: (448, 7), 18: (1792, 7)},
}


@pytest.mark.parametrize("width", MNV2_CHECKPOINTS)
def test_mobilenet_v2_checkpoints(width):
    arch = archspec.load("mobilenet_v2", width=width)
    for i, (c, s) in MNV2_CHECKPOINTS[width].items():
        assert out_shape(arch, f"features.{i}") == (c, s, s), f"features.{i}"
    assert not [n for n in arch.nodes if n.name.startswith("features.19")]
    # residuals: stride 1 and same channels = every repeat but the first of a stage, (0+1+2+3+2+2+0)
    assert sum(n.op == "add" for n in arch.nodes) == 10
    assert arch.node("features.1.conv.0.0").attrs["groups"] == MNV2_CHECKPOINTS[width][0][0]  # t = 1: no expand conv, depthwise first
    assert arch.node("features.2.conv.0.0").attrs["kernel"] == [1, 1]  # t = 6: expand first
    assert [n.attrs["p"] for n in arch.nodes if n.op == "dropout"] == [0.2]


def test_mobilenet_v2_resolution():
    arch = archspec.load("mobilenet_v2", resolution=160)
    assert out_shape(arch, "features.18") == (1280, 5, 5)


# ---------------------------------------------------------------- EfficientNet

B0_STAGES = [(16, 112), (24, 56), (40, 28), (80, 14), (112, 14), (192, 7), (320, 7)]
B0_REPEATS = [1, 2, 2, 3, 3, 4, 1]


def test_efficientnet_b0_stages():
    arch = archspec.load("efficientnet_b0")
    assert arch.inputs[0].shape == (3, 224, 224)
    assert out_shape(arch, "features.0") == (32, 112, 112)
    for i, (c, s) in enumerate(B0_STAGES):
        assert out_shape(arch, f"features.{i + 1}") == (c, s, s)
        assert {sc.name for sc in arch.scopes if sc.block == "mbconv" and sc.name.startswith(f"features.{i + 1}.")} \
            == {f"features.{i + 1}.{j}" for j in range(B0_REPEATS[i])}
    assert out_shape(arch, "features.8") == (1280, 7, 7)
    # squeeze width = block input // 4, on the expanded tensor: first block of stage 2 is 16 -> 96, squeeze 4
    assert arch.node("features.2.0.block.2.fc1").attrs["out"] == 4
    assert arch.node("features.2.0.block.2.fc2").attrs["out"] == 96


def test_efficientnet_b0_stochastic_depth_and_residuals():
    arch = archspec.load("efficientnet_b0")
    # global block index b over 16 blocks; a residual only where stride 1 and channels match
    blocks = [f"features.{i + 1}.{j}" for i, n in enumerate(B0_REPEATS) for j in range(n)]
    expected = {f"{b}.stochastic_depth": 0.2 * k / 16 for k, b in enumerate(blocks) if not b.endswith(".0")}
    got = {n.name: n.attrs["p"] for n in arch.nodes if n.op == "stochastic_depth"}
    assert got.keys() == expected.keys()
    assert all(math.isclose(got[k], v) for k, v in expected.items())
    for n in arch.nodes:
        if n.op == "add":  # y = stochastic_depth(block(x)) + x
            assert arch.node(n.inputs[0]).op == "stochastic_depth"
            assert arch.node(n.inputs[1]).shape == n.shape
        if n.op == "mul":  # squeeze-and-excitation: x * sigmoid(fc2(silu(fc1(gap(x)))))
            assert arch.node(n.inputs[1]).op == "sigmoid" and arch.node(n.inputs[0]).op == "silu"
    assert sum(n.op == "add" for n in arch.nodes) == 9
    assert sum(n.op == "mul" for n in arch.nodes) == 16


def test_efficientnet_b7_scaling():
    arch = archspec.load("efficientnet_b7")  # width 2.0, depth 3.1, 600: repeats ceil(n * 3.1)
    assert arch.inputs[0].shape == (3, 600, 600)
    repeats = [4, 7, 7, 10, 10, 13, 4]
    sides = [300, 150, 75, 38, 38, 19, 19]  # k5 stride 2 pad 2 on 75 gives 38
    for i, (c, n, s) in enumerate(zip([32, 48, 80, 160, 224, 384, 640], repeats, sides)):
        assert out_shape(arch, f"features.{i + 1}") == (c, s, s)
        assert f"features.{i + 1}.{n - 1}" in {sc.name for sc in arch.scopes}
        assert f"features.{i + 1}.{n}" not in {sc.name for sc in arch.scopes}
    assert out_shape(arch, "features.8") == (2560, 19, 19)
    assert [n.attrs["p"] for n in arch.nodes if n.op == "dropout"] == [0.5]
    assert max(n.attrs["p"] for n in arch.nodes if n.op == "stochastic_depth") == pytest.approx(0.2 * 54 / 55)  # the last block, a residual


def test_efficientnet_overrides():
    arch = archspec.load("efficientnet_b0", width=1.2, resolution=300)
    assert arch.inputs[0].shape == (3, 300, 300)
    assert out_shape(arch, "features.0") == (40, 150, 150)  # make_divisible(32 * 1.2) = 40 (38.4 rounds up)
    assert out_shape(arch, "features.7") == (384, 10, 10)
    assert out_shape(arch, "features.8") == (1536, 10, 10)
    assert {sc.name for sc in arch.scopes if sc.name.startswith("features.6.")} >= {"features.6.3"}  # B0 depth
    assert archspec.load("efficientnet_b3").params["width"] == 1.2


# ---------------------------------------------------------------- MobileNetV3

MNV3 = {  # features.N -> (channels, side): stem, stride-2 bnecks, last stage, last conv; SE and residual counts
    "mobilenet_v3_large": ({0: (16, 112), 1: (16, 112), 2: (24, 56), 4: (40, 28), 7: (80, 14), 12: (112, 14),
                            13: (160, 7), 15: (160, 7), 16: (960, 7)}, 8, 10, 1280),
    "mobilenet_v3_small": ({0: (16, 112), 1: (16, 56), 2: (24, 28), 4: (40, 14), 8: (48, 14), 9: (96, 7),
                            11: (96, 7), 12: (576, 7)}, 9, 6, 1024),
}


@pytest.mark.parametrize("name", MNV3)
def test_mobilenet_v3_checkpoints(name):
    checkpoints, se, residuals, hidden = MNV3[name]
    arch = archspec.load(name)
    for i, (c, s) in checkpoints.items():
        assert out_shape(arch, f"features.{i}") == (c, s, s), f"features.{i}"
    assert sum(n.op == "mul" for n in arch.nodes) == se
    assert sum(n.op == "add" for n in arch.nodes) == residuals
    assert arch.node("classifier.0").shape == (hidden,)
    assert arch.node("features.0.2").op == "hardswish"
    # SE: squeeze make_divisible(expanded // 4, 8), ReLU then hardsigmoid
    gates = [n for n in arch.nodes if n.op == "mul"]
    assert all(arch.node(g.inputs[1]).op == "hardsigmoid" for g in gates)
    assert arch.node("features.1.block.1.fc1" if name.endswith("small") else "features.4.block.2.fc1") \
        .attrs["out"] == (8 if name.endswith("small") else 24)  # 16 // 4 -> 8 (minimum); 72 // 4 = 18 -> 24


def test_block_is_a_label_after_a_newline(tmp_path):
    """torchvision names MBConv's body `block`, a keyword of the language: it must work as a label."""
    spec = tmp_path / "k.arch"
    spec.write_text("arch k\ninput x: [4, 8, 8]\nnetwork {\n    relu()\n    block: { conv(4, 1) }\n}\n")
    assert [n.name for n in archspec.load(str(spec)).nodes] == ["0", "block.0"]

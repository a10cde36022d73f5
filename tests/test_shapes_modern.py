"""The modern half of the zoo (DenseNet, MobileNetV2/V3, EfficientNet): shapes at checkpoints, parameter
counts, state_dict layout and batch-norm settings.

Expected shapes are worked out by hand from the papers' tables and the reference README (224 input:
stem /2, then each stride-2 stage halves the side); parameter counts and layouts come from
tests/reference (torchvision's facts, copied from the shared reference folder). Nothing here is copied from the code's own output."""
from __future__ import annotations

import math

import pytest

import archspec
from archspec import ops
from refdata import layouts


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
    return layouts()


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


# ---------------------------------------------------------------- forward vs an independent implementation
# Hand-written torchvision-style modules (same names, written from torchvision's model code, not from the
# specs): the compiled spec's weights load into them with strict=True and both compute the same function.
# This catches what counts and layouts cannot: a wrong activation, a missing residual, SE wiring.

def _reference_models():
    import torch
    from torch import nn

    def mdiv(v):
        from archspec.expressions import make_divisible
        return make_divisible(v, 8)

    def cna(cin, cout, k, s=1, g=1, act=nn.ReLU6, eps=1e-5, mom=0.1):  # Conv2dNormActivation
        layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(cout, eps, mom)]
        return nn.Sequential(*layers, *([act()] if act else []))

    class SE(nn.Module):
        def __init__(self, c, sq, act, scale):
            super().__init__()
            self.avgpool, self.fc1, self.fc2 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, sq, 1), nn.Conv2d(sq, c, 1)
            self.activation, self.scale_activation = act(), scale()

        def forward(self, x):
            return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x

    class Res(nn.Module):  # body `conv` (MobileNetV2) or `block` (MBConv, V3); eval: stochastic depth is identity
        def __init__(self, attr, layers, res):
            super().__init__()
            setattr(self, attr, nn.Sequential(*layers))
            self.attr, self.res = attr, res

        def forward(self, x):
            y = getattr(self, self.attr)(x)
            return x + y if self.res else y

    class Net(nn.Module):
        def __init__(self, features, classifier, relu=False):
            super().__init__()
            self.features, self.classifier, self.relu = features, classifier, relu

        def forward(self, x):
            x = self.features(x)
            x = torch.relu(x) if self.relu else x
            return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def mobilenet_v2():
        feats, cin = [cna(3, 32, 3, 2)], 32
        for t, c, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                           [6, 160, 3, 2], [6, 320, 1, 1]]:
            for i in range(n):
                h, st = int(round(cin * t)), s if i == 0 else 1
                layers = ([cna(cin, h, 1)] if t != 1 else []) + [cna(h, h, 3, st, h), nn.Conv2d(h, c, 1, bias=False),
                                                               nn.BatchNorm2d(c)]
                feats.append(Res("conv", layers, st == 1 and cin == c))
                cin = c
        return Net(nn.Sequential(*feats, cna(320, 1280, 1)), nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000)))

    def efficientnet_b0():
        feats, cin = [cna(3, 32, 3, 2, act=nn.SiLU)], 32
        for t, k, s, c, n in [[1, 3, 1, 16, 1], [6, 3, 2, 24, 2], [6, 5, 2, 40, 2], [6, 3, 2, 80, 3],
                              [6, 5, 1, 112, 3], [6, 5, 2, 192, 4], [6, 3, 1, 320, 1]]:
            stage = []
            for i in range(n):
                h, st = mdiv(cin * t), s if i == 0 else 1
                layers = ([cna(cin, h, 1, act=nn.SiLU)] if h != cin else []) + [
                    cna(h, h, k, st, h, act=nn.SiLU), SE(h, max(1, cin // 4), nn.SiLU, nn.Sigmoid), cna(h, c, 1, act=None)]
                stage.append(Res("block", layers, st == 1 and cin == c))
                cin = c
            feats.append(nn.Sequential(*stage))
        feats.append(cna(320, 1280, 1, act=nn.SiLU))
        return Net(nn.Sequential(*feats), nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000)))

    def mobilenet_v3_small():
        RE, HS = nn.ReLU, nn.Hardswish
        feats, cin = [cna(3, 16, 3, 2, act=HS, eps=1e-3, mom=0.01)], 16
        for k, e, c, se, act, s in [[3, 16, 16, 1, RE, 2], [3, 72, 24, 0, RE, 2], [3, 88, 24, 0, RE, 1],
                                    [5, 96, 40, 1, HS, 2], [5, 240, 40, 1, HS, 1], [5, 240, 40, 1, HS, 1],
                                    [5, 120, 48, 1, HS, 1], [5, 144, 48, 1, HS, 1], [5, 288, 96, 1, HS, 2],
                                    [5, 576, 96, 1, HS, 1], [5, 576, 96, 1, HS, 1]]:
            layers = ([cna(cin, e, 1, act=act, eps=1e-3, mom=0.01)] if e != cin else []) + \
                [cna(e, e, k, s, e, act=act, eps=1e-3, mom=0.01)] + \
                ([SE(e, mdiv(e // 4), nn.ReLU, nn.Hardsigmoid)] if se else []) + [cna(e, c, 1, act=None, eps=1e-3, mom=0.01)]
            feats.append(Res("block", layers, s == 1 and cin == c))
            cin = c
        feats.append(cna(96, 576, 1, act=HS, eps=1e-3, mom=0.01))
        return Net(nn.Sequential(*feats), nn.Sequential(nn.Linear(576, 1024), HS(), nn.Dropout(0.2), nn.Linear(1024, 1000)))

    def densenet121():
        from collections import OrderedDict

        class Layer(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.norm1, self.relu1, self.conv1 = nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 128, 1, bias=False)
                self.norm2, self.relu2 = nn.BatchNorm2d(128), nn.ReLU()
                self.conv2 = nn.Conv2d(128, 32, 3, padding=1, bias=False)

            def forward(self, feats):  # torchvision: each layer reads the concatenation of all before it
                x = torch.cat(feats, 1)
                return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))

        class Block(nn.ModuleDict):
            def forward(self, x):
                feats = [x]
                for layer in self.values():
                    feats.append(layer(feats))
                return torch.cat(feats, 1)

        f = OrderedDict(conv0=nn.Conv2d(3, 64, 7, 2, 3, bias=False), norm0=nn.BatchNorm2d(64), relu0=nn.ReLU(),
                        pool0=nn.MaxPool2d(3, 2, 1))
        c = 64
        for i, n in enumerate([6, 12, 24, 16]):
            f[f"denseblock{i + 1}"] = Block({f"denselayer{j + 1}": Layer(c + 32 * j) for j in range(n)})
            c += 32 * n
            if i < 3:
                f[f"transition{i + 1}"] = nn.Sequential(OrderedDict(
                    norm=nn.BatchNorm2d(c), relu=nn.ReLU(), conv=nn.Conv2d(c, c // 2, 1, bias=False), pool=nn.AvgPool2d(2, 2)))
                c //= 2
        f["norm5"] = nn.BatchNorm2d(c)
        return Net(nn.Sequential(f), nn.Linear(c, 1000), relu=True)

    return {"mobilenet_v2": mobilenet_v2, "efficientnet_b0": efficientnet_b0,
            "mobilenet_v3_small": mobilenet_v3_small, "densenet121": densenet121}


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0", "mobilenet_v3_small", "densenet121"])
def test_forward_matches_independent_implementation(name):
    torch = pytest.importorskip("torch")
    from archspec_compiler import to_torch

    torch.manual_seed(0)
    model = to_torch(archspec.load(name, resolution=64)).eval()
    state = model.state_dict()
    for k, v in state.items():  # non-trivial batch-norm statistics, so every norm matters
        if k.endswith(("running_mean", "bias")):
            v.normal_(0, 0.1)
        elif k.endswith(("running_var", "weight")) and v.ndim == 1:
            v.uniform_(0.5, 1.5)
    ref = _reference_models()[name]().eval()
    ref.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y, y_ref = model(x), ref(x)
    assert y.shape == (2, 1000)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)

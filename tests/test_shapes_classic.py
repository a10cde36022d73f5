"""Inferred shapes of the classic zoo models at checkpoints computed by hand from the papers' tables
(LeNet-5 Fig. 2, AlexNet Sec. 3.5, ZFNet Fig. 3, VGG Table 1, GoogLeNet Table 1, MobileNet Table 1) and
torchvision's layouts. Shapes exclude the batch axis."""
from __future__ import annotations

import math

import pytest

import archspec


def out(arch, scope: str) -> tuple[int, ...]:
    """Output shape of a scope (its last node) or of a single node."""
    nodes = [n for n in arch.nodes if n.name == scope or n.name.startswith(scope + ".")]
    assert nodes, f"no node or scope '{scope}' in {arch.title}"
    return nodes[-1].shape


def node(arch, name: str):
    return next(n for n in arch.nodes if n.name == name)


CHECKPOINTS = {
    "lenet5": {  # C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5, C5 120@1x1, F6 84, output 10
        "c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5), "c5": (120, 1, 1),
        "f6": (84,), "f7": (10,),
    },
    "alexnet": {  # 224: (224 + 4 - 11) // 4 + 1 = 55, pools 3/2: 55 -> 27 -> 13 -> 6
        "features.0": (64, 55, 55), "features.2": (64, 27, 27), "features.3": (192, 27, 27),
        "features.5": (192, 13, 13), "features.10": (256, 13, 13), "features": (256, 6, 6),
        "avgpool": (256, 6, 6), "classifier.1": (4096,), "classifier": (1000,),
    },
    "alexnet_original": {  # 227: (227 - 11) // 4 + 1 = 55; the paper's 96-256-384-384-256 maps, LRN at .2 and .6
        "features.0": (96, 55, 55), "features.2": (96, 55, 55), "features.3": (96, 27, 27),
        "features.4": (256, 27, 27), "features.6": (256, 27, 27), "features.7": (256, 13, 13),
        "features.8": (384, 13, 13), "features.10": (384, 13, 13), "features.12": (256, 13, 13),
        "features.14": (256, 6, 6), "classifier": (1000,),
    },
    "zfnet": {  # Fig. 3: 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6
        "features.0": (96, 110, 110), "features.2": (96, 55, 55), "features.4": (256, 26, 26),
        "features.6": (256, 13, 13), "features.8": (384, 13, 13), "features.10": (384, 13, 13),
        "features.12": (256, 13, 13), "features": (256, 6, 6), "classifier.1": (4096,),
    },
    "vgg16": {  # D: 2+2+3+3+3 convs, each stage halved by a 2x2 pool: pool5 is 512x7x7
        "features.0": (64, 224, 224), "features.4": (64, 112, 112), "features.9": (128, 56, 56),
        "features.16": (256, 28, 28), "features.23": (512, 14, 14), "features.30": (512, 7, 7),
        "avgpool": (512, 7, 7), "classifier.0": (4096,), "classifier": (1000,),
    },
    "vgg16_bn": {"features.1": (64, 224, 224), "features.43": (512, 7, 7), "classifier": (1000,)},
    "vgg11": {"features.2": (64, 112, 112), "features.20": (512, 7, 7)},  # A: conv3-64, maxpool first
    "vgg11_lrn": {"features.2": (64, 224, 224), "features.3": (64, 112, 112), "features": (512, 7, 7)},
    "vgg16_c": {"features.14": (256, 56, 56), "features.16": (256, 28, 28), "features": (512, 7, 7)},
    "googlenet": {  # Table 1: 112, 56 (ceil mode), 56, 28, 28x28x256, 28x28x480, 14, ..., 7x7x1024
        "conv1": (64, 112, 112), "maxpool1": (64, 56, 56), "conv2": (64, 56, 56), "conv3": (192, 56, 56),
        "maxpool2": (192, 28, 28), "inception3a": (256, 28, 28), "inception3b": (480, 28, 28),
        "maxpool3": (480, 14, 14), "inception4a": (512, 14, 14), "inception4b": (512, 14, 14),
        "inception4c": (512, 14, 14), "inception4d": (528, 14, 14), "inception4e": (832, 14, 14),
        "maxpool4": (832, 7, 7), "inception5a": (832, 7, 7), "inception5b": (1024, 7, 7),
        "avgpool": (1024, 1, 1), "fc": (1000,),
        "inception3a.branch1": (64, 28, 28), "inception3a.branch2": (128, 28, 28),
        "inception3a.branch3": (32, 28, 28), "inception3a.branch4": (32, 28, 28),
    },
    "googlenet_original": {
        "conv1": (64, 112, 112), "maxpool1": (64, 56, 56), "norm1": (64, 56, 56), "norm2": (192, 56, 56),
        "maxpool2": (192, 28, 28), "inception3a": (256, 28, 28), "inception4e": (832, 14, 14),
        "maxpool4": (832, 7, 7), "inception5b": (1024, 7, 7), "fc": (1000,),
    },
    "mobilenet_v1": {  # Table 1: 112x112x32, 112x112x64, 56x56x128, 28x28x256, 14x14x512, 7x7x1024
        "features.0": (32, 112, 112), "features.1.dw": (32, 112, 112), "features.1": (64, 112, 112),
        "features.2.dw": (64, 56, 56), "features.2": (128, 56, 56), "features.3": (128, 56, 56),
        "features.4": (256, 28, 28), "features.6": (512, 14, 14), "features.11": (512, 14, 14),
        "features.12.dw": (512, 7, 7), "features.12": (1024, 7, 7), "features.13": (1024, 7, 7),
        "avgpool": (1024, 1, 1), "fc": (1000,),
    },
}

CASES = [(m, s, shape) for m, table in CHECKPOINTS.items() for s, shape in table.items()]


@pytest.mark.parametrize("name, scope, shape", CASES, ids=[f"{m}:{s}" for m, s, _ in CASES])
def test_checkpoint_shape(name, scope, shape):
    assert out(archspec.load(name), scope) == shape


def test_alexnet_original_neuron_counts_follow_the_paper():
    """Sec. 3.5: 186,624-64,896-64,896-43,264-4096-4096-1000 neurons after the first layer (whose 253,440
    is the paper's known slip: 96x55x55 = 290,400)."""
    arch = archspec.load("alexnet_original")
    convs = [n for n in arch.nodes if n.op in ("conv", "linear")]
    assert [math.prod(n.shape) for n in convs] == [290_400, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]


def test_alexnet_groups_halve_the_grouped_kernels():
    """The two-GPU split: conv2, conv4, conv5 see half their input channels (48, 192, 192)."""
    arch = archspec.load("alexnet_original", groups=2)
    convs = [n for n in arch.nodes if n.op == "conv"]
    assert [n.attrs["in"] // n.attrs["groups"] for n in convs] == [3, 48, 256, 192, 192]


def test_alexnet_adaptive_pool_fixes_the_classifier_input():
    """At 256x256: 63 -> 31 -> 31 -> 15 -> 15 -> 7, and the adaptive pool brings 7x7 back to 6x6."""
    arch = archspec.load("alexnet", resolution=256)
    assert out(arch, "features.0") == (64, 63, 63) and out(arch, "features") == (256, 7, 7)
    assert out(arch, "avgpool") == (256, 6, 6) and node(arch, "classifier.1").attrs["in"] == 9216


def test_googlenet_pools_use_ceil_mode():
    """112 -> 56 needs ceil mode: floor((112 - 3) / 2) + 1 would be 55."""
    for name in ("googlenet", "googlenet_original"):
        pools = [n for n in archspec.load(name).nodes if n.op == "maxpool"]
        assert pools and all(n.attrs["ceil"] for n in pools)


def test_googlenet_branch_kernels():
    """torchvision's "5x5" branch is a 3x3 conv (pad 1); the paper's is a 5x5 (pad 2)."""
    tv = node(archspec.load("googlenet"), "inception3a.branch3.1.conv").attrs
    paper = node(archspec.load("googlenet_original"), "inception3a.branch3.1.conv").attrs
    assert (tv["kernel"], tv["pad"], tv["bias"]) == ([3, 3], [1, 1], False)
    assert (paper["kernel"], paper["pad"], paper["bias"]) == ([5, 5], [2, 2], True)


def test_googlenet_aux_heads():
    """InceptionAux on 4a (512x14x14) and 4d (528x14x14): 4x4 pool, 128 1x1 conv -> 2048 -> 1024 -> classes."""
    for name in ("googlenet", "googlenet_original"):
        arch = archspec.load(name, aux=True)
        assert [o.name for o in arch.outputs] == ["logits", "aux2", "aux1"]
        for head, cin in (("aux1", 512), ("aux2", 528)):
            assert node(arch, f"{head}.conv.conv").attrs["in"] == cin
            assert out(arch, f"{head}.conv") == (128, 4, 4)
            assert node(arch, f"{head}.fc1").attrs["in"] == 2048 and out(arch, f"{head}.fc1") == (1024,)
            assert out(arch, head) == (1000,)


def test_mobilenet_v1_depthwise_and_width():
    arch = archspec.load("mobilenet_v1")
    dw = node(arch, "features.2.dw.0").attrs
    assert (dw["groups"], dw["in"], dw["out"], dw["stride"]) == (64, 64, 64, [2, 2])
    half = archspec.load("mobilenet_v1", width=0.5, resolution=160)  # alpha 0.5, rho 160/224
    assert out(half, "features.0") == (16, 80, 80) and out(half, "features") == (512, 5, 5)

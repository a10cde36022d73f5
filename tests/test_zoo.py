"""The model zoo, generically: every model of `archspec.list_models()` loads, follows the zoo's conventions,
matches its reference (parameter counts, torchvision state_dict layout, batch-norm settings), compiles to
torch with the IR's shapes, and takes width/depth/resolution overrides from the API and the CLI.

Reference figures come from tests/reference (copies of the shared reference facts, never from our own output):
torchvision_layouts.json and the README's tables."""
from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache

import pytest

import archspec
from archspec.cli import main as cli
from archspec.ops import REGISTRY
from helpers import ROOT
from refdata import layouts, modern

SPECS = sorted((ROOT / "specs").glob("*.arch"))
MODELS = archspec.list_models()


TORCHVISION = layouts()

# The README's figures for models (or settings) that torchvision_layouts.json does not cover.
README_PARAMS = [
    ("lenet5", {}, 61_706),
    ("alexnet_original", {}, 62_378_344),
    ("alexnet_original", {"groups": 2}, 60_965_224),
    ("mobilenet_v1", {}, 4_231_976),
    ("googlenet", {"aux": True}, 13_004_888),
    ("mobilenet_v2", {"width": 0.5}, 1_968_680),
    ("mobilenet_v2", {"width": 1.4}, 6_108_776),
    # torchvision's model documentation (weights tables): the ResNeXt/wide ResNet-101 models.
    ("resnext101_32x8d", {}, 88_791_336),
    ("resnext101_64x4d", {}, 83_455_272),
    ("wide_resnet101_2", {}, 126_886_696),
]
REFERENCE_PARAMS = [(name, {}, ref["params"]) for name, ref in TORCHVISION.items()] + README_PARAMS

# torchvision's documented cost at 224x224, in GMACs (its "GFLOPS" column), README.
TORCHVISION_GMACS = {"alexnet": 0.71, "resnet18": 1.81, "resnet50": 4.09, "vgg16": 15.47, "googlenet": 1.50,
                     "densenet121": 2.83, "mobilenet_v2": 0.30, "efficientnet_b0": 0.39,
                     "resnext101_32x8d": 16.41, "resnext101_64x4d": 15.46, "wide_resnet101_2": 22.75}


def bn_convention(name: str) -> tuple[float, float]:
    """(eps, momentum) of every batch norm, per the README's conventions or the modern reference's norms."""
    batch_norms = {(n["eps"], n["momentum"]) for n in modern().get(name, {}).get("norms", {}).values()
                   if "momentum" in n}
    if batch_norms:
        (setting,) = batch_norms  # one setting per model in torchvision's modern CNNs
        return setting
    if name.startswith("mobilenet_v3") or name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7"):
        return 1e-3, 0.01
    if name.startswith("googlenet"):
        return 1e-3, 0.1  # BasicConv2d's BatchNorm2d(eps=0.001)
    if name == "maxvit_t":
        return 1e-3, 0.01  # torchvision's MaxVit (the modern reference's norms)
    return 1e-5, 0.1


@lru_cache(maxsize=None)
def model(name: str, **overrides) -> archspec.Architecture:
    return archspec.load(name, **overrides)


def params_of(arch) -> int:
    shapes = arch.shapes()
    return sum(REGISTRY[n.op].params(n.attrs, [shapes[i] for i in n.inputs], n.shape) for n in arch.nodes)


def macs_of(arch) -> int:
    """Of inference: eval mode skips the layers only training outputs need (Inception-v3's aux head)."""
    shapes, training = arch.shapes(), arch.training_only()
    return sum(REGISTRY[n.op].macs(n.attrs, [shapes[i] for i in n.inputs], n.shape)
               for n in arch.nodes if n.name not in training)


# ---------------------------------------------------------------- every model loads and follows the conventions

def test_zoo_is_complete():
    """Every name of the design's zoo list and every torchvision reference is a zoo model."""
    seeds = ("lenet5 alexnet alexnet_original zfnet vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn "
             "vgg11_lrn vgg16_c googlenet googlenet_original resnet18 resnet34 resnet50 resnet101 resnet152 "
             "densenet121 densenet161 densenet169 densenet201 mobilenet_v1 mobilenet_v2 " +
             " ".join(f"efficientnet_b{i}" for i in range(8)) +
             " resnext50_32x4d wide_resnet50_2 mobilenet_v3_large mobilenet_v3_small").split()
    missing = [n for n in seeds + list(TORCHVISION) if n not in MODELS]
    assert not missing, f"not in the zoo: {missing}"


DENSE = {"unet", "unet_bilinear"}  # dense predictors: a class map of the input's size class by class


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_as_a_classifier(name):
    arch = model(name)
    assert arch.title == name
    assert len(arch.inputs) == 1 and len(arch.inputs[0].shape) == 3
    classes = arch.params["num_classes"]
    for out in arch.outputs:
        shape = arch.node(out.node).shape
        assert shape == (classes,) if name not in DENSE else shape[0] == classes and len(shape) == 3


@pytest.mark.parametrize("name", MODELS)
def test_batch_norm_follows_the_reference_conventions(name):
    eps, momentum = bn_convention(name)
    bns = [n for n in model(name).nodes if n.op == "bn"]
    for n in bns:
        assert n.attrs["eps"] == pytest.approx(eps) and n.attrs["momentum"] == pytest.approx(momentum), n.name


@pytest.mark.parametrize("name", MODELS)
def test_conv_before_batch_norm_has_no_bias(name):
    arch = model(name)
    consumers: dict[str, list[str]] = {}
    for n in arch.nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n.op)
    for n in arch.nodes:
        if n.op == "conv" and consumers.get(n.name) == ["bn"]:
            # torchvision's VGG keeps the conv bias in its _bn models (README)
            assert n.attrs["bias"] == (name.startswith("vgg") and name.endswith("_bn")), n.name


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_file_opens_with_paper_and_layout(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 80, f"{path.name} has {len(lines)} lines"
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    text = " ".join(head)
    assert head, f"{path.name} must open with a comment naming the paper and the layout"
    assert re.search(r"\b(19|20)\d\d\b", text), "the opening comment names the paper (with its year)"
    assert "layout" in text.lower(), "the opening comment names the reference layout"


# ---------------------------------------------------------------- exact to the references

@pytest.mark.parametrize("name, overrides, expected", REFERENCE_PARAMS,
                         ids=[f"{n}{''.join(f'-{k}={v}' for k, v in o.items())}" for n, o, _ in REFERENCE_PARAMS])
def test_params_equal_reference(name, overrides, expected):
    assert params_of(model(name, **overrides)) == expected


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_equal_torchvision_documented_cost(name):
    assert round(macs_of(model(name)) / 1e9, 2) == TORCHVISION_GMACS[name]


@pytest.mark.parametrize("width, resolution, mparams, mmacs", [
    # MobileNet v1 paper, Tables 6 and 7: million parameters and mult-adds
    (1.0, 224, 4.2, 569), (0.75, 224, 2.6, 325), (0.5, 224, 1.3, 149), (1.0, 192, 4.2, 418), (1.0, 160, 4.2, 290),
    (1.0, 128, 4.2, 186),
])
def test_mobilenet_v1_costs_follow_the_paper(width, resolution, mparams, mmacs):
    arch = model("mobilenet_v1", width=width, resolution=resolution)
    assert round(params_of(arch) / 1e6, 1) == mparams
    assert macs_of(arch) / 1e6 == pytest.approx(mmacs, rel=0.01)


@pytest.mark.parametrize("name, mparams", [  # VGG paper, Table 2 (millions)
    ("vgg11", 133), ("vgg11_lrn", 133), ("vgg13", 133), ("vgg16_c", 134), ("vgg16", 138), ("vgg19", 144),
])
def test_vgg_params_follow_the_paper(name, mparams):
    assert round(params_of(model(name)) / 1e6) == mparams


# ---------------------------------------------------------------- compiled to torch

def _compile_meta(arch):
    """The compiled module on the meta device: real layout and shapes, no memory, no compute."""
    import torch
    from archspec_compiler import to_torch
    with torch.device("meta"):
        return to_torch(arch)


@pytest.mark.parametrize("name", MODELS)
def test_compiled_module_matches_ir_and_reference(name):
    import torch
    arch = model(name)
    module = _compile_meta(arch)
    assert sum(p.numel() for p in module.parameters()) == params_of(arch)
    eps, momentum = bn_convention(name)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            assert (m.eps, m.momentum) == (pytest.approx(eps), pytest.approx(momentum))
    layout = [[k, list(v.shape)] for k, v in module.state_dict().items()]
    if name in TORCHVISION:
        assert layout == TORCHVISION[name]["state_dict"]
    module.eval()
    with torch.device("meta"):
        y = module(*[torch.empty(2, *i.shape) for i in arch.inputs])
    ys = y if isinstance(y, tuple) else (y,)
    inference = [o for o in arch.outputs if not o.training]  # eval mode returns these alone
    assert [tuple(t.shape) for t in ys] == [(2, *arch.node(o.node).shape) for o in inference]


def test_googlenet_aux_heads_follow_torchvision():
    """InceptionAux (conv 128 1x1, fc1 2048->1024, fc2 1024->classes) after inception5b in the state_dict,
    and the outputs in torchvision's order: (logits, aux2, aux1)."""
    import torch
    arch = model("googlenet", aux=True)
    assert [o.name for o in arch.outputs] == ["logits", "aux2", "aux1"]
    aux = []
    for head, cin in (("aux1", 512), ("aux2", 528)):
        aux += [[f"{head}.conv.conv.weight", [128, cin, 1, 1]]]
        aux += [[f"{head}.conv.bn.{k}", [128]] for k in ("weight", "bias", "running_mean", "running_var")]
        aux += [[f"{head}.conv.bn.num_batches_tracked", []], [f"{head}.fc1.weight", [1024, 2048]],
                [f"{head}.fc1.bias", [1024]], [f"{head}.fc2.weight", [1000, 1024]], [f"{head}.fc2.bias", [1000]]]
    plain = TORCHVISION["googlenet"]["state_dict"]
    assert plain[-2][0] == "fc.weight"
    module = _compile_meta(arch)
    assert [[k, list(v.shape)] for k, v in module.state_dict().items()] == plain[:-2] + aux + plain[-2:]
    dropouts = [m.p for n, m in module.named_modules() if n.startswith("aux1.") and isinstance(m, torch.nn.Dropout)]
    assert dropouts == [pytest.approx(0.7)]


def test_inception_v3_aux_head_and_transform_input_follow_torchvision():
    """torchvision's Inception3: (logits, aux_logits) in training mode, the logits alone in eval, whose MACs the
    analyzer counts (test_zoo_modern checks them against the reference); aux_logits = false drops the AuxLogits
    weights; transform_input rescales each channel, x * std / 0.5 + (mean - 0.5) / 0.5, before Conv2d_1a_3x3."""
    import torch
    from archspec_compiler import to_torch
    torch.manual_seed(0)
    arch = model("inception_v3")
    module = to_torch(arch)
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        logits, aux = module.train()(x)
        assert logits.shape == aux.shape == (2, 1000)
        out = module.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)
        transformed = to_torch(model("inception_v3", transform_input=True)).eval()
        transformed.load_state_dict(module.state_dict())
        mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
        std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        torch.testing.assert_close(transformed(x), module(x * (std / 0.5) + (mean - 0.5) / 0.5))
    plain = model("inception_v3", aux_logits=False)
    assert archspec.analyze(plain).macs == archspec.analyze(arch).macs
    assert archspec.analyze(plain).params < archspec.analyze(arch).params
    keys = [k for k, *_ in modern()["inception_v3"]["state_dict"] if not k.startswith("AuxLogits.")]
    assert list(_compile_meta(plain).state_dict()) == keys


# torchvision's documented smallest inputs (its weights' "min_size"); SqueezeNet's are tight: a pixel less leaves
# its last ceil-mode pool without a window, which the analyzer must refuse at the pool, as torch does.
# Inception-v3's 75 holds for inference: at 75 the aux head's 5x5 pool would not fit (nor does it in torch).
MIN_SIZES = [("squeezenet1_0", 21, True, {}), ("squeezenet1_1", 17, True, {}), ("efficientnet_v2_s", 33, False, {}),
             ("inception_v3", 75, False, {"aux_logits": False})] + \
    [(f"mnasnet{w}", 1, False, {}) for w in ("0_5", "0_75", "1_0", "1_3")] + \
    [(f"regnet_{xy}_400mf", 1, False, {}) for xy in "xy"] + [("shufflenet_v2_x1_0", 1, False, {})]


@pytest.mark.parametrize("name, size, tight, overrides", [m for m in MIN_SIZES if m[0] in MODELS])
def test_documented_minimum_input_size(name, size, tight, overrides):
    arch = archspec.load(name, input_size=(size, size), **overrides)
    assert [arch.node(o.node).shape for o in arch.outputs] == [(1000,)]
    if tight:
        with pytest.raises(archspec.SpecError, match="too small") as err:
            archspec.load(name, input_size=(size - 1, size - 1), **overrides)
        assert "maxpool" in str(err.value)


# ---------------------------------------------------------------- overrides from the API and the CLI

@pytest.mark.parametrize("name", MODELS)
def test_resolution_and_classes_overrides(name):
    arch = model(name)
    size = arch.params["resolution"]
    step = 7 * 32 if name.startswith("maxvit") else 32  # MaxViT's maps stay whole 7x7 partitions (as torchvision's)
    bigger = model(name, resolution=size + step, num_classes=10)
    assert bigger.inputs[0].shape == (arch.inputs[0].shape[0], size + step, size + step)
    # classes first: (10,) for a classifier, (10, H, W) for a dense predictor (U-Net) of the same rank as before
    assert all(bigger.node(o.node).shape[0] == 10 and len(bigger.node(o.node).shape) == len(arch.node(o.node).shape)
               for o in bigger.outputs)
    same = archspec.load(name, input_size=(size + step, size + step))
    assert same.inputs[0].shape == bigger.inputs[0].shape


@pytest.mark.parametrize("name", [n for n in MODELS if "width" in model(n).params or "depth" in model(n).params])
def test_width_and_depth_overrides_scale_the_model(name):
    arch = model(name)
    if "width" in arch.params:
        assert params_of(model(name, width=arch.params["width"] * 1.5)) > params_of(arch)
        assert params_of(model(name, width=arch.params["width"] * 0.5)) < params_of(arch)
    if "depth" in arch.params:
        assert len(model(name, depth=arch.params["depth"] * 2).nodes) > len(arch.nodes)


def test_overrides_on_the_cli(capsys):
    assert cli(["check", "efficientnet_b0", "--set", "width=1.2", "--set", "resolution=300"]) == 0
    capsys.readouterr()
    assert cli(["analyze", "efficientnet_b0", "--set", "width=1.2", "--set", "resolution=300", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    api = model("efficientnet_b0", width=1.2, resolution=300)
    assert report["input"]["image"] == [3, 300, 300]
    assert report["params"] == params_of(api) > params_of(model("efficientnet_b0"))
    assert cli(["check", "googlenet", "--set", "aux=true", "--set", "num_classes=10"]) == 0


def test_unknown_override_is_an_error(capsys):
    assert cli(["check", "vgg16", "--set", "widht=2"]) != 0
    assert "widht" in capsys.readouterr().err


# ---------------------------------------------------------------- archspec list and docs/zoo.md

def test_list_json_covers_the_zoo(capsys):
    assert cli(["list", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == MODELS
    for name, row in rows.items():
        arch = model(name)
        assert row["params"] == params_of(arch) and row["macs"] == macs_of(arch)
        assert row["input"] == list(arch.inputs[0].shape) and row["family"] == arch.name
    # Receptive fields of the last feature map (README, after Araujo et al., Distill 2019)
    assert (rows["vgg16"]["receptive_field"]["size"], rows["vgg16"]["receptive_field"]["stride"],
            rows["vgg16"]["receptive_field"]["padding"]) == ([212, 212], [32, 32], [90, 90])
    assert rows["alexnet"]["receptive_field"]["size"] == [195, 195]
    assert rows["mobilenet_v2"]["receptive_field"]["size"] == [491, 491]


@pytest.mark.parametrize("fmt", ["table", "md"])
def test_list_table_and_markdown(capsys, fmt):
    assert cli(["list", "--format", fmt, "vgg16", "lenet5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and "params" in out[0] and "MACs" in out[0]
    assert "138,357,544" in out[2] and "15.47 G" in out[2] and "212 / 32" in out[2]
    assert "61,706" in out[3] and "1x32x32" in out[3]


def test_list_unknown_model(capsys):
    assert cli(["list", "lenet"]) != 0
    assert "lenet5" in capsys.readouterr().err  # did you mean


def test_docs_zoo_md_is_current():
    spec = importlib.util.spec_from_file_location("gen_zoo_doc", ROOT / "scripts" / "gen_zoo_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = ROOT / "docs" / "zoo.md"
    assert doc.is_file() and doc.read_text(encoding="utf-8") == gen.render(), \
        "docs/zoo.md is stale: run python scripts/gen_zoo_doc.py"
    assert len([line for line in doc.read_text().splitlines() if line.startswith("| ")]) == 1 + len(MODELS)

"""The static analyzer: per-op costs against hand computation, the zoo against its references, receptive
fields (Araujo, Norris & Sim, Distill 2019), activation memory, the CLI's formats, and the no-torch guard."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import archspec
from archspec import SpecError
from archspec.analysis import Field, analyze, ir_from_json, macs_text
from archspec.ops import REGISTRY
from helpers import ROOT, network_spec as spec
from refdata import layouts

ZOO = set(archspec.list_models())


def reference() -> dict:
    return layouts()


def rf(field: Field) -> tuple:
    return field.size, field.stride, field.padding, field.is_global


# ---------------------------------------------------------------- per op, against hand computation

def _hand(op: str, a: dict, ins: list, out: tuple) -> tuple[int, int, int]:
    """(params, buffers, MACs) of one op, written out from the textbook definitions."""
    if op == "conv":
        per_out = (a["in"] // a["groups"]) * math.prod(a["kernel"])  # each output value sees in/groups * k^d inputs
        return a["out"] * per_out + (a["out"] if a["bias"] else 0), 0, math.prod(out) * per_out
    if op == "conv_transpose":  # each input value scatters into out/groups * k^d outputs (fvcore's count)
        taps = (a["out"] // a["groups"]) * math.prod(a["kernel"])
        return a["in"] * taps + (a["out"] if a["bias"] else 0), 0, math.prod(ins[0]) * taps
    if op == "linear":
        return a["in"] * a["out"] + (a["out"] if a["bias"] else 0), 0, a["in"] * a["out"]
    if op == "bn":
        c = ins[0][0]
        return (2 * c if a["affine"] else 0), 2 * c + 1, 0  # weight, bias; running mean, var, num_batches_tracked
    if op in ("layernorm", "groupnorm"):
        c = ins[0][-1] if op == "layernorm" and a["dim"] == -1 else ins[0][0]
        return (2 * c if a["affine"] else 0), 0, 0  # a scale and a shift per normalized channel
    if op == "learnable":
        return math.prod(a["shape"]), 0, 0
    if op == "buffer":  # not trained: a buffer
        return 0, math.prod(a["shape"]), 0
    if op == "matmul":  # [b, n, k] x [b, k, m]: each of the b*n*m outputs is a k-term dot product
        (n, k), m = ins[0][-2:], ins[1][-1]
        return 0, 0, math.prod(out[:-2]) * n * m * k
    if op == "sdpa":  # per head: L x S scores of E/h terms, then L x Ev/h outputs of S terms
        (length, e), (s, ev), h = ins[0][-2:], ins[2][-2:], a["heads"]
        return 0, 0, math.prod(out[:-2]) * h * (length * s * (e // h) + length * (ev // h) * s)
    if op == "multihead_attention":  # q, k, v projections; scores; weighted sum; output projection
        length, d = ins[0]
        return 4 * d * d + 4 * d, 0, 3 * length * d * d + length * length * d + length * length * d + length * d * d
    return 0, 0, 0  # activations, pooling, merges, reshapes: no weights, no multiply-accumulates counted


def _run_example(op):
    args, kwargs, ins = op.example
    attrs = op.normalize(op.Args(**dict(zip(op.positional, args)), **kwargs), ins)
    out = op.shape(attrs, ins)
    return attrs, ins, out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_op_example_costs_match_hand_computation(name):
    op = REGISTRY[name]
    a, ins, out = _run_example(op)
    got = (op.params(a, ins, out), op.buffers(a, ins, out), op.macs(a, ins, out))
    assert got == _hand(name, a, ins, out)


@pytest.mark.parametrize("body, input_shape, params, macs", [
    # plain 3x3 conv with bias on 3x16x16, pad 1: 16 * 3*9 weights + 16 biases; 16*16*16 outputs x 27
    ("conv(16, 3, pad = 1)", (3, 16, 16), 16 * 27 + 16, 16 * 16 * 16 * 27),
    # grouped: 4 groups, each output channel sees 8 / 4 = 2 input channels
    ("conv(12, 3, pad = 1, groups = 4, bias = false)", (8, 10, 10), 12 * 2 * 9, 12 * 10 * 10 * 2 * 9),
    # depthwise: one 3x3 filter per channel, stride 2 halves 16 -> 8
    ("conv(32, 3, stride = 2, pad = 1, groups = 32)", (32, 16, 16), 32 * 9 + 32, 32 * 8 * 8 * 9),
    # depthwise with a channel multiplier of 2
    ("conv(64, 3, pad = 1, groups = 32, bias = false)", (32, 8, 8), 64 * 9, 64 * 8 * 8 * 9),
    # non-square kernel, dilation (does not change the weight count), no pad: 12 - 2*(3-1) = 8 rows
    ("conv(4, [3, 1], dilation = 2, bias = false)", (2, 12, 12), 4 * 2 * 3, 4 * 8 * 12 * 2 * 3),
    # 1-d conv on [C, L]
    ("conv(6, 5, pad = 2)", (4, 20), 6 * 4 * 5 + 6, 6 * 20 * 4 * 5),
    # pointwise conv then global pooling, flatten and linear: MACs of the 1x1 and of the linear only
    ("conv(8, 1, bias = false); gap(); flatten(); linear(10)", (4, 6, 6), 8 * 4 + 8 * 10 + 10, 8 * 36 * 4 + 80),
    # batch norm: 2C parameters, no MACs
    ("conv(8, 3, pad = 1, bias = false); bn(); relu()", (3, 5, 5), 8 * 27 + 2 * 8, 8 * 25 * 27),
])
def test_costs_by_hand(tmp_path, body, input_shape, params, macs):
    report = analyze(spec(tmp_path, body, input_shape))
    assert (report.params, report.macs, report.flops) == (params, macs, 2 * macs)


# ---------------------------------------------------------------- the zoo against its references

REF = reference()
ZOO_WITH_REFERENCE = sorted(ZOO & set(REF))

# Counts from the reference README for models and settings with no torchvision layout.
EXTRA = [
    ("lenet5", {}, 61_706), ("alexnet_original", {}, 62_378_344), ("alexnet_original", {"groups": 2}, 60_965_224),
    ("mobilenet_v1", {}, 4_231_976),
    ("googlenet", {"aux": True}, 13_004_888), ("googlenet", {"aux": False}, 6_624_904),
    ("mobilenet_v2", {"width": 0.5}, 1_968_680), ("mobilenet_v2", {"width": 1.4}, 6_108_776),
]


@pytest.mark.parametrize("model", ZOO_WITH_REFERENCE)
def test_zoo_params_equal_reference(model):
    report = analyze(archspec.load(model))
    assert report.params == REF[model]["params"]
    # The reference's state_dict lists parameters and buffers; its sum minus the parameters is the buffers.
    assert report.params + report.buffers == sum(math.prod(shape) for _, shape in REF[model]["state_dict"])


@pytest.mark.parametrize("model, overrides, params", [e for e in EXTRA if e[0] in ZOO],
                         ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_zoo_params_of_readme_models(model, overrides, params):
    assert analyze(archspec.load(model, **overrides)).params == params


def test_reference_covers_the_zoo():
    # Guards the two tests above against silently testing nothing.
    assert {"resnet18", "resnet50", "resnet152"} <= set(ZOO_WITH_REFERENCE)


# torchvision's documented cost at 224x224 (its "GFLOPS" column counts multiply-accumulates).
TORCHVISION_GMACS = {"resnet50": 4.09, "resnet18": 1.81, "vgg16": 15.47, "alexnet": 0.71, "googlenet": 1.50,
                     "densenet121": 2.83, "mobilenet_v2": 0.30, "efficientnet_b0": 0.39}


@pytest.mark.parametrize("model", sorted(ZOO & set(TORCHVISION_GMACS)))
def test_zoo_macs_match_torchvision(model):
    report = analyze(archspec.load(model))
    assert f"{report.macs / 1e9:.2f}" == f"{TORCHVISION_GMACS[model]:.2f}"
    assert report.flops == 2 * report.macs


# Araujo, Norris & Sim (Distill 2019): (size, stride, padding or None) of the last feature map.
DISTILL = {"vgg16": (212, 32, 90), "mobilenet_v2": (491, 32, None), "alexnet": (195, 32, None)}


@pytest.mark.parametrize("model", sorted(ZOO & set(DISTILL)))
def test_zoo_receptive_fields_match_distill(model):
    f = analyze(archspec.load(model)).receptive_field
    size, stride, padding = DISTILL[model]
    assert f.size == (size, size) and f.stride == (stride, stride)
    if padding is not None:
        assert f.padding == (padding, padding)
    assert f.is_global  # each ends in global pooling or a flatten of a map


def test_every_zoo_model_analyzes_without_warnings():
    for model in sorted(ZOO):
        report = analyze(archspec.load(model))
        assert report.params > 0 and report.macs > 0, model
        if model == "unet_bilinear":
            # align_corners=True samples at u (x - 1) / (2x - 1), not at u / 2: the upsampled map really is
            # off the skip's grid by a fraction of a pixel, and the analyzer says so at each merge
            assert len(report.warnings) == 4 and all("misaligned" in w for w in report.warnings)
            continue
        assert not report.warnings, (model, report.warnings)


# ---------------------------------------------------------------- receptive fields by hand

def test_three_3x3_convs_see_what_one_7x7_sees(tmp_path):
    three = analyze(spec(tmp_path, "conv(8, 3, pad = 1); conv(8, 3, pad = 1); conv(8, 3, pad = 1)"))
    one = analyze(spec(tmp_path, "conv(8, 7, pad = 3)"))
    assert rf(three.receptive_field) == rf(one.receptive_field) == ((7, 7), (1, 1), (3, 3), False)


def test_dilation(tmp_path):
    r = analyze(spec(tmp_path, """
        a: conv(8, 3, stride = 2, pad = 1)
        b: conv(8, 3, dilation = 2, pad = 2)
        c: conv(8, 3, dilation = 3, pad = 3)
    """, (3, 32, 32)))
    # a: r 3, j 2, p 1. b: dilated kernel 5 -> r 3 + 4*2 = 11, p 1 + 2*2 = 5. c: kernel 7 -> r 11 + 6*2, p 5 + 3*2
    assert rf(r.layer("a").receptive_field) == ((3, 3), (2, 2), (1, 1), False)
    assert rf(r.layer("b").receptive_field) == ((11, 11), (2, 2), (5, 5), False)
    assert rf(r.layer("c").receptive_field) == ((23, 23), (2, 2), (11, 11), False)


def test_ceil_mode_pooling(tmp_path):
    r = analyze(spec(tmp_path, """
        p1: maxpool(3, stride = 2, ceil = true)
        c: conv(8, 3, pad = 1)
        p2: maxpool(3, stride = 2, pad = 1, ceil = true)
    """, (3, 10, 10)))
    # ceil mode changes the output size (10 -> 5, not 4), never where the first window starts.
    assert r.layer("p1").shape == (3, 5, 5)
    assert rf(r.layer("p1").receptive_field) == ((3, 3), (2, 2), (0, 0), False)
    assert rf(r.layer("c").receptive_field) == ((7, 7), (2, 2), (2, 2), False)
    assert r.layer("p2").shape == (8, 3, 3)
    assert rf(r.layer("p2").receptive_field) == ((11, 11), (4, 4), (4, 4), False)


def test_residual_add_takes_the_largest_field(tmp_path):
    r = analyze(spec(tmp_path, """
        r1: residual { conv(3, 3, pad = 1); relu(); conv(3, 3, pad = 1) }
        r2: residual { conv(8, 3, stride = 2, pad = 1); conv(8, 3, pad = 1) } shortcut { conv(8, 1, stride = 2) }
    """, (3, 16, 16)))
    # r1: identity (1) + two 3x3 (5) -> 5, centred alike. r2 main: 5 + 2*1 = 7, then + 2*2 = 11 at stride 2;
    # the 1x1 stride-2 shortcut sees 5 at stride 2 from the same centre: aligned, no warning.
    assert rf(r.layer("r1.add").receptive_field) == ((5, 5), (1, 1), (2, 2), False)
    assert rf(r.layer("r2.add").receptive_field) == ((11, 11), (2, 2), (5, 5), False)
    assert not r.warnings


def test_concat_of_branches_with_different_fields(tmp_path):
    r = analyze(spec(tmp_path, """
        stem: conv(8, 3, stride = 2, pad = 1)
        mix: branch concat {
            conv(4, 1)
            { conv(4, 3, pad = 1) }
            { conv(4, 3, pad = 1); conv(4, 3, pad = 1) }
            { maxpool(3, stride = 1, pad = 1); conv(4, 1) }
        }
    """, (3, 16, 16)))
    # stem r 3 j 2 p 1; branches add 0, 2*2, 4*2, 2*2 to the size: the largest is 3 + 8 = 11, padding 1 + 2*2.
    cat = r.layer("mix.cat")
    assert cat.shape == (16, 8, 8)
    assert rf(cat.receptive_field) == ((11, 11), (2, 2), (5, 5), False)
    assert not r.warnings


def test_misaligned_merges_are_reported(tmp_path):
    r = analyze(spec(tmp_path, """
        m: branch concat { conv(4, 1, stride = 2); conv(4, 2, stride = 2) }
    """, (3, 8, 8)))
    # Branch 1 sees pixel 0, branch 2 pixels 0..1: centres 0 and 0.5. The union covers 0..1.
    assert rf(r.layer("m.cat").receptive_field) == ((2, 2), (2, 2), (0, 0), False)
    assert len(r.warnings) == 1 and "m.cat" in r.warnings[0] and "centres" in r.warnings[0]

    r = analyze(spec(tmp_path, """
        m: branch add { conv(4, 5); conv(4, 2, stride = 2) }
    """, (3, 8, 8)))
    # Both give 4x4 maps, one at stride 1 (field 0..4), one at stride 2 (0..1).
    assert rf(r.layer("m.add").receptive_field) == ((5, 5), (2, 2), (0, 0), False)
    assert "strides [1, 2]" in r.warnings[0]


def test_global_pooling_and_gates(tmp_path):
    r = analyze(spec(tmp_path, """
        c: conv(8, 3, pad = 1)
        se: gate { gap(); conv(2, 1); relu(); conv(8, 1); sigmoid() }
        d: conv(8, 3, pad = 1)
        pool: gap()
        flatten()
        fc: linear(10)
    """, (3, 16, 16)))
    # The gate's pooled branch mixes the whole image; its spatial input keeps its local field (3),
    # and the field keeps growing locally after it (5) while the tensor stays global.
    assert rf(r.layer("se.mul").receptive_field) == ((3, 3), (1, 1), (1, 1), True)
    assert rf(r.layer("d").receptive_field) == ((5, 5), (1, 1), (2, 2), True)
    assert r.layer("se.0").receptive_field.is_global and r.layer("fc").receptive_field.is_global
    net = r.receptive_field
    assert (net.tensor, rf(net)) == ("d", ((5, 5), (1, 1), (2, 2), True))
    assert str(net).startswith("global")


def test_a_network_without_global_ops_is_local(tmp_path):
    r = analyze(spec(tmp_path, "conv(8, 5); tanh(); avgpool(2); conv(8, 6); flatten(); linear(10)", (1, 16, 16)))
    # 16 -> 12 -> 6 -> 1: the last conv's 1x1 map still has a local field: 6 + 5*2 = 16, the whole image.
    assert rf(r.receptive_field) == ((16, 16), (2, 2), (0, 0), False) and r.receptive_field.tensor == "3"


def test_adaptive_pool_that_divides_its_input_is_a_plain_pool(tmp_path):
    r = analyze(spec(tmp_path, "conv(8, 3, pad = 1); p: adaptive_avgpool(4)", (3, 16, 16)))
    assert rf(r.layer("p").receptive_field) == ((3 + 3, 3 + 3), (4, 4), (1, 1), False)


def test_adaptive_pool_with_uneven_windows_takes_the_widest(tmp_path):
    r = analyze(spec(tmp_path, "conv(8, 3, pad = 1); p: adaptive_avgpool(3)", (3, 8, 8)))
    # PyTorch's windows on 8 -> 3: [0, 3), [2, 6), [5, 8): the widest is 4 wide; stride floor(8 / 3) = 2.
    assert rf(r.layer("p").receptive_field) == ((3 + 3, 3 + 3), (2, 2), (1, 1), False)


def test_softmax_over_a_spatial_axis_is_global(tmp_path):
    r = analyze(spec(tmp_path, "conv(8, 3, pad = 1); a: softmax(0); b: softmax(2)", (3, 8, 8)))
    assert not r.layer("a").receptive_field.is_global and r.layer("b").receptive_field.is_global


def test_input_size_changes_costs_not_params(tmp_path):
    a = analyze(spec(tmp_path, "conv(8, 3, pad = 1); gap(); flatten(); linear(4)", (3, 16, 16)))
    b = analyze(spec(tmp_path, "conv(8, 3, pad = 1); gap(); flatten(); linear(4)", (3, 16, 16), input_size=(32, 32)))
    assert a.params == b.params and b.macs - 32 == 4 * (a.macs - 32)


# ---------------------------------------------------------------- memory, roll-ups, report

def test_memory_sum_and_peak_by_hand(tmp_path):
    r = analyze(spec(tmp_path, "residual { conv(4, 3, pad = 1); relu() }", (4, 8, 8)))
    t = 4 * 8 * 8 * 4  # bytes of every tensor here
    # x stays alive for the add: x + conv + relu (conv freed after relu), then x + relu + add.
    assert (r.memory.outputs, r.memory.peak) == (3 * t, 3 * t)
    r = analyze(spec(tmp_path, "conv(4, 3, pad = 1); relu(); relu(); relu()", (4, 8, 8)))
    assert (r.memory.outputs, r.memory.peak) == (4 * t, 2 * t)


def test_roll_ups_by_scope():
    report = analyze(archspec.load("resnet50"))
    top = {s.name: s for s in report.scopes(1)}
    assert list(top)[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    assert sum(s.params for s in top.values()) == report.params
    assert sum(s.macs for s in top.values()) == report.macs
    blocks = [s for s in report.scopes(2) if s.name.startswith("layer3.")]
    assert [s.name for s in blocks] == [f"layer3.{i}" for i in range(6)]
    assert all(s.block == "bottleneck" for s in blocks)
    assert sum(s.params for s in blocks) == top["layer3"].params == report.scope("layer3").params
    # Hand count of a stride-1 layer3 bottleneck (1024 -> 256 -> 256 -> 1024): three convs and three BNs.
    assert report.scope("layer3.1").params == 1024 * 256 + 256 * 256 * 9 + 256 * 1024 + 2 * (256 + 256 + 1024)
    assert top["layer4"].shape == (2048, 7, 7) and top["layer4"].receptive_field.size == (427, 427)
    assert report.scope("").params == report.params
    with pytest.raises(KeyError):
        report.scope("layer9")


def test_units_are_always_named():
    assert macs_text(4_089_184_256) == "4.09 GMACs / 8.18 GFLOPs"
    assert macs_text(300_774_272) == "300.77 MMACs / 601.55 MFLOPs"


def test_json_keys_are_stable():
    report = analyze(archspec.load("resnet18"))
    d = report.to_dict()
    assert list(d) == ["name", "variant", "input", "outputs", "params", "buffers", "macs", "flops", "memory",
                       "receptive_field", "layers", "scopes", "warnings"]
    assert set(d["receptive_field"]) == {"size", "stride", "padding", "global", "tensor"}
    assert set(d["layers"][0]) == {"name", "op", "shape", "params", "buffers", "macs", "receptive_field", "source"}
    assert len(d["layers"]) == len(archspec.load("resnet18").nodes)
    json.dumps(d)


# ---------------------------------------------------------------- IR round trip

def test_ir_json_round_trips_through_the_analyzer():
    arch = archspec.load("resnet18")
    again = ir_from_json(arch.model_dump_json(indent=2))
    assert again == arch and analyze(again) == analyze(arch)


@pytest.mark.parametrize("text, message", [
    ("{", "not a valid archspec IR"),
    ('{"name": "x"}', "not a valid archspec IR"),
])
def test_bad_ir_is_an_archspec_error(text, message):
    with pytest.raises(SpecError, match=message):
        ir_from_json(text)


def test_ir_with_unknown_op_or_dangling_input_is_refused():
    data = json.loads(archspec.load("resnet18").model_dump_json())
    data["nodes"][1]["op"] = "warp"
    with pytest.raises(SpecError, match="unknown op 'warp'"):
        ir_from_json(json.dumps(data))
    data = json.loads(archspec.load("resnet18").model_dump_json())
    data["nodes"][0]["inputs"] = ["nowhere"]
    with pytest.raises(SpecError, match="reads 'nowhere'"):
        ir_from_json(json.dumps(data))


# ---------------------------------------------------------------- the command line

def cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "archspec", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_json_never_imports_torch():
    code = ("import sys, io, contextlib, json; from archspec.cli import main; buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf): rc = main(['analyze', 'resnet152', '--format', 'json'])\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'numpy')]\n"
            "assert rc == 0 and not bad, bad\n"
            "d = json.loads(buf.getvalue()); assert d['params'] == 60192808, d['params']\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cli_formats(tmp_path):
    rc, out, _ = cli("analyze", "resnet18", "--format", "md", "--depth", "2")
    assert rc == 0 and "| `layer3.1` | basic |" in out and "1.81 GMACs / 3.63 GFLOPs" in out
    rc, out, _ = cli("analyze", "resnet18")
    assert rc == 0 and "layer4" in out and "11,689,512" in out and "GMACs" in out
    rc, out, _ = cli("analyze", "resnet18", "--format", "ir")
    assert rc == 0
    (tmp_path / "r18.json").write_text(out)
    rc, out, _ = cli("analyze", str(tmp_path / "r18.json"), "--format", "json", "--depth", "0")
    assert rc == 0 and json.loads(out)["params"] == 11_689_512


def test_cli_input_size_and_overrides():
    rc, out, _ = cli("analyze", "resnet18", "--format", "json", "--input", "448x448", "--set", "num_classes=10")
    d = json.loads(out)
    assert rc == 0 and d["input"] == {"image": [3, 448, 448]} and d["outputs"] == {"output": [10]}
    assert d["params"] == 11_689_512 - 990 * 513  # fc shrinks from 512*1000+1000 to 512*10+10


@pytest.mark.parametrize("args, message", [
    (["resnet18", "--input", "big"], "--input expects sizes"),
    (["resnet18", "--input", "224"], "spatial axes"),
    (["resnet18", "--depth", "-1"], "--depth"),
    (["resnet19"], "did you mean"),
])
def test_cli_bad_arguments_are_errors_not_tracebacks(args, message):
    rc, out, err = cli("analyze", *args)
    assert rc != 0 and message in err and "Traceback" not in err


def test_receptive_field_growth_is_capped_and_called_global(tmp_path):
    # Strides multiply: 40 convs of stride 1000 on a 1x1 map would give a stride of 10**120.
    path = tmp_path / "strided.arch"
    path.write_text("arch s\ninput x: [2, 1, 1]\nnetwork { repeat 40 { conv(2, 1, stride = 1000) } }\n")
    report = archspec.analyze(archspec.load(path))
    rf = report.receptive_field
    assert rf.is_global and max(rf.stride) <= 2 ** 62
    assert json.loads(report.to_json())["receptive_field"]["global"] is True


# ---------------------------------------------------------------- tokens and channels-last maps (issue 13)

def test_receptive_field_is_exact_through_channels_last_and_global_after_attention(tmp_path):
    # ConvNeXt's block: 4x4 patchify (stride 4), then a 7x7 depthwise conv; its linears and layer norm run on
    # [H, W, C] between two permutes, which move no values: the field stays 4 + 6 * 4 = 28, stride 4.
    convnext = spec(tmp_path, """
        conv(16, 4, stride = 4);  layernorm(dim = 0)
        conv(16, 7, pad = 3, groups = 16)
        permute([1, 2, 0]);  layernorm();  linear(64);  gelu();  linear(16);  permute([2, 0, 1])
    """, input_shape=(3, 64, 64))
    assert rf(archspec.analyze(convnext).receptive_field) == ((28, 28), (4, 4), (3 * 4, 3 * 4), False)
    # A conv on a permuted map would slide over other axes than the image's: no local field is claimed.
    scrambled = spec(tmp_path, "conv(8, 3, pad = 1);  permute([0, 2, 1]);  conv(8, 3, pad = 1)", input_shape=(3, 16, 16))
    assert archspec.analyze(scrambled).receptive_field.is_global
    # Tokens from patches, then self-attention: every token sees the whole image.
    vit = spec(tmp_path, "conv(32, 8, stride = 8);  flatten(1);  transpose(0, 1);  multihead_attention(4)",
               input_shape=(3, 32, 32))
    report = archspec.analyze(vit)
    assert report.receptive_field.is_global
    attn = report.layers[-1]
    assert attn.macs == 16 * 32 * 96 + 2 * 16 * 16 * 32 + 16 * 32 * 32  # projections, q·kᵀ, weights·v, output

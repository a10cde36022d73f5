"""Issue 14's language features: dashed labels, channel split and shuffle, training-only outputs, constant
per-channel affines, resampling ops (upsample, interpolate, transposed conv, pixel shuffle, crop) and 3-D."""
from __future__ import annotations

import textwrap

import pytest

import archspec
from archspec import SpecError
from archspec.formatter import format_text
from helpers import fill_weights, load_spec as load, op_arch


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
    from archspec_compiler import to_torch
    from archspec_compiler.pysource import emit_python
    from archspec.irdump import ir_from_json
    arch = load(tmp_path, DASHED)
    assert ir_from_json(arch.model_dump_json()) == arch  # an IR dump with dashed labels reads back
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


# ---------------------------------------------------------------- channel ops

SHUFFLE_UNIT = """\
    arch shuffle_unit
    input image: [8, 6, 6]
    network {
        conv(8, 1)
        chunk(2) as x1, x2
        from x2 { branch2: { conv(4, 3, pad = 1, bias = false);  bn();  relu() };  save b }
        cat(x1, b)
        channel_shuffle(2)
        split([3, 5]) as a, c
        split(2, dim = 1) as r0, r1, r2
        from r2 { relu();  save rows }
        crop: split([1, 4, 1], dim = 2, index = 1)
        output rows, a, c
    }
    """


def backends():
    torch = pytest.importorskip("torch")
    from archspec_compiler import to_onnx, to_torch
    from archspec_compiler.pysource import emit_python
    from archspec_compiler.runtime import Session
    return torch, to_torch, to_onnx, emit_python, Session


def run_everywhere(arch, seed: int = 0, batch: int = 2, train: bool = False):
    """to_torch's outputs, and those of the emitted source and of onnxruntime (fp32) on the same input."""
    torch, to_torch, to_onnx, emit_python, Session = backends()
    torch.manual_seed(seed)
    module = fill_weights(to_torch(arch).eval())
    xs = [torch.randn(batch, *i.shape) for i in arch.inputs]
    with torch.no_grad():
        want = module(*xs)
    want = list(want) if isinstance(want, tuple) else [want]
    namespace: dict = {}
    exec(compile(emit_python(arch), "gen.py", "exec"), namespace)
    gen = namespace["build"]()
    gen.load_state_dict(module.state_dict())
    with torch.no_grad():
        got = gen.eval()(*xs)
    for g, w in zip(got if isinstance(got, tuple) else [got], want):
        assert torch.allclose(g, w, atol=1e-6)
    ort = Session(to_onnx(arch, module=module), providers="cpu").run(*[x.numpy() for x in xs])
    assert len(ort) == len(want)
    for g, w in zip(ort, want):
        assert g.shape == tuple(w.shape)
        assert float(abs(torch.from_numpy(g) - w).max()) <= 1e-4 * max(1.0, float(w.abs().max()))
    return module, xs, want


def test_shuffle_unit_equals_torchvision_code(tmp_path):
    torch = pytest.importorskip("torch")
    arch = load(tmp_path, SHUFFLE_UNIT)
    names = [n.name for n in arch.nodes]
    assert names[1:3] == ["1.x1", "1.x2"] and names[-1] == "crop"
    assert arch.node("crop").shape == (8, 2, 4)
    module, (x,), (rows, a, c) = run_everywhere(arch)
    # torchvision's InvertedResidual (stride 1) and channel_shuffle, written out
    sd = module.state_dict()
    bn = torch.nn.BatchNorm2d(4).eval()
    bn.load_state_dict({k.split(".", 2)[-1]: v for k, v in sd.items() if k.startswith("branch2.1.")})
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, sd["0.weight"], sd["0.bias"])
        x1, x2 = y.chunk(2, dim=1)
        b = torch.relu(bn(torch.nn.functional.conv2d(x2, sd["branch2.0.weight"], padding=1)))
        out = torch.cat((x1, b), dim=1)
        n, ch, h, w = out.shape
        out = out.view(n, 2, ch // 2, h, w).transpose(1, 2).contiguous().view(n, ch, h, w)
    assert torch.allclose(a, out[:, :3], atol=1e-6) and torch.allclose(c, out[:, 3:], atol=1e-6)
    assert torch.allclose(rows, torch.relu(out[:, :, 4:6]), atol=1e-6)


def test_crop_by_split_shifts_the_receptive_field(tmp_path):
    report = archspec.analyze(load(tmp_path, SHUFFLE_UNIT))
    # branch2's 3x3 conv (pad 1) sees 3 pixels from -1; rows 4..5 of that map start at input row 3
    assert report.layer("3").receptive_field.padding == (1, 1)
    assert report.layer("6.r2").receptive_field.padding == (-3, 1)
    assert report.layer("crop").receptive_field.padding == (-3, 0)
    assert report.layer("crop").receptive_field.size == (3, 3)


@pytest.mark.parametrize("stmt, where, what", [
    ("chunk(3) as a, b", (4, 5), "chunk(3) of an axis of size 8"),
    ("chunk(2) as a, b, c", (4, 17), "chunk() makes 2 tensors, 3 names are given"),
    ("chunk(2)", (4, 5), "chunk() makes 2 tensors: name them"),
    ("chunk(10 ** 9) as a, b", (4, 5), "chunk(1000000000) of an axis of size 8"),
    ("split([3, 4]) as a, b", (4, 5), "add up to 7, the axis has 8"),
    ("split(2, dim = 3) as a, b", (4, 5), "dim 3 is out of range"),
    ("relu() as a", (4, 15), "only an op that cuts its input"),
    ("chunk(2, index = 2)", (4, 5), "index 2 is out of range"),
    ("channel_shuffle(3)", (4, 5), "groups must divide the channels"),
    ("channel_shuffle(10 ** 9)", (4, 5), "groups must divide the channels"),
])
def test_channel_op_errors(tmp_path, stmt, where, what):
    d = error(tmp_path, f"arch bad\ninput image: [8, 4, 4]\nnetwork {{\n    {stmt}\n}}\n")
    assert what in d.message and (d.pos.line, d.pos.col) == where, (d.message, d.pos)


# ---------------------------------------------------------------- training-only outputs, constant affines

AUX = """\
    arch with_aux
    param aux = true
    input image: [3, 16, 16]
    network {
        transform_input: channel_affine([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5],
                                        [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5])
        stem: conv(8, 3, pad = 1);  relu();  save feats
        if aux {
            from feats { aux_head: { gap();  flatten();  fc: linear(5) };  save aux_logits }
        }
        from feats {
            body: conv(8, 3, stride = 2, pad = 1)
            head: { gap();  flatten();  fc: linear(5) }
            save logits
        }
        output logits
        if aux { output training aux_logits }
    }
    """


def test_training_outputs_cost_nothing_at_inference(tmp_path):
    with_aux, without = load(tmp_path, AUX), load(tmp_path, AUX, aux=False)
    assert [(o.name, o.training) for o in with_aux.outputs] == [("logits", False), ("aux_logits", True)]
    assert with_aux.training_only() == {"aux_head.0", "aux_head.1", "aux_head.fc"}
    full, plain = archspec.analyze(with_aux), archspec.analyze(without)
    assert full.params == plain.params + 8 * 5 + 5       # the aux head's weights are there ...
    assert full.macs == plain.macs                       # ... but inference never runs it
    assert full.layer("aux_head.fc").macs == 40           # its own cost is still shown


def test_training_outputs_in_torch_onnx_and_source(tmp_path):
    torch, to_torch, to_onnx, emit_python, Session = backends()
    import copy
    import pickle
    arch = load(tmp_path, AUX)
    module = to_torch(arch)
    keys = list(module.state_dict())
    assert keys.index("aux_head.fc.weight") < keys.index("body.weight")  # IR order, as torchvision's
    x = torch.randn(2, 3, 16, 16)
    logits, aux_logits = module.train()(x)
    assert aux_logits.shape == (2, 5)
    with torch.no_grad():
        y = module.eval()(x)
    assert isinstance(y, torch.Tensor) and torch.equal(y, logits.detach())
    assert module.output_names == ("logits",)
    twin = copy.deepcopy(module)
    assert torch.equal(twin.eval()(x), y) and len(twin.train()(x)) == 2
    with pytest.raises(TypeError, match="state_dict"):
        pickle.dumps(module)
    # transform_input, written as torchvision does
    ch = [torch.unsqueeze(x[:, i], 1) * (s / 0.5) + (m - 0.5) / 0.5
          for i, (s, m) in enumerate(zip([0.229, 0.224, 0.225], [0.485, 0.456, 0.406]))]
    assert torch.equal(module.get_submodule("transform_input")(x), torch.cat(ch, 1))
    # the emitted source behaves alike; ONNX has the inference output alone
    run_everywhere(arch)
    namespace: dict = {}
    exec(compile(emit_python(arch), "gen.py", "exec"), namespace)
    gen = namespace["build"]()
    gen.load_state_dict(module.state_dict())
    assert [t.shape for t in gen.train()(x)] == [(2, 5), (2, 5)]
    assert [o.name for o in to_onnx(arch, module=module).graph.output] == ["logits"]


@pytest.mark.parametrize("body, what", [
    ("save a;  output training a;  output a", "inference outputs come before training outputs"),
    ("save a;  output training a", "every output is a training output"),
    ("channel_affine([1.0, 2.0])", "scale has 2 values for 3 channels"),
    ("channel_affine(1.0, shift = [1, 2, 3, 4])", "shift has 4 values for 3 channels"),
    ('channel_affine("x")', "expects a number"),
])
def test_training_output_and_affine_errors(tmp_path, body, what):
    d = error(tmp_path, f"arch bad\ninput image: [3, 4, 4]\nnetwork {{\n    relu();  {body}\n}}\n")
    assert what in d.message and d.pos is not None and d.pos.line in (3, 4), (d.message, d.pos)


# ---------------------------------------------------------------- resampling and volumes, in every backend

def _onnx_checks():
    pytest.importorskip("onnxruntime")
    from test_onnx import check_op  # tests/ is on sys.path, as for helpers
    return check_op


@pytest.mark.parametrize("op, kwargs, ins", [
    ("upsample", {"scale": 2}, (3, 5)),
    ("upsample", {"scale": [2, 3], "mode": "bilinear"}, (3, 4, 5)),
    ("upsample", {"scale": 2, "mode": "bilinear", "align_corners": True}, (3, 4, 5)),
    ("upsample", {"scale": 2, "mode": "trilinear"}, (2, 3, 4, 5)),
    ("upsample", {"scale": 3, "mode": "linear", "align_corners": True}, (3, 7)),
    ("interpolate", {"size": [7, 3]}, (3, 4, 5)),
    ("interpolate", {"size": [9, 11], "mode": "bilinear"}, (3, 4, 5)),
    ("interpolate", {"size": [9, 1], "mode": "bilinear", "align_corners": True}, (3, 4, 5)),
    ("interpolate", {"size": [3, 5, 2]}, (2, 4, 4, 4)),
    ("conv_transpose", {"out": 4, "kernel": 2, "stride": 2}, (3, 5, 5)),
    ("conv_transpose", {"out": 4, "kernel": [3, 1], "stride": [2, 1], "pad": [1, 0], "output_pad": [1, 0],
                        "dilation": 1, "bias": False}, (4, 5, 6)),
    ("conv_transpose", {"out": 2, "kernel": 3, "stride": 2, "dilation": 2, "output_pad": 1}, (2, 4)),
    ("conv_transpose", {"out": 4, "kernel": 2, "stride": 2, "groups": 2}, (2, 3, 3, 3)),
    ("pixel_shuffle", {"factor": 3}, (18, 2, 3)),
    ("center_crop", {"size": [3, 4]}, (2, 8, 7)),
    ("center_crop", {"size": 2}, (2, 5, 6, 7)),
    ("adaptive_avgpool", {"size": [2, 3, 4]}, (2, 5, 7, 9)),
    ("maxpool", {"kernel": 3, "stride": 2, "pad": 1, "ceil": True}, (2, 6, 7, 8)),
    ("avgpool", {"kernel": [1, 2, 2]}, (2, 3, 4, 4)),
    ("bn", {}, (3, 2, 4, 4)),
    ("conv", {"out": 4, "kernel": 3, "stride": [1, 2, 2], "pad": 1, "groups": 2}, (2, 4, 5, 5)),
    ("gap", {}, (3, 2, 4, 4)),
])
def test_resampling_and_volume_ops_agree_everywhere(op, kwargs, ins):
    check_op = _onnx_checks()
    from archspec.ops import REGISTRY
    cls = REGISTRY[op]
    a = cls.normalize(cls.Args(**kwargs), [ins])
    check_op(op_arch(op, a, [ins], cls.shape(a, [ins])))  # torch == ORT fp32, fp16, shape inference


def _support(torch, module, x_shape, out_index):
    """The input positions (along the last axis) that output unit out_index depends on: its exact field."""
    x = torch.ones(1, *x_shape, dtype=torch.float64, requires_grad=True)
    y = module(x)
    y[(0, 0) + (0,) * (y.dim() - 3) + (out_index,)].backward()
    hit = (x.grad.abs().sum(dim=tuple(range(x.grad.dim() - 1))) > 0).nonzero().flatten().tolist()
    return hit[0], hit[-1]


def test_receptive_fields_through_upsampling_are_exact(tmp_path):
    torch = pytest.importorskip("torch")
    from archspec_compiler import to_torch
    # A 1-D U-Net path: valid convs, a 2x pool, the 2x2 up-convolution, valid convs; and a nearest upsample.
    text = """\
        arch up1d
        input x: [1, 64]
        network {
            conv(2, 3);  conv(2, 3);  avgpool(2);  conv(2, 3);  conv(2, 3)
            conv_transpose(2, 2, stride = 2);  conv(2, 3);  conv(2, 3)
            upsample(2);  conv(2, 3);  last: conv(2, 3, stride = 2)
        }
        """
    arch = load(tmp_path, text)
    module = to_torch(arch).double()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.1)  # positive weights: no gradient cancels, the support is the field
    field = archspec.analyze(arch).receptive_field
    n = arch.nodes[-1].shape[-1]
    supports = [_support(torch, module.double(), (1, 64), u) for u in range(n)]
    assert max(hi - lo + 1 for lo, hi in supports) == field.size[0]          # the widest unit
    # the half-pixel line through the pairs' centres, within half a pixel of each pair's true centre
    for u in range(0, n - 1, 2):
        true_centre = sum(lo + hi for lo, hi in supports[u:u + 2]) / 4
        line = -field.padding[0] + (field.size[0] - 1) / 2 + (u + 0.5) * field.stride[0]
        assert abs(true_centre - line) <= 0.5
    # After a 2x upsample units come in pairs with one field: the stride is the advance per unit over pairs
    m = (n - 1) // 2 * 2
    assert supports[m][0] - supports[0][0] == m * field.stride[0]


def test_upsampling_divides_the_effective_stride(tmp_path):
    arch = load(tmp_path, """\
        arch strides
        input x: [3, 16, 16]
        network {
            up: upsample(2)
            down: conv(4, 3, stride = 4, pad = 1)
            shuffle: conv(16, 1);  pixel_shuffle(2)
            t: conv_transpose(4, 3, stride = 2, pad = 1, output_pad = 1)
        }
        """)
    r = archspec.analyze(arch)
    assert r.layer("up").receptive_field.stride == (0.5, 0.5)
    assert r.layer("up").receptive_field.to_dict()["stride"] == [0.5, 0.5]   # JSON: floats
    assert r.layer("down").receptive_field.stride == (2, 2)
    assert r.layer("3").receptive_field.stride == (1, 1)  # pixel_shuffle(2) halves it back
    assert r.layer("t").receptive_field.stride == (0.5, 0.5)
    assert r.layer("t").macs == 4 * 16 * 16 * 4 * 9 and r.layer("t").params == 4 * 4 * 9 + 4
    assert '"stride": [0.5, 0.5]' in r.to_json()


@pytest.mark.parametrize("stmt, what", [
    ("upsample(10 ** 9)", "would take"),
    ("interpolate(10 ** 9)", "would take"),
    ("interpolate([10 ** 6, 10 ** 6])", "would take"),
    ("conv_transpose(8, 2, stride = 10 ** 6)", "would take"),
    ("conv(10 ** 9, 8)", "parameters, over the limit"),
    ("pixel_shuffle(10 ** 9)", "needs channels divisible by"),
    ('upsample(2, mode = "bicubic")', "unknown mode 'bicubic'"),
    ('upsample(2, mode = "trilinear")', "mode 'trilinear' is for 3 spatial axes"),
    ("upsample(2, align_corners = true)", "align_corners applies to the linear modes only"),
    ("center_crop(9)", "cannot crop [8, 8] to a larger [9, 9]"),
    ("conv_transpose(8, 3, pad = 5)", "leaves no output"),
    ("conv_transpose(8, 3, stride = 2, output_pad = 2)", "output_pad [2, 2] must be smaller"),
])
def test_hostile_resampling_arguments_are_positioned_errors_fast(tmp_path, stmt, what):
    import time
    start = time.perf_counter()
    d = error(tmp_path, f"arch bad\ninput image: [8, 8, 8]\nnetwork {{\n    relu()\n    {stmt}\n}}\n")
    assert time.perf_counter() - start < 2.0
    assert what in d.message and (d.pos.line, d.pos.col) == (5, 5), (d.message, d.pos)


def test_volumes(tmp_path):
    arch = load(tmp_path, """\
        arch video
        input clip: [3, 8, 32, 32]
        network {
            stem: conv(16, [3, 7, 7], stride = [1, 2, 2], pad = [1, 3, 3], bias = false);  bn();  relu()
            maxpool([1, 3, 3], stride = [1, 2, 2], pad = [0, 1, 1])
            conv(32, 3, stride = 2, pad = 1);  bn();  relu()
            adaptive_avgpool([1, 3, 3]);  gap();  flatten();  fc: linear(10)
        }
        """)
    assert [n.shape for n in arch.nodes][:5] == [(16, 8, 16, 16)] * 3 + [(16, 8, 8, 8), (32, 4, 4, 4)]
    r = archspec.analyze(arch)
    assert r.layer("stem").macs == 16 * 8 * 16 * 16 * 3 * 3 * 7 * 7
    assert r.layer("5").receptive_field.stride == (2, 8, 8)
    run_everywhere(arch)

"""PyTorch backend: the op table's lowering, the zoo's layouts and shapes, init schemes, weights,
and the standalone source emitter (compared with to_torch in a fresh interpreter)."""
from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.fx as fx
from torch import nn

import archspec
from archspec import SpecError
from archspec.ir import INIT_SCHEMES
from archspec.ops import REGISTRY
from archspec.ops.tensor import shared_values
from archspec_compiler import to_torch
from archspec_compiler import torch as backend
from archspec_compiler.pysource import emit_python
from helpers import ROOT, op_cases, write_spec
from refdata import layouts

LAYOUTS = layouts()

# Every op kind, merges, scopes with numeric names at the top level, two outputs.
TINY = """
arch tiny
param num_classes = 10
param aux = true
input image: [3, 16, 16]
init conv = "kaiming_normal_fan_out"
init bn = "ones_zeros"
init linear = "normal_0.01"

network {
    stem: { conv(8, 3, pad = 1, bias = false); bn(); relu() }
    residual { conv(8, 3, pad = 1); bn(); silu(); stochastic_depth(0.1) }
    dense { bn(); relu(); conv(4, 1) }
    gate { gap(); conv(4, 1); relu(); conv(12, 1); hardsigmoid() }
    branch concat { conv(4, 1); { maxpool(3, stride = 1, pad = 1); conv(4, 1) } }
    save mid
    if aux { aux: { gap(); flatten(); linear(3) }; save a }
    from mid {
        lrn(3); avgpool(2); hardswish(); gelu(); tanh(); relu6(); sigmoid(); identity()
        head: { adaptive_avgpool(2); flatten(); dropout(0.2); linear(num_classes); softmax() }
    }
    save logits
    if aux { output logits, a } else { output logits }
}
"""


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("tiny"), TINY, "tiny.arch")


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return archspec.load(tiny_path)


# ---------------------------------------------------------------- the op table

def test_every_op_has_a_torch_lowering():
    missing = [name for name in REGISTRY if name not in backend.LOWERINGS and name not in backend.MERGES]
    assert not missing, f"ops without a PyTorch lowering: {missing}"


def run_op(name: str, a: dict, ins: list, batch: int = 2):
    """Run one op on random inputs; returns (module or None, inputs, output)."""
    xs = [torch.randn(batch, *s, requires_grad=True) for s in ins]
    if name == "take":  # a table read by an index (a buffer: batch 1, integers)
        xs = [xs[0], torch.randint(0, ins[0][0], (1, *ins[1]))]
        graph = fx.Graph()
        graph.output(backend.MERGES[name].fx(graph, [graph.placeholder("t"), graph.placeholder("i")], a))
        return None, xs[:1], fx.GraphModule(nn.Module(), graph)(*xs)
    if name in backend.MERGES:
        graph = fx.Graph()
        ph = [graph.placeholder(f"x{i}") for i in range(len(xs))]
        graph.output(backend.MERGES[name].fx(graph, ph, a))
        return None, xs, fx.GraphModule(nn.Module(), graph)(*xs)
    if REGISTRY[name].arity == 0:  # a learnable tensor: an nn.Parameter, shared by the batch
        m, value = nn.Module(), backend.build_module(name, a, ())
        if isinstance(value, nn.Parameter):
            m.register_parameter("w", value)
        else:  # a buffer computed by a rule (Swin's attention mask is not stored: persistent = false)
            m.register_buffer("w", value, persistent=a.get("persistent", True))
        w = m.w if a.get("batch") else m.w.unsqueeze(0)
        if not isinstance(value, nn.Parameter):
            w = w.float().requires_grad_()  # no gradient flows into a buffer: the check below needs one
        return m, xs, w.expand(batch, *w.shape[1:])
    m = backend.build_module(name, a, ins[0]).train()
    return m, xs, m(xs[0])


@pytest.mark.parametrize("name, a, ins, out", op_cases())
def test_op_lowering_matches_the_op_table(name, a, ins, out):
    op = REGISTRY[name]
    torch.manual_seed(0)
    m, xs, y = run_op(name, a, ins)
    assert tuple(y.shape) == (2, *out)
    params = sum(p.numel() for p in m.parameters()) if m is not None else 0
    buffers = sum(b.numel() for b in m.state_dict().values()) - params if m is not None else 0  # stored ones
    assert params == op.params(a, ins, out)
    assert buffers == op.buffers(a, ins, out)
    y.float().sum().backward()
    assert all(x.grad is not None and x.grad.shape == x.shape for x in xs)
    if m is not None:
        assert all(p.grad is not None for p in m.parameters())


def test_softmax_and_cat_count_the_batch_axis():
    # dim is an axis of the sample: 0 = channels, which is dim 1 of the batched tensor.
    m = backend.build_module("softmax", {"dim": 0}, (4, 3))
    y = m(torch.randn(2, 4, 3))
    assert torch.allclose(y.sum(dim=1), torch.ones(2, 3))
    _, _, z = run_op("cat", {"dim": 1}, [(2, 3, 4), (2, 5, 4)])
    assert tuple(z.shape) == (2, 2, 8, 4)


def test_stochastic_depth_row_mode():
    torch.manual_seed(0)
    m = backend.StochasticDepth(0.5, "row").train()
    x = torch.ones(4000, 3, 2, 2)
    y = m(x)
    per_sample = y.flatten(1)
    # whole samples are dropped or scaled by 1/(1-p); about half survive
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()
    assert 0.45 < (per_sample[:, 0] > 0).float().mean() < 0.55
    assert torch.equal(m.eval()(x), x)
    b = backend.StochasticDepth(0.5, "batch").train()(x)
    assert b.unique().numel() == 1


def test_missing_lowering_is_a_spec_error(tiny, monkeypatch):
    monkeypatch.delitem(backend.LOWERINGS, "lrn")
    with pytest.raises(SpecError) as err:
        to_torch(tiny)
    d = err.value.first
    assert "lrn" in d.message and d.pos is not None and d.pos.file.endswith("tiny.arch") and d.pos.line == 19


# ---------------------------------------------------------------- the compiled module

def test_module_is_generated_straight_line_code(tiny):
    m = to_torch(tiny)
    assert isinstance(m, fx.GraphModule)
    for block in m.modules():  # the model and every block run straight-line generated code
        if isinstance(block, fx.GraphModule):
            assert "for " not in block.code and "while " not in block.code
    # every layer is called once, by its path (fx inlines the blocks down to the leaves)
    class Leaves(fx.Tracer):  # inline the blocks and chains, keep every layer (StochasticDepth too) a call
        def is_leaf_module(self, mod, name):
            return not isinstance(mod, (fx.GraphModule, nn.Sequential))

    flat = Leaves().trace(m)
    calls = [n.target for n in flat.nodes if n.op == "call_module"]
    assert calls == [n.name for n in tiny.nodes if n.op not in backend.MERGES]
    assert sorted(n.target.__name__ for n in flat.nodes if n.op == "call_function") == ["add", "cat", "cat", "mul"]


def test_module_tree_follows_node_names_and_order(tiny):
    m = to_torch(tiny)
    leaves = [name for name, mod in m.named_modules() if not list(mod.children())]
    assert leaves == [n.name for n in tiny.nodes if n.op not in backend.MERGES]
    assert isinstance(m.get_submodule("stem.0"), nn.Conv2d)
    assert isinstance(m.get_submodule("8.4"), nn.Hardsigmoid)
    assert m.get_submodule("head.4").dim == 1


def test_several_outputs_come_back_in_declaration_order(tiny_path):
    m = to_torch(archspec.load(tiny_path)).eval()
    logits, a = m(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10) and a.shape == (2, 3)
    assert m.output_names == ("logits", "a")
    one = to_torch(archspec.load(tiny_path, aux=False)).eval()
    y = one(torch.randn(2, 3, 16, 16))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10)
    assert not any(k.startswith("aux.") for k in one.state_dict())


def test_inplace_activations_do_not_change_results(tmp_path):
    # relu after identity (an alias) and after a tensor read twice must not run in place.
    path = write_spec(tmp_path, """
        arch alias
        input x: [4, 6, 6]
        network {
            save x0
            identity(); relu(); save r
            from x0 { conv(4, 1); save c }
            from c { relu() }
            save r2
            add(x0, c, r, r2)
            relu()
        }
    """)
    arch = archspec.load(path)
    fast = to_torch(arch)
    safe = to_torch(arch, inplace=False)
    safe.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 6, 6)
    expect = safe(x.clone())
    assert torch.equal(fast(x.clone()), expect)
    inplace = {n for n, mod in fast.named_modules() if getattr(mod, "inplace", False)}
    # only the last relu: its input (the add) has no other reader
    assert inplace == {arch.nodes[-1].name} and arch.nodes[-2].op == "add"


def test_residual_adds_write_into_the_batch_norm_output_as_torchvision():
    """`out += identity`: the add writes into bn3's output (no fresh tensor per block), never into a value
    read elsewhere, a feature tap or anything with inplace=False; results and gradients are unchanged."""
    arch = small_arch("resnet18")
    fast, safe = to_torch(arch), to_torch(arch, inplace=False)
    safe.load_state_dict(fast.state_dict())
    assert "bn2.add_(" in fast.layer1[0].code and "add_(" not in safe.layer1[0].code
    assert backend.inplace_adds(arch) == {n.name for n in arch.nodes if n.op == "add"}
    assert not backend.inplace_adds(arch, frozenset({"layer1.0.bn2"})) & {"layer1.0.add"}
    x = torch.randn(2, *arch.inputs[0].shape)
    for m in (fast, safe):
        m.train()
        m(x).square().mean().backward()
    assert torch.allclose(fast(x), safe(x))
    grads = dict(safe.named_parameters())
    assert all(torch.allclose(p.grad, grads[k].grad, atol=1e-6) for k, p in fast.named_parameters())
    taps = to_torch(arch, outputs=["layer1.0.bn2", "layer1"])
    taps.load_state_dict(safe.state_dict(), strict=False)
    seen = []
    safe.layer1[0].bn2.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    with torch.no_grad():
        got = taps.eval()(x)
        safe.eval()(x)
    assert "bn2.add_(" not in taps.get_submodule("layer1.0").code and torch.equal(got["layer1.0.bn2"], seen[-1])


# ---------------------------------------------------------------- the zoo

def small_arch(name: str):
    """The zoo model at the smallest of a few input sizes it accepts (fast forward passes)."""
    for size in (32, 64, 96, 128, 160):
        try:
            return archspec.load(name, input_size=(size, size))
        except SpecError:
            continue
    return archspec.load(name)


def analyzer_params(arch) -> int:
    return archspec.analyze(arch).params


def is_heavy(name: str) -> bool:
    arch = archspec.load(name)
    return analyzer_params(arch) > 30_000_000 or len(arch.nodes) > 600


ZOO = archspec.list_models()
ZOO_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if is_heavy(n) else n for n in ZOO]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_params_equal_the_analyzer(name):
    arch = archspec.load(name)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        m = to_torch(arch)
    assert sum(p.numel() for p in m.parameters()) == analyzer_params(arch)
    stored = sum(v.numel() for v in m.state_dict().values()) - sum(p.numel() for p in m.parameters())
    assert stored == archspec.analyze(arch).buffers  # Swin's attention mask is a buffer, but not stored


@pytest.mark.parametrize("name", [n for n in ZOO if n in LAYOUTS])
def test_zoo_state_dict_equals_torchvision(name):
    arch = archspec.load(name)
    with torch.device("meta"):
        m = to_torch(arch)
    got = [[k, list(v.shape)] for k, v in m.state_dict().items()]
    assert got == LAYOUTS[name]["state_dict"]
    assert sum(p.numel() for p in m.parameters()) == LAYOUTS[name]["params"]


def test_layouts_cover_resnet():
    # The reference must name the models this file claims to check.
    assert {"resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"} <= set(LAYOUTS) & set(ZOO)


def record_all(module: fx.GraphModule, arch) -> tuple[fx.GraphModule, list[str]]:
    """The module's layers run by the flat dataflow graph, also returning every IR node's value."""
    graph, env = fx.Graph(), {}
    result, _ = graph.graph_copy(backend.build_graph(arch), env, return_output_node=True)
    names, values = [], []
    for old, new in env.items():
        if "archspec_node" in old.meta:
            names.append(old.meta["archspec_node"])
            values.append(new)
    graph.output((result, tuple(values)))
    return fx.GraphModule(module, graph), names


@pytest.mark.parametrize("name", ZOO_PARAMS)
def test_zoo_shapes_and_backward(name):
    arch = small_arch(name)
    torch.manual_seed(0)
    m = to_torch(arch).train()
    assert sum(p.numel() for p in m.parameters()) == analyzer_params(arch)
    xs = [torch.randn(2, *i.shape) for i in arch.inputs]
    recorder, names = record_all(m, arch)
    out, values = recorder(*xs)
    shared = shared_values(arch.nodes)  # learnable tensors: one for the whole batch
    assert dict(zip(names, (tuple(v.shape) for v in values))) == {n.name: (1 if n.name in shared else 2, *n.shape)
                                                                  for n in arch.nodes}
    outs = out if isinstance(out, tuple) else (out,)
    sum(o.float().mean() for o in outs).backward()
    no_grad = [k for k, p in m.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"


# ---------------------------------------------------------------- initialisation

def test_every_init_scheme_is_implemented():
    assert set(backend.INIT) == set(INIT_SCHEMES)


INIT_SPEC = """
arch init_net
input x: [64, 8, 8]
init conv = "{scheme}"
init linear = "{scheme}"
network {{ conv(128, 3, pad = 1); gap(); flatten(); linear(256) }}
"""


def _check_init(scheme: str, w: torch.Tensor, b: torch.Tensor, fan_in: int, fan_out: int):
    std, lo, hi = w.std().item(), w.min().item(), w.max().item()
    if scheme == "kaiming_normal_fan_out":
        assert std == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    elif scheme == "kaiming_normal_fan_in":
        assert std == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    elif scheme == "kaiming_uniform":
        bound = math.sqrt(6 / fan_in)
        assert hi <= bound and lo >= -bound and hi > 0.95 * bound
    elif scheme == "xavier_uniform":
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert hi <= bound and lo >= -bound and hi > 0.95 * bound
    elif scheme == "normal_0.01":
        assert std == pytest.approx(0.01, rel=0.05)
    elif scheme == "trunc_normal_0.01":
        assert std == pytest.approx(0.01, rel=0.05) and max(hi, -lo) <= 2.0  # cut at +-2
    elif scheme == "uniform_fan_out":
        bound = 1 / math.sqrt(w.shape[0])
        assert hi <= bound and lo >= -bound and hi > 0.95 * bound
    elif scheme == "ones_zeros":
        assert torch.equal(w, torch.ones_like(w))
    elif scheme == "default_zero_bias":
        bound = 1 / math.sqrt(fan_in)
        assert hi <= bound and lo >= -bound and hi > 0.9 * bound
    if scheme != "default":
        assert torch.equal(b, torch.zeros_like(b))
    else:  # PyTorch's own: kaiming_uniform(a=sqrt(5)) -> U(+-1/sqrt(fan_in)), bias likewise
        bound = 1 / math.sqrt(fan_in)
        assert hi <= bound and lo >= -bound and b.abs().max() <= bound and b.abs().max() > 0


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_init_schemes(tmp_path, scheme):
    torch.manual_seed(0)
    m = to_torch(archspec.load(write_spec(tmp_path, INIT_SPEC.format(scheme=scheme))))
    conv, linear = m.get_submodule("0"), m.get_submodule("3")
    _check_init(scheme, conv.weight, conv.bias, fan_in=64 * 9, fan_out=128 * 9)
    _check_init(scheme, linear.weight, linear.bias, fan_in=128, fan_out=256)


def test_norm_init_and_pytorch_defaults(tiny):
    m = to_torch(tiny)
    bn = m.get_submodule("stem.1")
    assert torch.equal(bn.weight, torch.ones(8)) and torch.equal(bn.bias, torch.zeros(8))
    assert m.get_submodule("aux.2").weight.std().item() == pytest.approx(0.01, rel=0.3)


# ---------------------------------------------------------------- weights

@pytest.fixture(scope="module")
def resnet18():
    return archspec.load("resnet18", input_size=(32, 32), num_classes=10)


def test_weights_round_trip(resnet18, tmp_path):
    torch.manual_seed(0)
    a = to_torch(resnet18).eval()
    path = tmp_path / "r18.pth"
    torch.save(a.state_dict(), path)
    x = torch.randn(2, 3, 32, 32)
    for source in (path, str(path), a.state_dict(), {"state_dict": a.state_dict()},
                   {f"module.{k}": v for k, v in a.state_dict().items()}):
        b = to_torch(resnet18, weights=source).eval()
        assert torch.equal(b(x), a(x))


def test_weights_safetensors(resnet18, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    a = to_torch(resnet18).eval()
    path = tmp_path / "r18.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in a.state_dict().items()}, str(path))
    b = to_torch(resnet18, weights=path).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(b(x), a(x))


def test_weights_mismatch_lists_keys_with_spec_positions(resnet18):
    state = to_torch(archspec.load("resnet18", input_size=(32, 32))).state_dict()  # 1000 classes
    del state["layer2.0.bn1.running_mean"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(SpecError) as err:
        to_torch(resnet18, weights=state)
    diags = {d.message.split("'")[1]: d for d in err.value.diagnostics}
    assert set(diags) == {"fc.weight", "fc.bias", "layer2.0.bn1.running_mean", "extra.weight"}
    fc = resnet18.node("fc").span
    assert (diags["fc.weight"].pos.file, diags["fc.weight"].pos.line) == (fc.file, fc.line)
    assert "[1000, 512]" in diags["fc.weight"].message and "[10, 512]" in diags["fc.weight"].message
    bn = resnet18.node("layer2.0.bn1").span
    assert diags["layer2.0.bn1.running_mean"].pos.line == bn.line and "missing" in diags[
        "layer2.0.bn1.running_mean"].message
    assert "unexpected" in diags["extra.weight"].message
    assert "resnet.arch:" in err.value.render()


def test_weights_not_strict_keeps_missing_layers(resnet18):
    full = to_torch(resnet18).state_dict()
    partial = {k: v for k, v in full.items() if not k.startswith("fc.")}
    partial["unused.weight"] = torch.zeros(3)
    m = to_torch(resnet18, weights=partial, strict=False)
    assert torch.equal(m.state_dict()["conv1.weight"], full["conv1.weight"])
    with pytest.raises(SpecError):  # mis-shaped keys are errors even when not strict
        to_torch(resnet18, weights={"fc.weight": torch.zeros(3, 3)}, strict=False)


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weights_pickle_that_runs_code_is_refused(resnet18, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:  # torch.save's zip format, holding an object whose unpickling runs a command
        torch.save({"conv1.weight": _Evil(str(marker))}, f)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps({"conv1.weight": _Evil(str(marker))}, protocol=2))
    for p in (path, plain):
        with pytest.raises(SpecError) as err:
            to_torch(resnet18, weights=p)
        assert "refused" in err.value.first.message and "weights_only" in err.value.first.hint
        assert not marker.exists()


def test_weights_bad_files(resnet18, tmp_path):
    with pytest.raises(SpecError, match="no such weights file"):
        to_torch(resnet18, weights=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="refused"):
        to_torch(resnet18, weights=garbage)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(SpecError, match="not a state_dict"):
        to_torch(resnet18, weights=tensor)


def test_weights_wrong_type(resnet18):
    with pytest.raises(SpecError, match="weights must be a state_dict"):
        to_torch(resnet18, weights=42)


def test_module_survives_deepcopy_and_pickle(resnet18):
    import copy
    import io
    m = to_torch(resnet18).eval()
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    x = torch.randn(1, 3, 32, 32)
    for other in (copy.deepcopy(m), torch.load(buf, weights_only=False)):
        assert other.arch_name == "resnet18" and other.output_names == ("output",)
        assert list(other.state_dict()) == list(m.state_dict())
        assert torch.equal(other.eval()(x), m(x))


def test_import_compiler_is_lazy():
    code = ("import sys, archspec_compiler; assert 'torch' not in sys.modules and 'onnx' not in sys.modules; "
            "archspec_compiler.to_torch; assert 'torch' in sys.modules and 'onnx' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the standalone source

RUNNER = """
import importlib.util, sys, torch
torch.set_num_threads(int(sys.argv[1]))
for path in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location("emitted", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build().eval()
    blob = torch.load(path + ".in", weights_only=True)
    keys = list(model.state_dict())
    model.load_state_dict(blob["state"])
    with torch.no_grad():
        y = model(*blob["inputs"])
    torch.save({"keys": keys, "out": list(y) if isinstance(y, tuple) else [y],
                "tuple": isinstance(y, tuple), "modules": sorted(sys.modules)}, path + ".out")
"""

EMITTED = ["resnet18", "mobilenet_v3_small", "densenet121", "googlenet", "efficientnet_b0"]


def test_emitted_source_equals_to_torch(tiny_path, tmp_path):
    from archspec.cli import main
    cases = []
    out = tmp_path / "tiny_model.py"
    assert main(["compile", str(tiny_path), "--emit", "python", "-o", str(out)]) == 0  # through the CLI
    cases.append((archspec.load(tiny_path), out))
    for name in [n for n in EMITTED if n in ZOO]:
        arch = small_arch(name)
        path = tmp_path / f"{name}.py"
        path.write_text(emit_python(arch))
        cases.append((arch, path))
    expected = []
    for arch, path in cases:
        torch.manual_seed(1)
        m = to_torch(arch).eval()
        # non-trivial BN statistics, so that running stats are part of the comparison
        for buf_name, buf in m.named_buffers():
            if buf_name.endswith("running_mean") or buf_name.endswith("running_var"):
                buf.copy_(torch.rand_like(buf) + 0.5)
        xs = [torch.randn(2, *i.shape) for i in arch.inputs]
        torch.save({"state": m.state_dict(), "inputs": xs}, str(path) + ".in")
        with torch.no_grad():
            y = m(*xs)
        expected.append((list(m.state_dict()), list(y) if isinstance(y, tuple) else [y], isinstance(y, tuple)))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", str(runner), str(torch.get_num_threads())]
                          + [str(p) for _, p in cases], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for (arch, path), (keys, outs, is_tuple) in zip(cases, expected):
        got = torch.load(str(path) + ".out", weights_only=True)
        assert got["keys"] == keys, arch.title
        assert got["tuple"] == is_tuple
        assert len(got["out"]) == len(outs) and all(torch.equal(a, b) for a, b in zip(got["out"], outs)), arch.title
        assert not any(m == "archspec" or m.startswith(("archspec.", "archspec_compiler", "compiler")) for m in got["modules"])


def test_emitted_source_is_readable(tiny):
    text = emit_python(tiny)
    import ast
    tree = ast.parse(text)
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports <= {"torch", "math"}
    forward = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "forward"
                   and "image" in [a.arg for a in n.args.args])
    assert not any(isinstance(n, (ast.For, ast.While)) for n in ast.walk(forward))
    assert "self.stem = nn.Sequential(" in text and "nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)," in text
    assert "return (x, x1)" in text or "return (" in text
    assert "class Tiny(nn.Module):" in text and "def build()" in text


def test_emitted_build_checks_memory_before_allocating(tiny):
    """build() refuses a model whose weights exceed the memory available, as to_torch does (a 9e9-parameter spec
    under max_params made the fuzzer's importer allocate 36 GB)."""
    namespace: dict = {}
    exec(compile(emit_python(tiny), "<tiny>", "exec"), namespace)
    assert namespace["WEIGHT_BYTES"] == archspec.analyze(tiny).params * 4
    with pytest.raises(MemoryError, match="GiB"):
        namespace["_check_memory"](1 << 62)
    asked = []
    namespace["_check_memory"] = asked.append  # build() looks the checker up at call time
    assert isinstance(namespace["build"](), torch.nn.Module) and asked == [namespace["WEIGHT_BYTES"]]

def test_compile_command_errors(tmp_path, capsys):
    from archspec.cli import main
    bad = write_spec(tmp_path, "arch bad\ninput x: [3, 8, 8]\nnetwork { conv(8, 3, strde = 2) }\n", "bad.arch")
    assert main(["compile", str(bad), "-o", str(tmp_path / "x.py")]) == 1
    err = capsys.readouterr().err
    assert "bad.arch:3:" in err and "Traceback" not in err
    assert not (tmp_path / "x.py").exists()


@pytest.mark.parametrize("view, back", [("reshape([4, 36])", "reshape([4, 6, 6])"), ("permute([1, 2, 0])", "permute([2, 0, 1])"),
                                        ("transpose(1, 2)", "transpose(1, 2)"), ("flatten(1)", "unflatten(1, [6, 6])"),
                                        ("unflatten(0, [2, 2])", "flatten(0, 1)")])
def test_inplace_activation_never_writes_through_a_view(view, back, tmp_path):
    """relu after a view of a saved tensor must not run in place: it would change the saved tensor too (found in
    review: reshape -> relu -> add(a, r) differed from the inplace=False build)."""
    arch = archspec.load(write_spec(tmp_path, "arch alias\ninput x: [4, 6, 6]\nnetwork {\n    conv(4, 1);  save a\n"
                                    f"    {view};  relu();  {back};  save r\n    add(a, r)\n}}\n", "alias.arch"))
    torch.manual_seed(0)
    fast, plain = to_torch(arch).eval(), to_torch(arch, inplace=False).eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(fast(x), plain(x))

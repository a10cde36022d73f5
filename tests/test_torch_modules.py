"""The compiled model is the module tree PyTorch users work with (torchvision's): nested blocks that run
their own forward, nn.Sequential where torchvision has one, hooks, replacement, feature taps.

Reference: tests/reference/torchvision_modules.json (torchvision's named_modules(), [path, type, children]),
a byte-identical copy of ../shared/reference/torchvision_modules.json."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import fx, nn  # noqa: E402

import archspec  # noqa: E402
from archspec.analysis import taps  # noqa: E402
from archspec_compiler import to_torch  # noqa: E402
from archspec_compiler import torch as backend  # noqa: E402

REF = json.loads((Path(__file__).parent / "reference" / "torchvision_modules.json").read_text())
MODELS = sorted(REF)
X_SIZE = 64  # every model here accepts 64x64; small enough for CPU forward passes


def load(name: str, size: int | None = None):
    """The zoo model as torchvision builds it for the reference (GoogLeNet with its aux heads)."""
    kw = {"aux": True} if any(p.startswith("aux") for p, _, _ in REF[name]) else {}
    return archspec.load(name, input_size=(size, size) if size else None, **kw)


# torchvision's leaf types without parameters (the reference lists types, not parameters)
STATELESS = {"ReLU", "ReLU6", "SiLU", "GELU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Dropout", "Identity",
             "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "StochasticDepth", "Softmax"}


def holds_parameters(name: str) -> dict[str, tuple[str, int]]:
    """torchvision's module paths that hold parameters (a layer with weights, or a module with such a
    layer below it), with their type and number of children."""
    rows = REF[name]
    weighted = [path for path, kind, children in rows if children == 0 and kind not in STATELESS]
    return {path: (kind, children) for path, kind, children in rows
            if any(w == path or w.startswith(path + ".") or not path for w in weighted)}


def flat_values(module: nn.Module, arch, xs) -> dict[str, torch.Tensor]:
    """Every IR node's value, computed by calling the tree's leaves one by one (the flat dataflow)."""
    graph = backend.build_graph(arch)
    values, env = [], {}
    new = fx.Graph()
    out_node = None
    for n in graph.nodes:
        if n.op == "output":
            out_node = n
            continue
        env[n] = new.node_copy(n, lambda a: env[a])
        if "archspec_node" in n.meta:
            values.append((n.meta["archspec_node"], env[n]))
    assert out_node is not None
    new.output(tuple(v for _, v in values))
    with torch.no_grad():
        outs = fx.GraphModule(module, new)(*xs)
    return {name: o.clone() for (name, _), o in zip(values, outs)}


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    name = request.param
    arch = load(name, X_SIZE)
    torch.manual_seed(0)
    return name, arch, to_torch(arch, inplace=False).eval()


# ---------------------------------------------------------------- the tree matches torchvision's

def test_reference_names_zoo_models():
    assert {"resnet50", "mobilenet_v2", "efficientnet_b0", "googlenet", "densenet121"} <= set(REF)
    assert set(REF) <= set(archspec.list_models())


def test_module_paths_children_and_sequentials(built):
    name, arch, m = built
    ours = dict(m.named_modules())
    ref = holds_parameters(name)
    assert len(ref) > 5
    problems = []
    for path, (kind, n) in ref.items():
        if path not in ours:
            problems.append(f"missing {path} ({kind})")
            continue
        mine = ours[path]
        want = [c for c in ref if c.startswith(path + "." if path else "") and c != path
                and "." not in c[len(path) + 1 if path else 0:]]
        have = [c for c, mod in mine.named_children()
                if any(True for _ in mod.parameters()) or list(mod.children())]
        have = [f"{path}.{c}" if path else c for c in have]
        if sorted(want) != sorted(have):
            problems.append(f"{path}: children holding parameters {have} != torchvision's {want}")
        if kind == "Sequential":
            if not isinstance(mine, nn.Sequential):
                problems.append(f"{path} is a {type(mine).__name__}, torchvision's is an nn.Sequential")
            elif len(mine) != n:
                problems.append(f"len({path}) = {len(mine)}, torchvision's {n}")
            else:
                for i in range(n):  # [i] reaches the i-th child (by position, as torchvision's does)
                    assert mine[i] is list(mine.children())[i]
                assert mine[-1] is list(mine.children())[-1]
                assert isinstance(mine[: max(1, n - 1)], nn.Sequential)
    assert not problems, "\n".join(problems[:20])


def test_hooks_fire_once_with_the_block_output(built):
    name, arch, m = built
    containers = [p for p, (_, n) in holds_parameters(name).items() if n > 0 and p]
    resolved = {t.name: t.node for t in taps(arch, containers)}
    xs = [torch.randn(2, *i.shape) for i in arch.inputs]
    seen: dict[str, list] = {p: [] for p in containers}
    handles = [m.get_submodule(p).register_forward_hook(
        lambda mod, args, out, p=p: seen[p].append(out.detach().clone())) for p in containers]
    try:
        with torch.no_grad():
            m(*xs)
    finally:
        for h in handles:
            h.remove()
    flat = flat_values(m, arch, xs)
    training = arch.training_only()  # GoogLeNet's aux heads: eval mode does not run them, as torchvision's
    for p in containers:
        if resolved[p] in training:
            assert not seen[p], f"hook on {p}, a training-only head, fired in eval mode"
            continue
        assert len(seen[p]) == 1, f"hook on {p} fired {len(seen[p])} times"
        assert torch.allclose(seen[p][0], flat[resolved[p]], atol=1e-5), p
    heads = [p for p in containers if resolved[p] in training]
    if heads:  # training mode runs them, once each
        handles = [m.get_submodule(p).register_forward_hook(lambda mod, args, out, p=p: seen[p].append(out))
                   for p in heads]
        try:
            with torch.no_grad():
                m.train()(*xs)
        finally:
            m.eval()
            for h in handles:
                h.remove()
        assert all(len(seen[p]) == 1 for p in heads), {p: len(seen[p]) for p in heads}


def test_replacing_a_top_level_module_takes_effect(built):
    name, arch, m = built
    xs = [torch.randn(2, *i.shape) for i in arch.inputs]
    with torch.no_grad():
        before = m(*xs)
    top = [p for p in holds_parameters(name) if p and "." not in p]
    training = {t.name for t in taps(arch, top) if t.node in arch.training_only()}  # not run in eval mode

    class Spy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, *args):
            self.calls += 1
            return self.inner(*args)

    for p in top:
        spy = Spy(getattr(m, p))
        setattr(m, p, spy)
        with torch.no_grad():
            after = m(*xs)
        setattr(m, p, spy.inner)
        assert spy.calls == (0 if p in training else 1), p
        for a, b in zip(after if isinstance(after, tuple) else (after,), before if isinstance(before, tuple) else (before,)):
            assert torch.equal(a, b)


# ---------------------------------------------------------------- recipes a researcher uses

@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return to_torch(archspec.load("resnet50", input_size=(64, 64))).eval()


def test_resnet_recipes(resnet50):
    m = resnet50
    x = torch.randn(2, 3, 64, 64)
    assert type(m.layer4[-1]).__name__ == "Bottleneck" and len(m.layer4) == 3
    assert isinstance(m.layer1[0].downsample, nn.Sequential) and len(m.layer1[0].downsample) == 2
    assert "Bottleneck(" in repr(m) and "Module(" not in repr(m)
    body = nn.Sequential(*list(m.children())[:-1])  # the classic "drop the head" recipe
    with torch.no_grad():
        assert body(x).shape == (2, 2048)
    old = m.fc
    m.fc = nn.Linear(2048, 10)
    try:
        with torch.no_grad():
            assert m(x).shape == (2, 10)
    finally:
        m.fc = old
    old4 = m.layer4
    m.layer4 = nn.Sequential(nn.Conv2d(1024, 2048, 1))  # a different stage: forward uses it
    try:
        with torch.no_grad():
            y = m(x)
        m.layer4 = old4
        with torch.no_grad():
            assert not torch.allclose(y, m(x))
    finally:
        m.layer4 = old4


def test_freezing_a_slice_of_features():
    m = to_torch(archspec.load("mobilenet_v2", input_size=(64, 64)))
    for p in m.features[:10].parameters():
        p.requires_grad_(False)
    m.classifier[1] = nn.Linear(1280, 7)
    out = m(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is None for p in m.features[:10].parameters())
    assert all(p.grad is not None for p in m.features[10:].parameters())


def test_block_forward_runs_alone(resnet50):
    x = torch.randn(1, 256, 16, 16)
    block = resnet50.layer1[1]
    with torch.no_grad():
        y = block(x)
        # by hand, as torchvision's Bottleneck does
        h = block.relu(block.bn1(block.conv1(x)))
        h = torch.relu(block.bn2(block.conv2(h)))
        want = torch.relu(block.bn3(block.conv3(h)) + x)
    assert torch.allclose(y, want, atol=1e-5)


def test_tree_survives_pickle_and_trace(resnet50):
    x = torch.randn(1, 3, 64, 64)
    copy = pickle.loads(pickle.dumps(resnet50))
    assert list(copy.state_dict()) == list(resnet50.state_dict())
    assert isinstance(copy.layer4, nn.Sequential) and len(copy.layer4) == 3
    traced = fx.symbolic_trace(resnet50)
    with torch.no_grad():
        assert torch.equal(copy(x), resnet50(x)) and torch.equal(traced(x), resnet50(x))


# ---------------------------------------------------------------- feature extraction

@pytest.mark.parametrize("name, outputs", [
    ("resnet50", ["layer2", "layer3", "layer4"]),
    ("mobilenet_v2", ["features.3", "features.6", "features.13", "features.18"]),
    ("efficientnet_b0", ["features.2", "features.3", "features.5", "features.7"]),
])
def test_feature_taps_have_the_analyzers_shapes(name, outputs):
    arch = archspec.load(name, input_size=(96, 96))
    torch.manual_seed(0)
    full = to_torch(arch).eval()
    feats = to_torch(arch, weights=full.state_dict(), outputs=outputs).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        got = feats(x)
    want = taps(arch, outputs)
    assert list(got) == outputs
    for t in want:
        assert tuple(got[t.name].shape) == (2, *t.shape)
    # the same values as the full model's blocks produce (hooks on the full model)
    seen = {}
    for p in outputs:
        full.get_submodule(p).register_forward_hook(lambda mod, a, out, p=p: seen.__setitem__(p, out))
    with torch.no_grad():
        full(x)
    for p in outputs:
        assert torch.allclose(got[p], seen[p], atol=1e-5)
    # the head is gone: nothing after the last tap is kept
    head = "fc" if name == "resnet50" else "classifier"
    assert not hasattr(feats, head)


def test_feature_taps_of_a_layer_inside_a_block():
    arch = archspec.load("resnet18", input_size=(64, 64))
    m = to_torch(arch, outputs=["layer2.0.conv1", "layer3"])
    got = m(torch.randn(1, 3, 64, 64))
    shapes = {t.name: t.shape for t in taps(arch, ["layer2.0.conv1", "layer3"])}
    assert {k: tuple(v.shape[1:]) for k, v in got.items()} == shapes


def test_bad_tap_is_a_clear_error():
    arch = archspec.load("resnet18", input_size=(64, 64))
    with pytest.raises(archspec.SpecError) as err:
        to_torch(arch, outputs=["layer9"])
    assert "layer9" in str(err.value)


# ---------------------------------------------------------------- inference build

@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121"])
def test_inference_build_matches_the_plain_module(name):
    arch = archspec.load(name, input_size=(64, 64))
    torch.manual_seed(0)
    plain = to_torch(arch).eval()
    for mod in plain.modules():  # non-trivial statistics, so that folding has work to do
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    fast = to_torch(arch, weights=plain.state_dict(), inference=True)
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in fast.modules()) or name == "densenet121"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-4, rtol=1e-4)


def test_inference_cpu_build_prepacks_and_matches():
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    arch = archspec.load("resnet18", input_size=(64, 64))
    torch.manual_seed(0)
    plain = to_torch(arch).eval()
    fast = to_torch(arch, weights=plain.state_dict(), inference="cpu")
    assert type(fast.layer1[0].conv1).__name__ == "MkldnnConv2d" and isinstance(fast.layer1[0].bn1, nn.Identity)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        to_torch(arch, inference="gpu")


# ---------------------------------------------------------------- command line and emitted source

def test_analyze_and_compile_report_the_same_taps(tmp_path, capsys):
    from archspec.cli import main
    assert main(["analyze", "resnet50", "--input", "96x96", "--outputs", "layer2,layer3,layer4", "--format", "json"]) == 0
    reported = json.loads(capsys.readouterr().out)["taps"]
    assert [(t["name"], t["channels"], t["stride"]) for t in reported] == \
        [("layer2", 512, [8, 8]), ("layer3", 1024, [16, 16]), ("layer4", 2048, [32, 32])]
    out = tmp_path / "feats.py"
    assert main(["compile", "resnet50", "--outputs", "layer2,layer3,layer4", "-o", str(out)]) == 0
    assert "return {'layer2': x, 'layer3': x1, 'layer4': x2}" in out.read_text()
    assert main(["analyze", "resnet50", "--outputs", "layer9"]) == 1
    assert "layer9" in capsys.readouterr().err


def test_emitted_feature_extractor_equals_to_torch(tmp_path):
    import importlib.util
    from archspec_compiler.pysource import emit_python
    arch = archspec.load("resnet18", input_size=(64, 64))
    names = ["layer2", "layer3", "layer4"]
    path = tmp_path / "r18_feats.py"
    path.write_text(emit_python(arch, outputs=names))
    spec = importlib.util.spec_from_file_location("r18_feats", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    emitted = mod.build().eval()
    torch.manual_seed(0)
    ours = to_torch(arch, outputs=names).eval()
    emitted.load_state_dict(ours.state_dict())
    assert list(emitted.state_dict()) == list(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = emitted(x), ours(x)
    assert list(a) == names and all(torch.equal(a[k], b[k]) for k in names)
    # the classes a person would write: one per kind of block, chains as nn.Sequential
    text = path.read_text()
    assert text.count("class Basic") == 2 and "self.layer1 = nn.Sequential(" in text
    assert isinstance(emitted.layer2, nn.Sequential) and type(emitted.layer2[0]).__name__ == "Basic2"


def test_emitted_comments_are_sanitized(tmp_path):
    from archspec_compiler.pysource import emit_python
    evil = tmp_path / "we\nird\x1b.arch"
    evil.write_text("arch evil\ninput x: [3, 8, 8]\nblock b() { c: conv(4, 3, pad = 1); relu() }\n"
                    "network { stage: b(); gap(); flatten() }\n")
    text = emit_python(archspec.load(str(evil)))
    compile(text, "evil.py", "exec")  # still valid Python
    body = text.split('"""', 2)[2]  # past the header docstring (escaped by the header's own code)
    assert not any(line.startswith("ird") for line in body.splitlines()) and "\x1b" not in body
    assert "# stage: b (we\ufffdird\ufffd.arch:4)" in body  # archspec.errors.printable


# ---------------------------------------------------------------- scopes that cannot run as one call

def interleaved():
    """conv a.0 -> relu b -> conv a.1: scope `a` is left and re-entered, so it only holds its layers."""
    import tempfile
    path = Path(tempfile.mkdtemp()) / "inter.arch"
    path.write_text("arch inter\ninput x: [3, 8, 8]\n"
                    "network { conv(4, 3, pad = 1); relu(); conv(4, 3, pad = 1); gap(); flatten() }\n")
    arch = archspec.load(str(path))
    rename = dict(zip([n.name for n in arch.nodes], ["a.0", "b", "a.1", "pool", "flat"]))
    nodes = tuple(n.model_copy(update={"name": rename[n.name], "inputs": tuple(rename.get(i, i) for i in n.inputs)})
                  for n in arch.nodes)
    outputs = tuple(o.model_copy(update={"node": rename[o.node]}) for o in arch.outputs)
    return arch.model_copy(update={"nodes": nodes, "outputs": outputs})


def test_interleaved_scope_is_a_container_and_survives_copies(tmp_path):
    import copy
    import importlib.util
    from archspec_compiler.pysource import emit_python
    arch = interleaved()
    torch.manual_seed(0)
    m = to_torch(arch).eval()
    assert type(m.a).__name__ == "Container" and list(dict(m.a.named_children())) == ["0", "1"]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = m.flat(m.pool(getattr(m.a, "1")(m.b(getattr(m.a, "0")(x)))))
        assert torch.equal(m(x), want)
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert type(other.a).__name__ == "Container"
        assert list(other.state_dict()) == list(m.state_dict()) == ["a.0.weight", "a.0.bias", "a.1.weight", "a.1.bias"]
        with torch.no_grad():
            assert torch.equal(other(x), want)
    path = tmp_path / "inter.py"
    path.write_text(emit_python(arch))
    spec = importlib.util.spec_from_file_location("inter", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    emitted = mod.build().eval()
    emitted.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert torch.equal(emitted(x), want)


def test_feature_extractor_exports_with_a_dynamic_batch():
    arch = archspec.load("resnet18", input_size=(64, 64))
    m = to_torch(arch, outputs=["layer3", "layer4"]).eval()
    x = torch.randn(2, 3, 64, 64)
    ep = torch.export.export(m, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    with torch.no_grad():
        for batch in (x, x[:1]):
            got, want = ep.module()(batch), m(batch)
            assert set(got) == {"layer3", "layer4"}
            assert all(torch.allclose(got[k], want[k], atol=1e-5) for k in want)
    assert set(ep.state_dict) == set(m.state_dict())


def test_a_dead_end_still_runs_and_keeps_its_parameters(tmp_path):
    path = tmp_path / "dead.arch"
    path.write_text("arch dead\ninput x: [3, 8, 8]\nnetwork {\n    stem: { conv(4, 3, pad = 1); relu() }\n    save s\n"
                    "    side: { conv(2, 1) }\n    from s { gap(); flatten(); linear(5) }\n}\n")
    arch = archspec.load(str(path))
    m = to_torch(arch)
    assert sum(p.numel() for p in m.parameters()) == archspec.analyze(arch).params
    calls = []
    m.get_submodule("side.0").register_forward_hook(lambda *a: calls.append(1))
    assert m(torch.randn(1, 3, 8, 8)).shape == (1, 5) and calls == [1]
    # a feature extractor keeps only what its taps need
    assert not hasattr(to_torch(arch, outputs=["stem"]), "side")


def test_tensors_of_a_container_and_order_survive_copies():
    """Learnable tensors are parameters and rule-computed tensors buffers of the block that reads them (Swin's
    mask left out of the state_dict), children follow the `order` statement, and a deepcopy or a pickle (which
    re-traces the code: ops on buffers alone must stay in the graph) keeps all of it and the outputs."""
    import copy
    arch = archspec.load(Path(__file__).parent / "fixtures" / "window_ops.arch")
    torch.manual_seed(0)
    m = to_torch(arch).eval()
    attn = m.attn
    assert isinstance(attn.logit_scale, nn.Parameter) and list(attn._parameters) == ["logit_scale"]
    assert list(attn._buffers) == ["relative_coords_table", "relative_position_index", "attn_mask"]
    assert "attn.attn_mask" not in m.state_dict() and "attn.relative_position_index" in m.state_dict()
    labeled = [k for k in attn._modules if not k.isdigit()]
    assert labeled == ["qkv", "proj", "cpb_mlp"]  # `order qkv, proj, cpb_mlp`, not data flow
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        want = m(x)
        for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            assert list(other.state_dict()) == list(m.state_dict())
            assert list(dict(other.named_buffers())) == list(dict(m.named_buffers()))
            assert torch.equal(other(x), want)

"""Exactness of every zoo model that tests/reference/torchvision_modern.json describes (ViT, Swin, ConvNeXt,
MaxViT, ShuffleNetV2, RegNet, SqueezeNet, MNASNet, EfficientNetV2, Inception-v3): analyzer params and MACs,
state_dict keys/order/shapes/dtypes, every norm's eps and momentum, and the output fingerprint under the
reference's weight fill, in torch and in onnxruntime (float32; float16 within 1e-2).

Data-driven: a model is tested as soon as the zoo has a spec of that name."""
from __future__ import annotations

import pytest

import archspec
from refdata import check_fingerprint, fill_by_rule, fingerprint_input, modern

REF = modern()
COVERED = sorted(set(REF) & set(archspec.list_models()))
HEAVY_PARAMS = 100_000_000  # forward + export of larger models take tens of seconds: the slow group


def _param(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if REF[name]["params"] > HEAVY_PARAMS else name


MODELS = [_param(n) for n in COVERED]


@pytest.mark.parametrize("name", COVERED)
def test_params_and_macs(name):
    report = archspec.analyze(archspec.load(name))
    assert report.params == REF[name]["params"]
    assert report.macs == REF[name]["macs"]


@pytest.fixture(scope="module")
def filled():
    """name -> (arch, torch module filled by the reference's rule, eval mode); built once per model."""
    cache = {}

    def get(name):
        if name not in cache:
            import gc

            from archspec_compiler import to_torch

            cache.clear()  # one big model at a time (the largest take 2.6 GB each)
            gc.collect()
            arch = archspec.load(name)
            module = to_torch(arch).eval()
            fill_by_rule(module)
            cache[name] = arch, module
        return cache[name]
    return get


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_and_norms(name, filled):
    import torch

    _, module = filled(name)
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in module.state_dict().items()]
    assert got == REF[name]["state_dict"]
    modules = dict(module.named_modules())
    for path, norm in REF[name]["norms"].items():
        assert path in modules, f"no module at {path}"
        m = modules[path]
        assert m.eps == pytest.approx(norm["eps"], rel=1e-6), path
        if "momentum" in norm:
            assert isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum == norm["momentum"], path


@pytest.mark.parametrize("name", MODELS)
def test_fingerprint_torch_and_onnxruntime(name, filled):
    import numpy as np
    import torch

    from archspec_compiler import to_onnx
    from archspec_compiler.runtime import Session

    arch, module = filled(name)
    x = fingerprint_input(name)
    with torch.no_grad():
        out = module(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    check_fingerprint(out, name)
    session = Session(to_onnx(arch, module=module), providers="cpu")
    got = session.run(x.numpy())[0]
    del session  # its weights (a copy of the model's) before the float16 export's
    check_fingerprint(got, name)
    half = Session(to_onnx(arch, module=module, dtype="float16"), providers="cpu").run(x.numpy())[0]
    ref = out.numpy()
    assert np.abs(half.astype(np.float64) - ref).max() <= 1e-2 * np.abs(ref).max()

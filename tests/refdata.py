"""Reference facts about torchvision's models, for the tests, and the weight fill that reproduces their output
fingerprints.

The JSON files in tests/reference/ are byte-identical copies of the project's shared reference folder (its
README is copied beside them), so the tests run in any clone. Nothing in them comes from our own output.

    from refdata import layouts, modern, fill_by_rule, fingerprint_input, check_fingerprint
"""
from __future__ import annotations

import json
import math
import zlib
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "reference"

# Keys filled with 0.1 * randn whatever their rank (the rule's exceptions for tensors of 2+ dimensions).
_SMALL_KEYS = ("class_token", "pos_embedding", "layer_scale")


@lru_cache(maxsize=None)
def _load(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


def layouts() -> dict:
    """torchvision_layouts.json: params and ordered [key, shape] state_dict of the classic models."""
    return _load("torchvision_layouts.json")


def modern() -> dict:
    """torchvision_modern.json: params, state_dict [key, shape, dtype], norms, MACs and output fingerprint of the
    models beyond the classic lineage (the `_fill_rule` entry is the rule `fill_by_rule` implements)."""
    return {k: v for k, v in _load("torchvision_modern.json").items() if not k.startswith("_")}


def modules() -> dict:
    """torchvision_modules.json: torchvision's named_modules() as [path, type name, children], per model."""
    return _load("torchvision_modules.json")


def fill_value(key: str, shape: tuple[int, ...]):
    """The value the reference's weight fill gives one floating-point state_dict entry."""
    import torch

    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    r = torch.randn(shape, generator=g)
    if key.endswith("running_var"):
        return 1 + 0.1 * r.abs()
    if key.endswith("running_mean"):
        return 0.1 * r
    if len(shape) <= 1:
        return 1 + 0.1 * r if key.endswith("weight") and len(shape) == 1 else 0.1 * r
    if key.endswith("relative_position_bias_table") or any(s in key for s in _SMALL_KEYS):
        return 0.1 * r
    return r / math.sqrt(math.prod(shape[1:]))


def fill_by_rule(module) -> None:
    """Overwrite every floating-point entry of a torch module's state_dict by the reference's rule; integer
    entries (num_batches_tracked, index buffers) keep the module's own values."""
    import torch

    with torch.no_grad():
        for key, t in module.state_dict(keep_vars=True).items():
            if t.is_floating_point():
                t.copy_(fill_value(key, tuple(t.shape)))


def fingerprint_input(model: str):
    """The reference's input for a model: randn((2, C, H, W)) from a generator seeded 0."""
    import torch

    c, h, w = modern()[model]["input"]
    return torch.randn((2, c, h, w), generator=torch.Generator().manual_seed(0))


def fingerprint(output) -> dict:
    """row0_first8, sum and abs_sum of a model's first output (torch tensor or numpy array), as the reference."""
    import numpy as np

    out = np.asarray(output.detach().cpu() if hasattr(output, "detach") else output, dtype=np.float64)
    return {"row0_first8": out.reshape(out.shape[0], -1)[0, :8].tolist(), "sum": float(out.sum()),
            "abs_sum": float(np.abs(out).sum()), "output_shape": list(out.shape)}


def check_fingerprint(output, model: str, rtol: float = 1e-4) -> None:
    """Assert an output reproduces the model's reference fingerprint within rtol (relative to the output's scale:
    values are compared against abs_sum / numel so a value near zero does not demand impossible precision)."""
    ref, got = modern()[model]["fingerprint"], fingerprint(output)
    assert got["output_shape"] == ref["output_shape"], (got["output_shape"], ref["output_shape"])
    scale = ref["abs_sum"] / math.prod(ref["output_shape"])
    for g, r in zip(got["row0_first8"], ref["row0_first8"]):
        assert abs(g - r) <= rtol * max(abs(r), scale), (model, got["row0_first8"], ref["row0_first8"])
    assert abs(got["abs_sum"] - ref["abs_sum"]) <= rtol * ref["abs_sum"], (model, got["abs_sum"], ref["abs_sum"])
    assert abs(got["sum"] - ref["sum"]) <= rtol * ref["abs_sum"], (model, got["sum"], ref["sum"])

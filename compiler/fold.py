"""Batch-norm folding, shared by the ONNX backend (`--fold-bn`) and the torch inference build.

Only numpy: the folded weights, computed once in float64 from a {state_dict key: array} mapping, for
the pairs archspec.graph.foldable_bn chooses (re-exported here).
"""
from __future__ import annotations

import numpy as np

from archspec.graph import foldable_bn, graph
from archspec.ir import Architecture, Node

__all__ = ["bn_affine", "fold", "foldable_bn"]


def bn_affine(weights: dict, n: Node) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm at inference as y = x * scale + shift, computed in float64."""
    c = n.attrs["channels"]
    gamma = weights.get(f"{n.name}.weight", np.ones(c)) if n.attrs["affine"] else np.ones(c)
    beta = weights.get(f"{n.name}.bias", np.zeros(c)) if n.attrs["affine"] else np.zeros(c)
    mean = np.asarray(weights[f"{n.name}.running_mean"], np.float64)
    var = np.asarray(weights[f"{n.name}.running_var"], np.float64)
    scale = np.asarray(gamma, np.float64) / np.sqrt(var + n.attrs["eps"])
    return scale, np.asarray(beta, np.float64) - mean * scale


def fold(weights: dict[str, np.ndarray], arch: Architecture, pairs: dict[str, str]) -> dict[str, np.ndarray]:
    """Weights with each folded bn's scale and shift moved into its conv/linear (in float64)."""
    out = dict(weights)
    nodes = graph(arch).node
    for bn_name, layer in pairs.items():
        scale, shift = bn_affine(weights, nodes[bn_name])
        w = np.asarray(weights[f"{layer}.weight"], np.float64)
        b = np.asarray(weights.get(f"{layer}.bias", np.zeros(w.shape[0])), np.float64)
        out[f"{layer}.weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        out[f"{layer}.bias"] = b * scale + shift
    return out

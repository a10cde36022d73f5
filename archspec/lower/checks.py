"""Checks of the finished network: the names of `order` statements, and its size against the limits."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import ops as op_table
from ..errors import Diagnostic
from ..ir import Architecture
from ..limits import Limits

if TYPE_CHECKING:
    from .declarations import Lowerer


def check_orders(low: Lowerer, arch: Architecture) -> None:
    """Every name of an `order` statement is a child layer or scope of its scope."""
    children: dict[str, set[str]] = {}
    for name in [n.name for n in arch.nodes] + [s.name for s in arch.scopes]:
        parent, _, child = name.rpartition(".")
        children.setdefault(parent, set()).add(child)
    for scope, names in arch.orders.items():
        missing = [n for n in names if n not in children.get(scope, ())]
        if missing:
            pos = low.order_pos[scope]
            low.error(f"order names '{missing[0]}', which is no layer or scope of '{scope or 'the network'}'", pos,
                      "list the labels of this scope's layers, groups and block calls")


def check_limits(low: Lowerer, arch: Architecture) -> None:
    for message, hint in size_problems(arch, low.limits, hints=True):
        low.errors.append(Diagnostic(message, low.module.network_pos, hint))


def size_problems(arch: Architecture, limits: Limits, hints: bool = False) -> list:
    """The network's size against the limits, checked before any backend allocates: parameters, and the
    float32 activations of one sample, inputs included. Messages (or (message, hint) pairs)."""
    shapes = arch.shapes()
    params = 0
    act = sum(op_table.numel(i.shape) * 4 for i in arch.inputs)  # inputs are allocated too
    for n in arch.nodes:
        op = op_table.REGISTRY[n.op]
        params += op.params(n.attrs, [shapes[i] for i in n.inputs], n.shape)
        act += op_table.numel(n.shape) * 4
    out = []
    if params > limits.max_params:
        out.append((f"the network has {params:,} parameters, over the limit of {limits.max_params:,}",
                    "raise Limits.max_params if this is intended"))
    if act > limits.max_activation_bytes:
        out.append((f"the network needs {act:,} bytes of activations per sample, over the limit "
                    f"of {limits.max_activation_bytes:,}", "lower the resolution, or raise Limits.max_activation_bytes"))
    return out if hints else [m for m, _ in out]

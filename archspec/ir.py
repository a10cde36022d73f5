"""The IR: a flat, topologically ordered graph of fully evaluated nodes, each tied to its source.

Pydantic models, frozen, extra="forbid". `Architecture.model_json_schema()` is the published schema.
Shapes exclude the batch axis: [C, H, W] for images, [C, L] for sequences, [F] for vectors.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

AttrValue = Union[bool, int, float, str, list[int], None]
ParamValue = Union[bool, int, float, str, list, None]

INIT_SCHEMES = (
    "default",                 # PyTorch's own initialisation
    "kaiming_normal_fan_out",  # torchvision's convs: kaiming_normal_(mode="fan_out", nonlinearity="relu")
    "kaiming_normal_fan_in",
    "kaiming_uniform",
    "xavier_uniform",
    "normal_0.01",             # weight ~ N(0, 0.01), bias 0 (torchvision's linear layers)
    "uniform_fan_out",         # EfficientNet's / MobileNetV3's linear: U(-1/sqrt(out), 1/sqrt(out)), bias 0
    "ones_zeros",              # norms: weight 1, bias 0
    "trunc_normal_0.01",
    "default_zero_bias",       # PyTorch's weight, bias 0 (DenseNet's classifier)
)


class _Frozen(BaseModel):
    # defer_build: the validators are built on first validation (ir_from_json, tests), not at import;
    # the lowering constructs the IR from values it has already checked (see lower.py), so
    # `archspec check` does not pay ~50 ms to build schemas it never uses.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Span(_Frozen):
    """Where a node came from in the spec text (1-based)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Input(_Frozen):
    name: str
    shape: tuple[int, ...]
    span: Span


class Node(_Frozen):
    """One op applied to named inputs. `name` is the scope path (`layer3.2.conv1`), also the module path."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, AttrValue] = Field(default_factory=dict)
    shape: tuple[int, ...]
    span: Span


class Scope(_Frozen):
    """A named scope (label, block call, group, repeat); `block` names the block it instantiates, if any."""

    name: str
    block: str | None = None
    span: Span


class Output(_Frozen):
    name: str
    node: str


class Budget(_Frozen):
    """A declared limit, `budget params <= 26M`, on the whole network (scope "") or a scope."""

    metric: Literal["params", "macs", "flops", "memory", "buffers"]
    op: Literal["<=", "<", ">=", ">", "==", "!="]
    limit: float
    scope: str = ""
    span: Span


class Architecture(_Frozen):
    """A fully evaluated, validated network: what every pass and backend reads."""

    name: str
    variant: str | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict)
    inputs: tuple[Input, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Output, ...]
    scopes: tuple[Scope, ...] = ()
    budgets: tuple[Budget, ...] = ()
    init: dict[str, str] = Field(default_factory=dict)
    source: str = ""

    @property
    def title(self) -> str:
        return self.variant or self.name

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every value, inputs included, by name."""
        out = {i.name: i.shape for i in self.inputs}
        out.update((n.name, n.shape) for n in self.nodes)
        return out

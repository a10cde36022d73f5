"""The IR: a flat, topologically ordered graph of fully evaluated nodes, each tied to its source.

Frozen standard dataclasses whose validation and JSON Schema come from pydantic (a `TypeAdapter`, with
extra="forbid"): `Architecture.model_json_schema()` is the published schema and `model_validate_json` the
checked way in. Pydantic is imported only when one of those is called: the lowering builds the IR from
values it has already checked, and importing pydantic would take most of the time of an `archspec analyze`.
Shapes exclude the batch axis: [C, H, W] for images, [C, L] for sequences, [F] for vectors.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Union

from .errors import Pos

AttrValue = Union[bool, int, float, str, list[int], list[float], None]
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
    "trunc_normal_0.02",       # ConvNeXt's convs and linears
    "default_zero_bias",       # PyTorch's weight, bias 0 (DenseNet's classifier)
)
# Schemes computed from a weight's fan-in and fan-out: they need a weight of two or more axes, so they
# cannot initialise the ops whose weight is one value per channel (a new norm op belongs here too).
FAN_SCHEMES = ("kaiming_normal_fan_out", "kaiming_normal_fan_in", "kaiming_uniform", "xavier_uniform")
VECTOR_WEIGHT_OPS = ("bn", "layernorm", "groupnorm")


def init_problem(op: str, scheme: str) -> str | None:
    """Why `init OP = "scheme"` cannot be applied (None when it can)."""
    if scheme not in INIT_SCHEMES:
        return f"unknown init scheme {scheme!r}"
    if scheme in FAN_SCHEMES and op in VECTOR_WEIGHT_OPS:
        return f"init scheme {scheme!r} needs a weight matrix, and {op}'s weight is one value per channel"
    return None


@lru_cache(maxsize=None)
def _adapter(cls):
    from pydantic import TypeAdapter
    return TypeAdapter(cls)


class _Model:
    """Pydantic's model methods, for the IR's dataclasses (what `archspec analyze --format ir` and tools use)."""

    __slots__ = ()
    __pydantic_config__ = {"extra": "forbid"}  # read by pydantic when it validates these dataclasses

    def model_dump(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_dump_json(self, indent: int | None = None) -> str:
        return json.dumps(dataclasses.asdict(self), indent=indent, ensure_ascii=False,
                          separators=None if indent else (",", ":"))

    def model_copy(self, update: dict[str, Any] | None = None):
        return dataclasses.replace(self, **(update or {}))

    @classmethod
    def model_validate(cls, data: Any):
        """Check plain data (a dict from `model_dump` or JSON) against the IR's types; pydantic ValidationError."""
        return _adapter(cls).validate_python(data)

    @classmethod
    def model_validate_json(cls, text: str | bytes):
        return _adapter(cls).validate_json(text)

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return _adapter(cls).json_schema()


# kw_only: fields keep a reading order (name first) whatever their defaults.
_frozen = dataclass(frozen=True, slots=True, kw_only=True)


@_frozen
class Span(_Model):
    """Where a node came from in the spec text (1-based)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def pos(self, width: int = 0) -> Pos:
        """The error position of this span (every backend's diagnostics); `width` columns underlined."""
        return Pos(self.file, self.line, self.col, self.line if width else 0, self.col + width if width else 0)


@_frozen
class Input(_Model):
    """A network input: its name and shape without the batch axis."""

    name: str
    shape: tuple[int, ...]
    span: Span


class Attrs(dict):
    """A node's attributes, read-only so that a Node can be hashed; a dict to everything that reads it
    (JSON writes it as one, byte for byte). A changed node is a new Node (dataclasses.replace)."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("a node's attributes are read-only: make a new Node with dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only

    def __hash__(self) -> int:  # list values (kernel sizes) hash as tuples
        return hash(tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in self.items()))

    def __reduce__(self):  # pickle and copy rebuild it whole (item by item would write into it)
        return (Attrs, (dict(self),))


@_frozen
class Node(_Model):
    """One op applied to named inputs. `name` is the scope path (`layer3.2.conv1`), also the module path."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, AttrValue] = field(default_factory=Attrs)
    shape: tuple[int, ...]
    span: Span

    def __post_init__(self) -> None:
        if type(self.attrs) is not Attrs:
            object.__setattr__(self, "attrs", Attrs(self.attrs))


@_frozen
class Scope(_Model):
    """A named scope (label, block call, group, repeat); `block` names the block it instantiates, if any."""

    name: str
    block: str | None = None
    span: Span


@_frozen
class Output(_Model):
    """A network output: its name and the node that computes it. A `training` output (Inception's aux
    heads) is computed and returned only in training mode, after the others; inference never runs the
    nodes only it needs."""

    name: str
    node: str
    training: bool = False


@_frozen
class Budget(_Model):
    """A declared limit, `budget params <= 26M`, on the whole network (scope "") or a scope."""

    metric: Literal["params", "macs", "flops", "memory", "buffers"]
    op: Literal["<=", "<", ">=", ">", "==", "!="]
    limit: float
    scope: str = ""
    span: Span


class _Indexed(_Model):
    """A slot beside the fields for the graph facts (archspec.graph), computed once: not a field, so
    neither JSON, equality, copies nor pickles see it."""

    __slots__ = ("_graph",)


@_frozen
class Architecture(_Indexed):
    """A fully evaluated, validated network: what every pass and backend reads."""

    name: str
    variant: str | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    inputs: tuple[Input, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Output, ...]
    scopes: tuple[Scope, ...] = ()
    budgets: tuple[Budget, ...] = ()
    init: dict[str, str] = field(default_factory=dict)
    source: str = ""
    # scope -> the labels of its children in the order PyTorch registers them (`order` statements), where
    # that differs from the order data flows through them
    orders: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.variant or self.name

    def node(self, name: str) -> Node:
        """The node named `name` (KeyError otherwise), through the graph's index."""
        from .graph import graph
        return graph(self).node[name]

    def training_only(self) -> set[str]:
        """Nodes that only training outputs need: inference (eval mode, ONNX, the analyzer's MACs) skips them."""
        training = [o.node for o in self.outputs if o.training]
        if not training:
            return set()
        from .graph import graph
        g = graph(self)
        return (g.ancestors(training) - g.ancestors([o.node for o in self.outputs if not o.training])) & g.node.keys()

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every value, inputs included, by name."""
        out = {i.name: i.shape for i in self.inputs}
        out.update((n.name, n.shape) for n in self.nodes)
        return out

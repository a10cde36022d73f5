"""The op table's machinery: an op is one class, registered by a decorator, holding everything
about it that does not need torch: its arguments, shape rule, parameter/buffer counts, MACs and
receptive-field contribution. Backends look ops up here by name."""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Shape = tuple[int, ...]

REGISTRY: dict[str, type["Op"]] = {}

# Inputs of each rank for Op.example_cases: [F], [C, L], [C, H, W].
EXAMPLE_SHAPES: dict[int, Shape] = {1: (12,), 2: (8, 10), 3: (8, 10, 10)}


class ShapeError(Exception):
    """A shape rule refused its inputs; the front end adds the spec position."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _show(v: Any) -> str:
    """A value as a spec writes it (true, "text"), for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"' if isinstance(v, str) else repr(v)


def _int_only(v: Any) -> Any:
    # Lax pydantic would turn True into 1 and "64" into 64; a spec must say what it means.
    if isinstance(v, bool) or isinstance(v, str):
        raise ValueError(f"expects an integer, got {_show(v)}")
    if isinstance(v, float):
        if v != v or v in (math.inf, -math.inf) or not v.is_integer():
            raise ValueError(f"expects an integer, got {_show(v)}; wrap it in int(), round() or make_divisible()")
        if abs(v) > 2 ** 53:  # past 2**53 a float is no exact integer (1e308 would be a 1024-bit one)
            raise ValueError(f"expects an integer, got {_show(v)}, a float too large to be exact")
        return int(v)
    return v


def _num_only(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, str):
        raise ValueError(f"expects a number, got {_show(v)}")
    return v


def _bool_only(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError(f"expects true or false, got {_show(v)}")
    return v


Int = Annotated[int, BeforeValidator(_int_only)]
PosInt = Annotated[int, BeforeValidator(_int_only), Field(gt=0)]
NonNegInt = Annotated[int, BeforeValidator(_int_only), Field(ge=0)]
Float = Annotated[float, BeforeValidator(_num_only)]
Prob = Annotated[float, BeforeValidator(_num_only), Field(ge=0.0, le=1.0)]
Bool = Annotated[bool, BeforeValidator(_bool_only)]
# An int for every spatial axis, or one list of them.
PosInts = PosInt | list[PosInt]
NonNegInts = NonNegInt | list[NonNegInt]


class Attrs(BaseModel):
    """Base of every op's argument model."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on an op's first use


class NoAttrs(Attrs):
    pass


class RF:
    """Receptive-field contribution of an op on one spatial axis (kernel already dilated)."""

    __slots__ = ("kernel", "stride", "pad")

    def __init__(self, kernel: int = 1, stride: int = 1, pad: int = 0):
        self.kernel, self.stride, self.pad = kernel, stride, pad

    def __repr__(self) -> str:
        return f"RF(k={self.kernel}, s={self.stride}, p={self.pad})"


GLOBAL = "global"  # an op that mixes the whole spatial extent (global pooling, flatten, linear)


class Op:
    """One layer type. Subclasses set the class attributes and override the rules that apply."""

    name: ClassVar[str]
    Args: ClassVar[type[Attrs]] = NoAttrs
    positional: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""
    # Number of tensor inputs; None for merges, which take two or more named tensors.
    arity: ClassVar[int | None] = 1
    # Input ranks accepted (without batch): 1 = [F], 2 = [C, L], 3 = [C, H, W].
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)
    # Valid example for the op table's completeness tests: (args, kwargs, input shapes).
    example: ClassVar[tuple[tuple, dict, list[Shape]]] = ((), {}, [(8, 10, 10)])

    @classmethod
    def example_cases(cls) -> list[tuple[dict, list[Shape], Shape]]:
        """(attrs, input shapes, output shape) of the op's example on every rank it accepts: what the
        completeness tests of the analyzer and the backends run for each op."""
        args, kwargs, example_ins = cls.example
        shapes = [[tuple(s) for s in example_ins]]
        shapes += [[EXAMPLE_SHAPES[r]] * len(example_ins) for r in cls.ranks if r != len(example_ins[0])]
        cases = []
        for ins in shapes:
            try:
                a = cls.normalize(cls.Args(**dict(zip(cls.positional, args)), **kwargs), ins)
                cases.append((a, ins, tuple(cls.shape(a, ins))))
            except ShapeError:  # the example's arguments do not fit this rank (a 2-d kernel on [C, L])
                continue
        return cases

    @classmethod
    def normalize(cls, args: Attrs, ins: list[Shape]) -> dict:
        """Final IR attributes: every value explicit, one entry per spatial axis where it applies."""
        return args.model_dump()

    @classmethod
    def shape(cls, a: dict, ins: list[Shape]) -> Shape:
        return ins[0]

    @classmethod
    def params(cls, a: dict, ins: list[Shape], out: Shape) -> int:
        return 0

    @classmethod
    def buffers(cls, a: dict, ins: list[Shape], out: Shape) -> int:
        return 0

    @classmethod
    def macs(cls, a: dict, ins: list[Shape], out: Shape) -> int:
        return 0

    @classmethod
    def receptive(cls, a: dict, ins: list[Shape]) -> list[RF] | str | None:
        """Per spatial axis RF(kernel, stride, pad); None for pointwise ops; GLOBAL for ops that mix everything."""
        return None


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: add an op to the table under `cls.name`."""
    if cls.name in REGISTRY:
        raise ValueError(f"op '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


def per_axis(value, n: int, what: str) -> list[int]:
    """Expand an int to one per spatial axis, or check a list has one per axis."""
    if isinstance(value, list):
        if len(value) != n:
            raise ShapeError(f"{what} has {len(value)} values for {n} spatial axes")
        return list(value)
    return [value] * n


def numel(shape: Shape) -> int:
    return math.prod(shape)

"""The op table's machinery: an op is one class, registered by a decorator, holding everything
about it that does not need torch: its arguments, shape rule, parameter/buffer counts, MACs and
receptive-field contribution. Backends look ops up here by name."""
from __future__ import annotations

import math
from typing import Any, ClassVar

Shape = tuple[int, ...]

REGISTRY: dict[str, type["Op"]] = {}

# Inputs of each rank for Op.example_cases: [F], [C, L], [C, H, W], [C, D, H, W].
EXAMPLE_SHAPES: dict[int, Shape] = {1: (12,), 2: (8, 10), 3: (8, 10, 10), 4: (4, 6, 6, 6)}
# Ranks a tensor op accepts (without batch): tokens [L, D], maps [C, H, W] or [H, W, C], windows [n, h, w, C]...
MAX_RANK = 8
ANY_RANK: tuple[int, ...] = tuple(range(1, MAX_RANK + 1))


class ShapeError(Exception):
    """A shape rule refused its inputs; the front end adds the spec position."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def spec_repr(v: Any) -> str:
    """A value as a spec writes it (true, "text", [1, 2]), for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(spec_repr(x) for x in v) + "]"
    return f'"{v}"' if isinstance(v, str) else repr(v)


class ArgError(Exception):
    """An op argument refused: `problem` is "unknown", "missing" or "invalid"; `text` says why in spec terms
    (the front end adds the op's name and the argument's position)."""

    def __init__(self, arg: str, problem: str, text: str = ""):
        super().__init__(f"{arg}: {problem} {text}")
        self.arg, self.problem, self.text = arg, problem, text


# ---- argument kinds: each converts a spec value or raises ValueError with the reason.
# A spec must say what it means: true is no 1 and "64" is no 64, so nothing is coerced but int -> float
# and an integral float -> int (make_divisible and width multipliers produce floats).

def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expects an integer, got {spec_repr(v)}")
    if isinstance(v, float):
        if v != v or v in (math.inf, -math.inf) or not v.is_integer():
            raise ValueError(f"expects an integer, got {spec_repr(v)}; wrap it in int(), round() or make_divisible()")
        if abs(v) > 2 ** 53:  # past 2**53 a float is no exact integer (1e308 would be a 1024-bit one)
            raise ValueError(f"expects an integer, got {spec_repr(v)}, a float too large to be exact")
        return int(v)
    return v


def _pos_int(v: Any) -> int:
    n = _int(v)
    if n <= 0:
        raise ValueError(f"must be positive, got {spec_repr(v)}")
    return n


def _non_neg_int(v: Any) -> int:
    n = _int(v)
    if n < 0:
        raise ValueError(f"must be zero or more, got {spec_repr(v)}")
    return n


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expects a number, got {spec_repr(v)}")
    if not math.isfinite(v):
        raise ValueError(f"expects a finite number, got {spec_repr(v)}")
    return float(v)


def _prob(v: Any) -> float:
    p = _float(v)
    if p < 0:
        raise ValueError(f"must be greater than or equal to 0, got {spec_repr(v)}")
    if p > 1:
        raise ValueError(f"must be less than or equal to 1, got {spec_repr(v)}")
    return p


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expects true or false, got {spec_repr(v)}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expects a string, got {spec_repr(v)}")
    return v


def _per_axis(item):
    """An int for every spatial axis, or one list of them (checked item by item)."""
    def convert(v: Any):
        if not isinstance(v, (list, tuple)):
            return item(v)
        try:
            return [item(x) for x in v]
        except ValueError as exc:
            raise ValueError(f"{exc} in {spec_repr(v)}") from None
    return convert


def _list_of(item):
    """A list of values (one int is a list of one), at most MAX_RANK long: axes, sizes, shifts."""
    def convert(v: Any):
        items = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(items) > MAX_RANK * 2:
            raise ValueError(f"expects at most {MAX_RANK * 2} values, got {len(items)}")
        try:
            return [item(x) for x in items]
        except ValueError as exc:
            raise ValueError(f"{exc} in {spec_repr(v)}") from None
    return convert


# The kinds an op argument's annotation may name (`out: PosInt`, `stride: PosInts | None = None`).
KINDS = {"Int": _int, "PosInt": _pos_int, "NonNegInt": _non_neg_int, "Float": _float, "Prob": _prob,
         "Bool": _bool, "PosInts": _per_axis(_pos_int), "NonNegInts": _per_axis(_non_neg_int),
         "Floats": _per_axis(_float), "Str": _str, "IntList": _list_of(_int), "PosIntList": _list_of(_pos_int)}
Int, PosInt, NonNegInt, Float, Prob, Bool, PosInts, NonNegInts, Floats, Str, IntList, PosIntList = KINDS.values()
_REQUIRED = object()


class Attrs:
    """Base of every op's arguments: annotated class attributes, as in a dataclass.

        class ConvArgs(Attrs):
            out: PosInt
            stride: PosInts = 1

    Each annotation names a kind of KINDS, optionally `| None`; the class value is the default. Constructing
    one checks and converts every value, or raises ArgError (a pure-Python check: importing a validation
    library would cost more than loading a whole spec)."""

    fields: ClassVar[dict[str, tuple[Any, Any, bool]]] = {}  # name -> (convert, default, None allowed)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fields = dict(cls.fields)
        for name, note in cls.__dict__.get("__annotations__", {}).items():
            note = note if isinstance(note, str) else getattr(note, "__name__", repr(note))
            kind, optional = note.removesuffix(" | None"), note.endswith(" | None")
            if kind not in KINDS:
                raise TypeError(f"{cls.__name__}.{name}: the kind '{note}' is not one of {', '.join(KINDS)}")
            fields[name] = (KINDS[kind], cls.__dict__.get(name, _REQUIRED), optional)
        cls.fields = fields

    def __init__(self, **values: Any):
        for name, (convert, default, optional) in self.fields.items():
            if name not in values:
                if default is _REQUIRED:
                    raise ArgError(name, "missing")
                value = default
            else:
                value = values[name]
                if not (value is None and optional):
                    try:
                        value = convert(value)
                    except ValueError as exc:
                        raise ArgError(name, "invalid", str(exc)) from None
            object.__setattr__(self, name, value)
        for name in values:
            if name not in self.fields:
                raise ArgError(name, "unknown")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def as_dict(self) -> dict[str, Any]:
        """The values, in declaration order."""
        return {name: getattr(self, name) for name in self.fields}


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


class Layout:
    """Receptive rule of a layout op: it mixes no values, but moves axes. `dims` is the permutation
    (output axis i holds input axis dims[i]); VIEW for a row-major view (reshape, flatten, unflatten, select),
    which the analyzer follows where it only adds or drops axes of size 1; None when values move (roll,
    pad, slice): the analyzer no longer knows which axis holds which input axis."""

    __slots__ = ("dims",)

    def __init__(self, dims: tuple[int, ...] | None):
        self.dims = dims


VIEW = "view"


class Mixes:
    """Receptive rule of an op that mixes values along some axes of the sample (layer norm, softmax,
    linear on the last axis): global when one of them holds a spatial axis of the input, else pointwise."""

    __slots__ = ("axes",)

    def __init__(self, *axes: int):
        self.axes = axes


class Op:
    """One layer type. Subclasses set the class attributes and override the rules that apply."""

    name: ClassVar[str]
    Args: ClassVar[type[Attrs]] = NoAttrs
    positional: ClassVar[tuple[str, ...]] = ()
    doc: ClassVar[str] = ""
    # Number of tensor inputs; None for merges, which take two or more named tensors.
    arity: ClassVar[int | None] = 1
    # Input ranks accepted (without batch): 1 = [F], 2 = [C, L], 3 = [C, H, W], 4 = [C, D, H, W].
    ranks: ClassVar[tuple[int, ...]] = (1, 2, 3, 4)
    # Valid example for the op table's completeness tests: (args, kwargs, input shapes).
    example: ClassVar[tuple[tuple, dict, list[Shape]]] = ((), {}, [(8, 10, 10)])

    @classmethod
    def example_cases(cls) -> list[tuple[dict, list[Shape], Shape]]:
        """(attrs, input shapes, output shape) of the op's example on every rank it accepts: what the
        completeness tests of the analyzer and the backends run for each op."""
        args, kwargs, example_ins = cls.example
        shapes = [[tuple(s) for s in example_ins]]
        shapes += [[EXAMPLE_SHAPES[r]] * len(example_ins) for r in cls.ranks
                   if example_ins and r != len(example_ins[0]) and r in EXAMPLE_SHAPES]
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
        return args.as_dict()

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


def per_axis_args(args: Attrs, n: int, *keys: str) -> dict[str, list[int]]:
    """The arguments `keys` of args, each expanded to one value per spatial axis (named by its key in errors)."""
    return {key: per_axis(getattr(args, key), n, key) for key in keys}


def check_groups(groups: int, cin: int, out: int, hint: str | None = None) -> None:
    """Grouped convolutions: the groups must divide the input and the output channels."""
    if cin % groups or out % groups:
        raise ShapeError(f"groups={groups} must divide both the input channels ({cin}) and the output channels "
                         f"({out})", hint)


def axis(dim: int, rank: int, what: str = "dim") -> int:
    """A sample axis (negative counts from the end) checked against the rank: ShapeError otherwise."""
    if not -rank <= dim < rank:
        raise ShapeError(f"{what} {dim} is out of range for a sample of rank {rank} (axes 0..{rank - 1}, or "
                         f"-{rank}..-1 from the end; the batch axis is not counted)")
    return dim % rank


def describe(shapes) -> str:
    """Shapes as a message names them: "[8, 10] and [8, 1]"."""
    return " and ".join(str(list(s)) for s in shapes)


def numel(shape: Shape) -> int:
    return math.prod(shape)

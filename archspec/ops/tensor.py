"""Layout and token ops on tensors of any rank: reshape, permute, transpose, unflatten, select, slice,
roll, pad, and learnable tensors. Axes are axes of the sample (the batch axis is not counted; -1 is the
last). None of them has parameters but `learnable`; none mixes values, so their receptive rule is a
Layout (the analyzer follows which axis went where)."""
from __future__ import annotations

import math

from .base import (ANY_RANK, MAX_RANK, VIEW, Attrs, Bool, Float, Int, IntList, Layout, Op, PosIntList, ShapeError, Str,
                   axis, numel, register)


def _sizes(sizes: list[int], total: int, what: str) -> list[int]:
    """Sizes with at most one -1, inferred so that their product is `total`."""
    if len(sizes) > MAX_RANK:
        raise ShapeError(f"{what} gives {len(sizes)} axes; a sample has at most {MAX_RANK}")
    if sizes.count(-1) > 1:
        raise ShapeError(f"{what} {sizes} infers more than one size (-1)", "give every size but one")
    if any(s == 0 or s < -1 for s in sizes):
        raise ShapeError(f"{what} {sizes} has a size that is not positive", "sizes are positive; -1 infers one")
    known = numel([s for s in sizes if s != -1])
    if -1 in sizes:
        if total % known:
            raise ShapeError(f"{what} {sizes} cannot hold {total} elements: {total} is not a multiple of {known}")
        sizes = [total // known if s == -1 else s for s in sizes]
    elif known != total:
        raise ShapeError(f"{what} {sizes} holds {known:,} elements, the input {total:,}",
                         "the sizes must multiply to the input's element count (the batch axis is kept)")
    return sizes


class ReshapeArgs(Attrs):
    shape: IntList


@register
class Reshape(Op):
    name = "reshape"
    doc = "View the sample with another shape, one size may be -1 (inferred): reshape([-1, 768])."
    Args = ReshapeArgs
    positional = ("shape",)
    ranks = ANY_RANK
    example = (([5, -1],), {}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        return {"shape": _sizes(args.shape, numel(ins[0]), "reshape to")}

    @classmethod
    def shape(cls, a, ins):
        return tuple(a["shape"])

    @classmethod
    def receptive(cls, a, ins):
        return None if tuple(a["shape"]) == tuple(ins[0]) else Layout(VIEW)


class UnflattenArgs(Attrs):
    dim: Int
    sizes: IntList


@register
class Unflatten(Op):
    name = "unflatten"
    doc = "Split one axis into several, one size may be -1: unflatten(0, [14, 14]) turns [196, D] into [14, 14, D]."
    Args = UnflattenArgs
    positional = ("dim", "sizes")
    ranks = ANY_RANK
    example = ((1, [5, -1]), {}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        d = axis(args.dim, len(ins[0]))
        sizes = _sizes(args.sizes, ins[0][d], f"unflatten axis {d} into")
        if len(ins[0]) - 1 + len(sizes) > MAX_RANK:
            raise ShapeError(f"unflatten makes a sample of more than {MAX_RANK} axes")
        return {"dim": d, "sizes": sizes}

    @classmethod
    def shape(cls, a, ins):
        d = a["dim"]
        return (*ins[0][:d], *a["sizes"], *ins[0][d + 1:])

    @classmethod
    def receptive(cls, a, ins):
        return Layout(VIEW)


class PermuteArgs(Attrs):
    dims: IntList


def _permutation(dims: list[int], rank: int) -> list[int]:
    if len(dims) != rank:
        raise ShapeError(f"permute takes one axis per axis of the sample ({rank}), got {len(dims)}: {dims}")
    out = [axis(d, rank, "permute axis") for d in dims]
    if len(set(out)) != rank:
        repeated = sorted({d for d in out if out.count(d) > 1})
        raise ShapeError(f"permute {dims} names axis {repeated[0]} twice", "name every axis of the sample once")
    return out


@register
class Permute(Op):
    name = "permute"
    doc = "Reorder the axes of the sample: permute([1, 2, 0]) turns [C, H, W] into [H, W, C] (channels last)."
    Args = PermuteArgs
    positional = ("dims",)
    ranks = ANY_RANK
    example = (([1, 2, 0],), {}, [(8, 10, 6)])

    @classmethod
    def normalize(cls, args, ins):
        return {"dims": _permutation(args.dims, len(ins[0]))}

    @classmethod
    def shape(cls, a, ins):
        return tuple(ins[0][d] for d in a["dims"])

    @classmethod
    def receptive(cls, a, ins):
        return Layout(tuple(a["dims"]))


class TransposeArgs(Attrs):
    dim0: Int
    dim1: Int


@register
class Transpose(Permute):
    name = "transpose"
    doc = "Swap two axes of the sample: transpose(0, 1) turns [D, L] into [L, D]."
    Args = TransposeArgs
    positional = ("dim0", "dim1")
    example = ((0, 1), {}, [(8, 10)])

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        a, b = axis(args.dim0, rank), axis(args.dim1, rank)
        dims = list(range(rank))
        dims[a], dims[b] = b, a
        return {"dims": dims}


class SelectArgs(Attrs):
    index: Int
    dim: Int = 0


@register
class Select(Op):
    name = "select"
    doc = "Take one position of an axis, dropping the axis: select(0) is the class token x[:, 0] of [L, D]."
    Args = SelectArgs
    positional = ("index", "dim")
    ranks = ANY_RANK
    example = ((0,), {"dim": 1}, [(8, 10, 6)])

    @classmethod
    def normalize(cls, args, ins):
        d = axis(args.dim, len(ins[0]))
        if len(ins[0]) == 1:
            raise ShapeError("select would leave a sample without axes", "use slice() to keep the axis")
        size = ins[0][d]
        if not -size <= args.index < size:
            raise ShapeError(f"index {args.index} is out of range for axis {d} of size {size}")
        return {"index": args.index % size, "dim": d}

    @classmethod
    def shape(cls, a, ins):
        return ins[0][:a["dim"]] + ins[0][a["dim"] + 1:]

    @classmethod
    def receptive(cls, a, ins):
        return Layout(VIEW)


class SliceArgs(Attrs):
    start: Int = 0
    end: Int | None = None
    dim: Int = 0
    step: Int = 1


@register
class Slice(Op):
    name = "slice"
    doc = "Keep positions start..end-1 (every step-th) of an axis, as x[:, start:end:step]: slice(0, 7, dim = 1)."
    Args = SliceArgs
    positional = ("start", "end", "dim")
    ranks = ANY_RANK
    example = ((1, 7), {"dim": 1, "step": 2}, [(8, 10, 6)])

    @classmethod
    def normalize(cls, args, ins):
        d = axis(args.dim, len(ins[0]))
        size = ins[0][d]
        if args.step < 1:
            raise ShapeError(f"slice step must be positive, got {args.step}")
        start, end, _ = slice(args.start, args.end).indices(size)  # Python's clipping of bounds
        n = len(range(start, end, args.step))
        if n < 1:
            raise ShapeError(f"slice {args.start}:{args.end} of axis {d} (size {size}) is empty")
        return {"start": start, "end": start + (n - 1) * args.step + 1, "dim": d, "step": args.step}

    @classmethod
    def shape(cls, a, ins):
        d = a["dim"]
        n = len(range(a["start"], a["end"], a["step"]))
        return (*ins[0][:d], n, *ins[0][d + 1:])

    @classmethod
    def receptive(cls, a, ins):
        return Layout(None)


class RollArgs(Attrs):
    shifts: IntList
    dims: IntList


@register
class Roll(Op):
    name = "roll"
    doc = "Cyclic shift along axes (Swin's shifted windows): roll([-3, -3], dims = [0, 1]) on [H, W, C]."
    Args = RollArgs
    positional = ("shifts", "dims")
    ranks = ANY_RANK
    example = (([-3, 2], [1, 2]), {}, [(8, 10, 6)])

    @classmethod
    def normalize(cls, args, ins):
        if len(args.shifts) != len(args.dims):
            raise ShapeError(f"roll takes one shift per axis, got {len(args.shifts)} shifts for {len(args.dims)} axes")
        dims = [axis(d, len(ins[0]), "roll axis") for d in args.dims]
        if len(set(dims)) != len(dims):
            raise ShapeError(f"roll names an axis twice: {args.dims}")
        return {"shifts": [s % ins[0][d] for s, d in zip(args.shifts, dims)], "dims": dims}

    @classmethod
    def receptive(cls, a, ins):
        return Layout(None)  # positions wrap around: no local field survives


class PadArgs(Attrs):
    pads: IntList
    value: Float = 0.0


@register
class Pad(Op):
    name = "pad"
    doc = ("Constant padding, PyTorch's order (last axis first, before and after): pad([0, 0, 0, 1, 0, 1]) pads "
           "H and W of [H, W, C] at the end.")
    Args = PadArgs
    positional = ("pads",)
    ranks = ANY_RANK
    example = (([1, 2, 0, 1],), {"value": 0.5}, [(8, 10, 6)])

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        if len(args.pads) % 2 or len(args.pads) > 2 * rank:
            raise ShapeError(f"pad takes two sizes (before, after) per axis from the last, at most {2 * rank} "
                             f"for this sample, got {len(args.pads)}")
        if any(p < 0 for p in args.pads):
            raise ShapeError(f"pad sizes must be zero or more, got {args.pads}", "use slice() to crop")
        before, after = [0] * rank, [0] * rank
        for i in range(len(args.pads) // 2):
            before[rank - 1 - i], after[rank - 1 - i] = args.pads[2 * i], args.pads[2 * i + 1]
        if numel([s + b + e for s, b, e in zip(ins[0], before, after)]) > 2 ** 40:
            raise ShapeError("pad would make a sample of more than 2**40 elements")
        return {"before": before, "after": after, "value": args.value}

    @classmethod
    def shape(cls, a, ins):
        return tuple(s + b + e for s, b, e in zip(ins[0], a["before"], a["after"]))

    @classmethod
    def receptive(cls, a, ins):
        return Layout(None) if any(a["before"]) or any(a["after"]) else None


# ---- learnable tensors

INITS = ("zeros", "constant", "normal", "trunc_normal")


class LearnableArgs(Attrs):
    shape: PosIntList
    init: Str = "zeros"
    value: Float = 0.0
    std: Float = 0.02
    batch: Bool = False


@register
class Learnable(Op):
    name = "learnable"
    doc = ("A learned tensor, named by its label (its state_dict key): class_token: learnable([1, 768], batch = "
           "true). init = \"zeros\", \"constant\" (value), \"normal\" or \"trunc_normal\" (std); batch = true "
           "stores a leading axis of 1 for the batch, as torchvision's [1, 1, 768] class token.")
    Args = LearnableArgs
    positional = ("shape",)
    arity = 0
    ranks = ANY_RANK
    example = (([4, 1, 1],), {"init": "constant", "value": 1e-6}, [])

    @classmethod
    def normalize(cls, args, ins):
        if args.init not in INITS:
            raise ShapeError(f"unknown init {args.init!r}", "one of: " + ", ".join(INITS))
        if len(args.shape) > MAX_RANK:
            raise ShapeError(f"a learnable tensor has at most {MAX_RANK} axes")
        return {"shape": list(args.shape), "init": args.init, "value": args.value, "std": args.std,
                "batch": args.batch}

    @classmethod
    def stored(cls, a) -> list[int]:
        """The shape of the parameter (the IR's shape with the batch axis it stores, if any)."""
        return [1, *a["shape"]] if a["batch"] else list(a["shape"])

    @classmethod
    def shape(cls, a, ins):
        if numel(a["shape"]) > 2 ** 34:
            raise ShapeError(f"a learnable tensor of {numel(a['shape']):,} elements is over the limit of 2**34")
        return tuple(a["shape"])

    @classmethod
    def params(cls, a, ins, out):
        return numel(a["shape"])


# ---- persistent buffers computed by a rule (the reference stores them in its state_dict)

def relative_position_index(h: int, w: int) -> tuple[list, str]:
    """Swin's and MaxViT's index into a [(2h-1)(2w-1), heads] bias table, for every pair of the h*w positions
    of a window: [h*w * h*w] int64, row-major over (query, key)."""
    coords = [(i, j) for i in range(h) for j in range(w)]
    return [(qi - ki + h - 1) * (2 * w - 1) + (qj - kj + w - 1) for qi, qj in coords for ki, kj in coords], "int64"


def relative_coords_table(h: int, w: int) -> tuple[list, str]:
    """Swin V2's log-spaced relative coordinates [1, 2h-1, 2w-1, 2] (float32): sign(x) log2(|8x| + 1) / 3 of
    the offsets normalized to [-1, 1]."""
    def f(d: int, n: int) -> float:
        x = 8.0 * d / (n - 1) if n > 1 else 0.0
        return math.copysign(math.log2(abs(x) + 1.0) / 3.0, x) if x else 0.0
    return [v for i in range(-(h - 1), h) for j in range(-(w - 1), w) for v in (f(i, h), f(j, w))], "float32"


# rule -> (function of the window (h, w) returning flat values and a dtype, the natural shape)
RULES = {"relative_position_index": (relative_position_index, lambda h, w: [h * w * h * w]),
         "relative_coords_table": (relative_coords_table, lambda h, w: [1, 2 * h - 1, 2 * w - 1, 2])}


class BufferArgs(Attrs):
    rule: Str
    window: PosIntList
    shape: IntList | None = None
    persistent: Bool = True  # false: not in the state_dict (torch's register_buffer(persistent=False))


@register
class Buffer(Op):
    name = "buffer"
    doc = ("A persistent buffer computed by a rule, named by its label: relative_position_index: buffer("
           "\"relative_position_index\", window = [7, 7]) (Swin, MaxViT; shape [2401], or shape = [49, 49]), "
           "\"relative_coords_table\" (Swin V2); persistent = false keeps it out of the state_dict.")
    Args = BufferArgs
    positional = ("rule",)
    arity = 0
    ranks = ANY_RANK
    example = (("relative_position_index",), {"window": [2, 3], "shape": [6, 6]}, [])

    @classmethod
    def normalize(cls, args, ins):
        if args.rule not in RULES:
            raise ShapeError(f"unknown buffer rule {args.rule!r}", "one of: " + ", ".join(RULES))
        if len(args.window) != 2 or args.window[0] * args.window[1] > 4096:
            raise ShapeError(f"a window is [height, width] of at most 4096 positions, got {args.window}")
        natural = RULES[args.rule][1](*args.window)
        shape = natural if args.shape is None else _sizes(args.shape, numel(natural), "buffer shape")
        return {"rule": args.rule, "window": list(args.window), "shape": shape, "persistent": args.persistent}

    @classmethod
    def shape(cls, a, ins):
        return tuple(a["shape"])

    @classmethod
    def buffers(cls, a, ins, out):
        return numel(a["shape"])

    @classmethod
    def values(cls, a) -> tuple[list, str]:
        """The buffer's values (flat, row-major) and dtype, for the backends. Checked again here: an IR read
        from JSON has not been through normalize."""
        h, w = a["window"]
        if a["rule"] not in RULES or not (0 < h and 0 < w and h * w <= 4096):
            raise ValueError(f"buffer rule {a['rule']!r} on window {a['window']}: unknown, or over 4096 positions")
        return RULES[a["rule"]][0](h, w)


@register
class Take(Op):
    name = "take"
    doc = ("Rows of a table picked by an index tensor (a buffer): take(table, index) is table[index], "
           "[n, ...] by [...idx] -> [...idx, ...]; the relative position bias of Swin and MaxViT.")
    arity = None
    ranks = ANY_RANK
    example = ((), {}, [(10, 3), (4, 4)])

    @classmethod
    def normalize(cls, args, ins):
        return {"index": list(ins[1])} if len(ins) == 2 else {}

    @classmethod
    def shape(cls, a, ins):
        if len(ins) != 2:
            raise ShapeError(f"take reads one table by one index tensor, got {len(ins)} tensors")
        (table, index) = ins
        if len(table) < 2:
            raise ShapeError(f"take reads rows of a table [n, ...] of two or more axes, got {list(table)}")
        if len(index) + len(table) - 1 > MAX_RANK:
            raise ShapeError(f"take would make a tensor of more than {MAX_RANK} axes")
        return (*index, *table[1:])


# Ops with no input: their values are shared by every sample (batch axis of size 1 in the backends).
SOURCES = {"learnable", "buffer"}


def shared_values(nodes) -> set[str]:
    """Names of the IR nodes whose value is the same for every sample (computed from learnable tensors and
    buffers only): the backends give them a batch axis of 1, which broadcasts, and expand it where an op
    needs the real batch (cat)."""
    shared: set[str] = set()
    for n in nodes:
        if n.op in SOURCES or (n.inputs and all(i in shared for i in n.inputs)):
            shared.add(n.name)
    return shared

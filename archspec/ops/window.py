"""Windowed attention's pieces (Swin, MaxViT): buffers computed by a rule (relative position index, Swin V2's
log-spaced coordinate table, the shifted-window mask), a gather from a table by an index buffer, and the
element-wise maths of cosine attention (L2 normalize, clamp, exp, scale). The attention itself is written in
the spec with the generic tensor ops; these are the few facts a spec cannot compute for itself.

The rules are pure Python, shared by the analyzer (shapes, counts) and both backends (values)."""
from __future__ import annotations

import math

from .tensor import SOURCES
from .base import ANY_RANK, Attrs, Bool, Float, Int, Op, PosIntList, ShapeError, axis, numel, register

# A buffer computed by a rule is materialised in Python lists by the backends: keep it small.
MAX_RULE_ELEMENTS = 2 ** 24


def _window(sizes: list[int], what: str = "window") -> tuple[int, int]:
    """A 2-d window from one size or two."""
    if len(sizes) == 1:
        return sizes[0], sizes[0]
    if len(sizes) != 2:
        raise ShapeError(f"{what} takes one size or two (height, width), got {len(sizes)}: {sizes}")
    return sizes[0], sizes[1]


def _bounded(shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    if numel(shape) > MAX_RULE_ELEMENTS:
        raise ShapeError(f"{what} would hold {numel(shape):,} elements, over the limit of {MAX_RULE_ELEMENTS:,}",
                         "use a smaller window")
    return shape


# ---- the rules

def relative_position_index(wh: int, ww: int) -> list[int]:
    """For every (query, key) pair of tokens of a wh x ww window, row-major, the row of the offset between them
    in a (2wh - 1)(2ww - 1)-row table: Swin's and MaxViT's relative_position_index."""
    coords = [(i, j) for i in range(wh) for j in range(ww)]
    return [(qi - ki + wh - 1) * (2 * ww - 1) + (qj - kj + ww - 1) for qi, qj in coords for ki, kj in coords]


def relative_coords_table(wh: int, ww: int) -> list[float]:
    """Swin V2's continuous relative coordinates, [2wh - 1, 2ww - 1, 2] row-major: each offset d scaled to
    [-8, 8] by the window (8 d / (w - 1)), then sign(t) log2(|t| + 1) / 3."""
    def log_spaced(d: int, w: int) -> float:
        t = 8.0 * d / (w - 1) if w > 1 else 0.0
        return math.copysign(math.log2(abs(t) + 1.0), t) / 3.0
    return [v for i in range(1 - wh, wh) for j in range(1 - ww, ww) for v in (log_spaced(i, wh), log_spaced(j, ww))]


def shifted_window_mask(h: int, w: int, wh: int, ww: int, sh: int, sw: int) -> list[float]:
    """Swin's mask for attention in the windows of an h x w map rolled back by (sh, sw): [windows, N, N]
    row-major, N = wh * ww, 0 where query and key come from the same region of the unrolled map, -100
    elsewhere (the rolled-in border must not attend across the wrap)."""
    def region(i: int, size: int, win: int, shift: int) -> int:
        return 0 if i < size - win else 1 if i < size - shift else 2
    out: list[float] = []
    for bi in range(h // wh):
        for bj in range(w // ww):
            labels = [3 * region(bi * wh + i, h, wh, sh) + region(bj * ww + j, w, ww, sw)
                      for i in range(wh) for j in range(ww)]
            out += [0.0 if a == b else -100.0 for a in labels for b in labels]
    return out


# ---- buffers computed by a rule (no input; the same for every sample)

class RelativePositionIndexArgs(Attrs):
    window: PosIntList
    flat: Bool = True


@register
class RelativePositionIndex(Op):
    name = "relative_position_index"
    doc = ("Persistent int64 buffer: for each (query, key) pair of a window's tokens, the table row of their "
           "offset (Swin, MaxViT): relative_position_index([7, 7]) is [2401]; flat = false keeps [49, 49].")
    Args = RelativePositionIndexArgs
    positional = ("window",)
    arity = 0
    ranks = ANY_RANK
    example = (([2, 3],), {}, [])
    dtype = "int64"

    @classmethod
    def example_cases(cls):
        return Gather.example_cases()  # integers: checked with gather in tests/test_window.py

    @classmethod
    def normalize(cls, args, ins):
        wh, ww = _window(args.window)
        return {"window": [wh, ww], "flat": args.flat, "batch": False}

    @classmethod
    def shape(cls, a, ins):
        n = a["window"][0] * a["window"][1]
        return _bounded((n * n,) if a["flat"] else (n, n), "relative_position_index")

    @classmethod
    def buffers(cls, a, ins, out):
        return numel(out)

    @classmethod
    def values(cls, a) -> list[int]:
        return relative_position_index(*a["window"])


class RelativeCoordsTableArgs(Attrs):
    window: PosIntList


@register
class RelativeCoordsTable(Op):
    name = "relative_coords_table"
    doc = ("Persistent float buffer of Swin V2's log-spaced relative coordinates, stored [1, 2h-1, 2w-1, 2] as "
           "torchvision does: relative_coords_table([8, 8]) is [15, 15, 2] per sample (input of the cpb MLP).")
    Args = RelativeCoordsTableArgs
    positional = ("window",)
    arity = 0
    ranks = ANY_RANK
    example = (([3, 4],), {}, [])
    dtype = "float32"

    @classmethod
    def normalize(cls, args, ins):
        wh, ww = _window(args.window)
        return {"window": [wh, ww], "batch": True}

    @classmethod
    def shape(cls, a, ins):
        wh, ww = a["window"]
        return _bounded((2 * wh - 1, 2 * ww - 1, 2), "relative_coords_table")

    @classmethod
    def buffers(cls, a, ins, out):
        return numel(out)

    @classmethod
    def values(cls, a) -> list[float]:
        return relative_coords_table(*a["window"])


class ShiftedWindowMaskArgs(Attrs):
    size: PosIntList
    window: PosIntList
    shift: PosIntList


@register
class ShiftedWindowMask(Op):
    name = "shifted_window_mask"
    doc = ("Constant additive attention mask of Swin's shifted windows (not stored in the state_dict): "
           "shifted_window_mask([56, 56], window = [7, 7], shift = [3, 3]) is [64, 49, 49], 0 within a region "
           "of the unrolled map and -100 across regions.")
    Args = ShiftedWindowMaskArgs
    positional = ("size",)
    arity = 0
    ranks = ANY_RANK
    example = (([4, 6],), {"window": [2, 3], "shift": [1, 1]}, [])
    dtype = "float32"
    persistent = False  # torchvision computes it in forward: not in the state_dict

    @classmethod
    def normalize(cls, args, ins):
        (h, w), (wh, ww), (sh, sw) = _window(args.size, "size"), _window(args.window), _window(args.shift, "shift")
        if h % wh or w % ww:
            raise ShapeError(f"the map {h}x{w} is no whole number of {wh}x{ww} windows",
                             "pad the map to a multiple of the window first")
        if sh >= wh or sw >= ww:
            raise ShapeError(f"the shift {sh}x{sw} must be smaller than the window {wh}x{ww}")
        return {"size": [h, w], "window": [wh, ww], "shift": [sh, sw], "batch": False}

    @classmethod
    def shape(cls, a, ins):
        (h, w), (wh, ww) = a["size"], a["window"]
        return _bounded(((h // wh) * (w // ww), wh * ww, wh * ww), "shifted_window_mask")

    @classmethod
    def values(cls, a) -> list[float]:
        return shifted_window_mask(*a["size"], *a["window"], *a["shift"])


# Ops with no input whose value every sample shares (see archspec.ops.tensor.shared_values).
SOURCES.update({"relative_position_index", "relative_coords_table", "shifted_window_mask"})


# ---- gather from a table

@register
class Gather(Op):
    name = "gather"
    doc = ("Rows of a table picked by an index buffer, gather(table, index): table [T, ...] and integer index "
           "[K...] give [K..., ...] (the relative position bias, table[index]).")
    arity = None  # tensors passed by name, as for merges
    ranks = ANY_RANK
    example = ((), {}, [(5, 3), (4, 2)])

    @classmethod
    def example_cases(cls):
        """None for the generic completeness tests, which feed random floats: the index is an integer buffer.
        tests/test_window.py runs gather on a learnable table and a relative position index instead."""
        return []

    @classmethod
    def shape(cls, a, ins):
        if len(ins) != 2:
            raise ShapeError(f"gather takes a table and an index, got {len(ins)} tensors")
        table, index = ins
        return tuple(index) + tuple(table[1:])

    @classmethod
    def receptive(cls, a, ins):
        return None


# ---- element-wise maths of cosine attention

class NormalizeArgs(Attrs):
    dim: Int = -1
    eps: Float = 1e-12


@register
class Normalize(Op):
    name = "normalize"
    doc = ("Divide by the L2 norm along an axis, x / max(|x|, eps), as F.normalize (cosine attention): "
           "normalize(dim = -1, eps = 1e-12).")
    Args = NormalizeArgs
    ranks = ANY_RANK
    example = ((), {"dim": 1}, [(4, 6, 8)])

    @classmethod
    def normalize(cls, args, ins):
        return {"dim": axis(args.dim, len(ins[0])), "eps": args.eps}


class ClampArgs(Attrs):
    min: Float | None = None
    max: Float | None = None


@register
class Clamp(Op):
    name = "clamp"
    doc = "Clip values to [min, max], either bound optional: clamp(max = log(100)) (Swin V2's logit scale)."
    Args = ClampArgs
    ranks = ANY_RANK
    example = ((), {"min": -0.5, "max": 0.5}, [(4, 6, 8)])

    @classmethod
    def normalize(cls, args, ins):
        if args.min is None and args.max is None:
            raise ShapeError("clamp needs min, max or both")
        if args.min is not None and args.max is not None and args.min > args.max:
            raise ShapeError(f"clamp min {args.min} is above max {args.max}")
        return args.as_dict()


@register
class Exp(Op):
    name = "exp"
    doc = "e to the power of each value."
    ranks = ANY_RANK
    example = ((), {}, [(4, 6, 8)])


class ScaleArgs(Attrs):
    factor: Float


@register
class Scale(Op):
    name = "scale"
    doc = "Multiply by a constant: scale(16) (Swin V2's bias range), scale(d ** -0.5)."
    Args = ScaleArgs
    positional = ("factor",)
    ranks = ANY_RANK
    example = ((0.25,), {}, [(4, 6, 8)])

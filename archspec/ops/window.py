"""Windowed attention's pieces (Swin): the shifted-window mask (a buffer computed by a rule, not stored) and the
element-wise maths of cosine attention (L2 normalize, clamp, exp, scale). The attention itself is written in the
spec with the tensor ops (archspec/ops/tensor.py: buffer, take, roll, ...); these are the few facts a spec cannot
compute for itself. The mask's rule is pure Python, shared by the analyzer (shapes) and both backends (values)."""
from __future__ import annotations

from .base import ANY_RANK, Attrs, Float, Int, Op, PosIntList, ShapeError, axis, numel, register
from .tensor import SOURCES

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


# ---- the rule

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


# ---- the mask: a buffer computed by a rule, not stored (the same for every sample)

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

    @classmethod
    def normalize(cls, args, ins):
        (h, w), (wh, ww), (sh, sw) = _window(args.size, "size"), _window(args.window), _window(args.shift, "shift")
        if h % wh or w % ww:
            raise ShapeError(f"the map {h}x{w} is no whole number of {wh}x{ww} windows",
                             "pad the map to a multiple of the window first")
        if sh >= wh or sw >= ww:
            raise ShapeError(f"the shift {sh}x{sw} must be smaller than the window {wh}x{ww}")
        # not in the state_dict: torchvision computes it in forward
        return {"size": [h, w], "window": [wh, ww], "shift": [sh, sw], "batch": False, "persistent": False}

    @classmethod
    def shape(cls, a, ins):
        (h, w), (wh, ww) = a["size"], a["window"]
        return _bounded(((h // wh) * (w // ww), wh * ww, wh * ww), "shifted_window_mask")

    @classmethod
    def values(cls, a) -> list[float]:
        return shifted_window_mask(*a["size"], *a["window"], *a["shift"])


# An op with no input: its value is shared by every sample (see archspec.ops.tensor.shared_values).
SOURCES.add("shifted_window_mask")


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

"""Channel ops: one part of a chunk or split along an axis (channels by default), and channel shuffle.

`chunk(2) as a, b` names every part at once (one node per part, see Lowerer.s_call_stmt); a part alone
is `chunk(2, index = 1)`. A part along a spatial axis is a crop: its receptive field is shifted, not grown.
"""
from __future__ import annotations

from .base import RF, Attrs, Floats, Int, NonNegInt, Op, PosInt, PosInts, ShapeError, register


def _axis(dim: int, shape) -> int:
    rank = len(shape)
    if not -rank <= dim < rank:
        raise ShapeError(f"dim {dim} is out of range for a sample of shape {list(shape)}",
                         "dim 0 is the channels (or features); the batch axis is not counted")
    return dim % rank


class _Part(Op):
    """One part [start, start + length) of the input along `dim`; subclasses say how the parts are cut."""

    @classmethod
    def sizes(cls, args, size: int) -> list[int]:
        raise NotImplementedError

    @classmethod
    def count(cls, args, shape) -> int:
        """How many parts the input gives (what `as a, b, ...` must name)."""
        return len(cls.sizes(args, shape[_axis(args.dim, shape)]))

    @classmethod
    def normalize(cls, args, ins):
        dim = _axis(args.dim, ins[0])
        sizes = cls.sizes(args, ins[0][dim])
        if args.index is None:
            raise ShapeError(f"{cls.name}() makes {len(sizes)} tensors: name them, "
                             f"'{cls.name}(...) as {', '.join(f'x{i}' for i in range(len(sizes)))}', "
                             "or pick one with index = i")
        if args.index >= len(sizes):
            raise ShapeError(f"index {args.index} is out of range: {cls.name}() makes {len(sizes)} parts of sizes {sizes}")
        a = args.as_dict()
        a.update(dim=dim, start=sum(sizes[:args.index]), length=sizes[args.index])
        return a

    @classmethod
    def shape(cls, a, ins):
        s = list(ins[0])
        s[a["dim"]] = a["length"]
        return tuple(s)

    @classmethod
    def receptive(cls, a, ins):
        if a["dim"] == 0:
            return None
        # Along a spatial axis a part is a crop: output unit u is input unit u + start (a negative padding).
        return [RF(1, 1, -a["start"] if axis == a["dim"] else 0) for axis in range(1, len(ins[0]))]


class ChunkArgs(Attrs):
    parts: PosInt
    index: NonNegInt | None = None
    dim: Int = 0


@register
class Chunk(_Part):
    name = "chunk"
    doc = "One of `parts` equal parts along an axis, as torch.chunk: chunk(parts, index=None, dim=0); name them all with `as`."
    Args = ChunkArgs
    positional = ("parts",)
    example = ((2,), {"index": 1}, [(8, 10, 10)])

    @classmethod
    def sizes(cls, args, size):
        if size % args.parts:
            raise ShapeError(f"chunk({args.parts}) of an axis of size {size}: the parts would be unequal",
                             f"use split() with the sizes you mean (torch.chunk would give "
                             f"{-(-size // args.parts)}-sized parts and fewer of them)")
        return [size // args.parts] * args.parts


class SplitArgs(Attrs):
    sizes: PosInts
    index: NonNegInt | None = None
    dim: Int = 0


@register
class Split(_Part):
    name = "split"
    doc = ("Parts of the given sizes along an axis, as torch.split: split(sizes, index=None, dim=0); "
           "one int cuts parts of that size (the last may be smaller).")
    Args = SplitArgs
    positional = ("sizes",)
    example = (([3, 5],), {"index": 1}, [(8, 10, 10)])

    @classmethod
    def sizes(cls, args, size):
        if isinstance(args.sizes, list):
            if sum(args.sizes) != size:
                raise ShapeError(f"split sizes {args.sizes} add up to {sum(args.sizes)}, the axis has {size}",
                                 "the sizes must add up to the axis' size")
            return list(args.sizes)
        step = args.sizes
        if size // step > 4096:
            raise ShapeError(f"split({step}) of an axis of size {size} makes {-(-size // step)} parts", "use larger parts")
        return [min(step, size - s) for s in range(0, size, step)]


class ShuffleArgs(Attrs):
    groups: PosInt


@register
class ChannelShuffle(Op):
    name = "channel_shuffle"
    doc = "ShuffleNet's channel shuffle: view channels as [groups, C/groups], transpose, flatten back."
    Args = ShuffleArgs
    positional = ("groups",)
    ranks = (2, 3, 4)
    example = ((2,), {}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        c = ins[0][0]
        if c % args.groups:
            raise ShapeError(f"channel_shuffle({args.groups}) of {c} channels: groups must divide the channels")
        return {"groups": args.groups, "channels": c}


class AffineArgs(Attrs):
    scale: Floats
    shift: Floats = 0.0


@register
class ChannelAffine(Op):
    name = "channel_affine"
    doc = ("A constant per-channel x * scale + shift, no parameters (Inception-v3's transform_input): "
           "channel_affine(scale, shift=0.0), one value or one per channel each.")
    Args = AffineArgs
    positional = ("scale", "shift")
    example = (([0.5, 2.0],), {"shift": [0.25, -1.0]}, [(2, 6, 6)])

    @classmethod
    def normalize(cls, args, ins):
        c = ins[0][0]
        out = {}
        for name in ("scale", "shift"):
            v = getattr(args, name)
            values = v if isinstance(v, list) else [v]
            if len(values) not in (1, c):
                raise ShapeError(f"{name} has {len(values)} values for {c} channels", "give one value, or one per channel")
            out[name] = [float(x) for x in values] * (c if len(values) == 1 else 1)
        return out

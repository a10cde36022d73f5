"""Pooling: sliding-window max/average, adaptive average, global average."""
from __future__ import annotations

import math

from .base import (GLOBAL, RF, Attrs, Bool, NonNegInts, Op, PosInts, ShapeError, numel, per_axis,
                   per_axis_args, register)
from .conv import conv_out


class PoolArgs(Attrs):
    kernel: PosInts
    stride: PosInts | None = None  # default: the kernel
    pad: NonNegInts = 0
    ceil: Bool = False


class AvgPoolArgs(PoolArgs):
    count_include_pad: Bool = True


class _Pool(Op):
    positional = ("kernel", "stride")
    ranks = (2, 3, 4)

    @classmethod
    def normalize(cls, args, ins):
        n = len(ins[0]) - 1
        a = args.as_dict()
        a["kernel"] = per_axis(args.kernel, n, "kernel")
        a["stride"] = per_axis(args.stride if args.stride is not None else args.kernel, n, "stride")
        a["pad"] = per_axis(args.pad, n, "pad")
        if any(2 * p > k for p, k in zip(a["pad"], a["kernel"])):
            raise ShapeError(f"pad {a['pad']} must be at most half the kernel {a['kernel']}", "PyTorch refuses it too")
        return a

    @classmethod
    def shape(cls, a, ins):
        spatial = [conv_out(x, k, s, p, 1, a["ceil"]) for x, k, s, p in zip(ins[0][1:], a["kernel"], a["stride"], a["pad"])]
        if min(spatial) < 1:
            raise ShapeError(f"the input {list(ins[0])} is too small for a {a['kernel']} pool", "use a larger input resolution")
        return (ins[0][0], *spatial)

    @classmethod
    def receptive(cls, a, ins):
        return [RF(k, s, p) for k, s, p in zip(a["kernel"], a["stride"], a["pad"])]


@register
class MaxPool(_Pool):
    name = "maxpool"
    doc = "Max pooling: maxpool(kernel, stride=kernel, pad=0, ceil=false)."
    Args = PoolArgs
    example = ((3,), {"stride": 2, "pad": 1, "ceil": True}, [(8, 10, 10)])


@register
class AvgPool(_Pool):
    name = "avgpool"
    doc = "Average pooling: avgpool(kernel, stride=kernel, pad=0, ceil=false, count_include_pad=true)."
    Args = AvgPoolArgs
    example = ((2,), {}, [(8, 10, 10)])


class AdaptiveArgs(Attrs):
    size: PosInts


@register
class AdaptiveAvgPool(Op):
    name = "adaptive_avgpool"
    doc = "Average pooling to a fixed output size: adaptive_avgpool(size)."
    Args = AdaptiveArgs
    positional = ("size",)
    ranks = (2, 3, 4)
    example = ((3,), {}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        return per_axis_args(args, len(ins[0]) - 1, "size")

    @classmethod
    def shape(cls, a, ins):
        return (ins[0][0], *a["size"])

    @classmethod
    def receptive(cls, a, ins):
        # Exact when the output divides the input (VGG's 7x7 of a 7x7 map is the identity);
        # otherwise the windows [floor(i x / o), ceil((i + 1) x / o)) overlap unevenly and no single
        # stride describes them: the widest window bounds every unit's field, floor(x / o) the stride.
        out = []
        for x, o in zip(ins[0][1:], a["size"]):
            if x % o:
                # max over i of ceil((i + 1) x / o) - floor(i x / o), in closed form (o may be huge)
                widest = -(-(x + o - math.gcd(x, o)) // o)
                out.append(RF(widest, max(1, x // o), 0))
            else:
                out.append(RF(x // o, x // o, 0))
        if all(r.kernel == x for r, x in zip(out, ins[0][1:])) and any(x > 1 for x in ins[0][1:]):
            return GLOBAL
        return out


@register
class GlobalAvgPool(Op):
    name = "gap"
    doc = "Global average pooling, keeping the spatial axes as size 1: [C, H, W] -> [C, 1, 1]."
    ranks = (2, 3, 4)

    @classmethod
    def shape(cls, a, ins):
        return (ins[0][0],) + (1,) * (len(ins[0]) - 1)

    @classmethod
    def receptive(cls, a, ins):
        return GLOBAL if numel(ins[0][1:]) > 1 else None

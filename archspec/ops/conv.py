"""Convolution (1d on [C, L], 2d on [C, H, W], 3d on [C, D, H, W]) and fully connected layers."""
from __future__ import annotations

import math

from .base import (ANY_RANK, RF, Attrs, Bool, IntList, Mixes, NonNegInts, Op, PosInt, PosInts, ShapeError,
                   check_groups, numel, per_axis_args, register)


def conv_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """PyTorch's output size of a sliding window (conv and pooling, ceil mode included)."""
    span = size + 2 * p - d * (k - 1) - 1
    # PyTorch rounds down (toward -inf): in ceil mode a window may overhang the input's end, so a 2x2 input
    # gives 1x1 under maxpool(3, stride = 2, ceil = true), as nn.MaxPool2d does.
    n = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (n - 1) * s >= size + p:  # the last window must start inside the input or left padding
        n -= 1
    return max(n, 0)


class ConvArgs(Attrs):
    out: PosInt
    kernel: PosInts
    stride: PosInts = 1
    pad: NonNegInts = 0
    dilation: PosInts = 1
    groups: PosInt = 1
    bias: Bool = True


@register
class Conv(Op):
    name = "conv"
    doc = "Convolution over the spatial axes: conv(out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=true)."
    Args = ConvArgs
    positional = ("out", "kernel")
    ranks = (2, 3, 4)
    example = ((16, 3), {"stride": 2, "pad": 1, "groups": 2, "bias": False}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        cin, n = ins[0][0], len(ins[0]) - 1
        check_groups(args.groups, cin, args.out, "for a depthwise conv use groups = in.channels")
        return {"out": args.out, "in": cin, **per_axis_args(args, n, "kernel", "stride", "pad", "dilation"),
                "groups": args.groups, "bias": args.bias}

    @classmethod
    def shape(cls, a, ins):
        spatial = ins[0][1:]
        out = [conv_out(x, k, s, p, d) for x, k, s, p, d in zip(spatial, a["kernel"], a["stride"], a["pad"], a["dilation"])]
        if min(out) < 1:
            raise ShapeError(f"the input {list(ins[0])} is too small for kernel {a['kernel']} with pad {a['pad']}",
                             "use a larger input resolution or more padding")
        return (a["out"], *out)

    @classmethod
    def params(cls, a, ins, out):
        return a["out"] * (a["in"] // a["groups"]) * math.prod(a["kernel"]) + (a["out"] if a["bias"] else 0)

    @classmethod
    def macs(cls, a, ins, out):
        return numel(out) * (a["in"] // a["groups"]) * math.prod(a["kernel"])

    @classmethod
    def receptive(cls, a, ins):
        return [RF(d * (k - 1) + 1, s, p) for k, s, p, d in zip(a["kernel"], a["stride"], a["pad"], a["dilation"])]


class LinearArgs(Attrs):
    out: PosInt
    bias: Bool = True
    zero_bias: IntList | None = None  # [start, end]: bias entries stored but used as zeros (Swin V2's key bias)


@register
class Linear(Op):
    name = "linear"
    doc = "Fully connected layer on the last axis of any tensor (features, tokens, channels last): linear(out, bias=true)."
    Args = LinearArgs
    positional = ("out",)
    ranks = ANY_RANK
    example = ((7,), {}, [(12,)])

    @classmethod
    def normalize(cls, args, ins):
        a = {"out": args.out, "in": ins[0][-1], "bias": args.bias}
        if args.zero_bias is not None:
            if not args.bias:
                raise ShapeError("zero_bias needs a bias", "remove zero_bias, or set bias = true")
            if len(args.zero_bias) != 2 or not 0 <= args.zero_bias[0] < args.zero_bias[1] <= args.out:
                raise ShapeError(f"zero_bias is a range [start, end] of the {args.out} outputs, got {args.zero_bias}")
            a["zero_bias"] = list(args.zero_bias)
        return a

    @classmethod
    def shape(cls, a, ins):
        return (*ins[0][:-1], a["out"])

    @classmethod
    def params(cls, a, ins, out):
        return a["in"] * a["out"] + (a["out"] if a["bias"] else 0)

    @classmethod
    def macs(cls, a, ins, out):
        return numel(out) * a["in"]

    @classmethod
    def receptive(cls, a, ins):
        return Mixes(len(ins[0]) - 1)

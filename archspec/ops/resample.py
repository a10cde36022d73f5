"""Dense prediction: resampling ops (upsample, interpolate, transposed convolution, pixel shuffle) and a
centre crop, on [C, L], [C, H, W] and [C, D, H, W].

Receptive fields: an op that makes s output units per input unit divides the effective stride by s
(a Fraction until a later stride multiplies it back). Its `kernel` is the most input units one output
unit reads, so field sizes stay the widest unit's. Output units come in groups of s that read the same
input units (nearest: unit floor(u / s)), a staircase no single stride describes: `pad` is that of the
straight line through the groups' centres, the half-pixel geometry (unit u centred on input coordinate
(u + 1/2) / s - 1/2). It is what makes U-Net's up-convolved path and its cropped skip line up.
"""
from __future__ import annotations

import math
from fractions import Fraction

from .base import (RF, Attrs, Bool, NonNegInts, Op, PosInt, PosInts, ShapeError, Str, check_groups, numel,
                   per_axis, per_axis_args, register)
from .conv import ConvArgs

MODES = {"nearest": None, "linear": 1, "bilinear": 2, "trilinear": 3}  # mode -> spatial axes it needs


def _mode(mode: str, align: bool, n: int) -> str:
    if mode not in MODES:
        raise ShapeError(f"unknown mode '{mode}'", f"one of: {', '.join(MODES)}")
    if MODES[mode] not in (None, n):
        want = [m for m, k in MODES.items() if k == n]
        raise ShapeError(f"mode '{mode}' is for {MODES[mode]} spatial axes, the input has {n}",
                         f"use mode = \"{want[0]}\"" if want else None)
    if align and mode == "nearest":
        raise ShapeError("align_corners applies to the linear modes only", "drop align_corners, or use a linear mode")
    return mode


def _resample_rf(a, ins) -> list[RF]:
    out = []
    for x, o in zip(ins[0][1:], a["size"]):
        if a["mode"] == "nearest":  # PyTorch: source unit floor(u * x / o); with x / o = n / d in lowest
            ratio = Fraction(x, o)  # terms, floor(u n / d) lies (d - 1) / 2d below u n / d on average
            out.append(RF(1, ratio, Fraction(ratio.denominator - 1, 2 * ratio.denominator)))
        elif a["align_corners"]:    # source coordinate u * (x - 1) / (o - 1), two taps around it
            out.append(RF(2, Fraction(x - 1, o - 1) if o > 1 else 1, Fraction(1, 2)))
        else:                       # source coordinate (u + 1/2) * x / o - 1/2, two taps around it
            out.append(RF(2, Fraction(x, o), 1 - Fraction(x, 2 * o)))
    return out


class UpsampleArgs(Attrs):
    scale: PosInts
    mode: Str = "nearest"
    align_corners: Bool = False


class _Resample(Op):
    ranks = (2, 3, 4)

    @classmethod
    def shape(cls, a, ins):
        return (ins[0][0], *a["size"])

    @classmethod
    def macs(cls, a, ins, out):
        return 0  # interpolation multiplies by constants: not counted, as torchvision's figures do not

    @classmethod
    def receptive(cls, a, ins):
        return _resample_rf(a, ins)


@register
class Upsample(_Resample):
    name = "upsample"
    doc = ("Upsample by integer factors: upsample(scale, mode=\"nearest\", align_corners=false); "
           "mode nearest, linear, bilinear or trilinear (1, 2, 3 spatial axes).")
    Args = UpsampleArgs
    positional = ("scale",)
    example = ((2,), {"mode": "bilinear", "align_corners": True}, [(4, 5, 5)])

    @classmethod
    def normalize(cls, args, ins):
        n = len(ins[0]) - 1
        scale = per_axis(args.scale, n, "scale")
        return {"scale": scale, "size": [x * s for x, s in zip(ins[0][1:], scale)],
                "mode": _mode(args.mode, args.align_corners, n), "align_corners": args.align_corners}


class InterpolateArgs(Attrs):
    size: PosInts
    mode: Str = "nearest"
    align_corners: Bool = False


@register
class Interpolate(_Resample):
    name = "interpolate"
    doc = ("Resample to a size (another tensor's: size = skip.shape[1:]): "
           "interpolate(size, mode=\"nearest\", align_corners=false).")
    Args = InterpolateArgs
    positional = ("size",)
    example = (([7, 9],), {"mode": "bilinear"}, [(4, 5, 5)])

    @classmethod
    def normalize(cls, args, ins):
        n = len(ins[0]) - 1
        return {"size": per_axis(args.size, n, "size"), "mode": _mode(args.mode, args.align_corners, n),
                "align_corners": args.align_corners}


class ConvTransposeArgs(ConvArgs):
    output_pad: NonNegInts = 0


@register
class ConvTranspose(Op):
    name = "conv_transpose"
    doc = ("Transposed convolution (up-convolution): conv_transpose(out, kernel, stride=1, pad=0, output_pad=0, "
           "dilation=1, groups=1, bias=true); size (x - 1)·stride − 2·pad + dilation·(kernel − 1) + output_pad + 1.")
    Args = ConvTransposeArgs
    positional = ("out", "kernel")
    ranks = (2, 3, 4)
    example = ((6, 3), {"stride": 2, "pad": 1, "output_pad": 1, "groups": 2}, [(4, 5, 5)])

    @classmethod
    def normalize(cls, args, ins):
        cin, n = ins[0][0], len(ins[0]) - 1
        check_groups(args.groups, cin, args.out)
        a = {"out": args.out, "in": cin, "groups": args.groups, "bias": args.bias,
             **per_axis_args(args, n, "kernel", "stride", "pad", "output_pad", "dilation")}
        if any(op >= max(s, d) for op, s, d in zip(a["output_pad"], a["stride"], a["dilation"])):
            raise ShapeError(f"output_pad {a['output_pad']} must be smaller than the stride or the dilation",
                             "PyTorch refuses it too")
        return a

    @classmethod
    def shape(cls, a, ins):
        out = [(x - 1) * s - 2 * p + d * (k - 1) + op + 1 for x, k, s, p, op, d in
               zip(ins[0][1:], a["kernel"], a["stride"], a["pad"], a["output_pad"], a["dilation"])]
        if min(out) < 1:
            raise ShapeError(f"the padding {a['pad']} leaves no output for the input {list(ins[0])}", "use less padding")
        return (a["out"], *out)

    @classmethod
    def params(cls, a, ins, out):
        return a["in"] * (a["out"] // a["groups"]) * math.prod(a["kernel"]) + (a["out"] if a["bias"] else 0)

    @classmethod
    def macs(cls, a, ins, out):
        # every input value is multiplied into a kernel of out/groups channels
        return numel(ins[0]) * (a["out"] // a["groups"]) * math.prod(a["kernel"])

    @classmethod
    def receptive(cls, a, ins):
        out = []
        for k, s, p, d in zip(a["kernel"], a["stride"], a["pad"], a["dilation"]):
            span = d * (k - 1) + 1  # output unit u reads the input units v with v·s − p ≤ u ≤ v·s − p + span − 1,
            taps = -(-span // s)    # at most this many; their centre is (u + p − (span − 1) / 2) / s on average
            out.append(RF(taps, Fraction(1, s), Fraction(taps - 1, 2) - (p - Fraction(span - 1, 2)) / s))
        return out


class PixelShuffleArgs(Attrs):
    factor: PosInt


@register
class PixelShuffle(Op):
    name = "pixel_shuffle"
    doc = "Sub-pixel upsampling: [C·r², H, W] -> [C, H·r, W·r]: pixel_shuffle(factor)."
    Args = PixelShuffleArgs
    positional = ("factor",)
    ranks = (3,)
    example = ((2,), {}, [(8, 5, 5)])

    @classmethod
    def normalize(cls, args, ins):
        r2 = args.factor ** 2
        if ins[0][0] % r2:
            raise ShapeError(f"pixel_shuffle({args.factor}) needs channels divisible by {r2}, got {ins[0][0]}")
        return {"factor": args.factor}

    @classmethod
    def shape(cls, a, ins):
        r = a["factor"]
        return (ins[0][0] // (r * r), *(x * r for x in ins[0][1:]))

    @classmethod
    def receptive(cls, a, ins):
        r = a["factor"]  # output unit u reads input unit floor(u / r): a staircase, as nearest upsampling
        return [RF(1, Fraction(1, r), Fraction(r - 1, 2 * r)) for _ in ins[0][1:]]


class CropArgs(Attrs):
    size: PosInts


@register
class CenterCrop(Op):
    name = "center_crop"
    doc = "Crop the spatial axes to `size` around the centre (U-Net's skip connections): center_crop(size)."
    Args = CropArgs
    positional = ("size",)
    ranks = (2, 3, 4)
    example = ((3,), {}, [(4, 6, 6)])

    @classmethod
    def normalize(cls, args, ins):
        size = per_axis(args.size, len(ins[0]) - 1, "size")
        if any(s > x for s, x in zip(size, ins[0][1:])):
            raise ShapeError(f"cannot crop {list(ins[0][1:])} to a larger {size}")
        return {"size": size, "start": [(x - s) // 2 for x, s in zip(ins[0][1:], size)]}

    @classmethod
    def shape(cls, a, ins):
        return (ins[0][0], *a["size"])

    @classmethod
    def receptive(cls, a, ins):
        return [RF(1, 1, -start) for start in a["start"]]

"""Ops that reshape or pass values through: flatten, dropout, stochastic depth, identity."""
from __future__ import annotations

from .base import ANY_RANK, GLOBAL, VIEW, Attrs, Bool, Int, Layout, Op, Prob, ShapeError, axis, numel, register


class FlattenArgs(Attrs):
    start: Int = 0
    end: Int = -1


@register
class Flatten(Op):
    name = "flatten"
    doc = ("Flatten the sample to a vector, [C, H, W] -> [C*H*W], or the axes start..end: flatten(1) turns "
           "[D, H, W] into [D, H*W].")
    Args = FlattenArgs
    positional = ("start", "end")
    ranks = ANY_RANK

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        start, end = axis(args.start, rank, "flatten start"), axis(args.end, rank, "flatten end")
        if end < start:
            raise ShapeError(f"flatten end {args.end} comes before start {args.start}")
        return {} if (start, end) == (0, rank - 1) else {"start": start, "end": end}  # {}: the whole sample

    @classmethod
    def shape(cls, a, ins):
        start, end = a.get("start", 0), a.get("end", len(ins[0]) - 1)
        return (*ins[0][:start], numel(ins[0][start:end + 1]), *ins[0][end + 1:])

    @classmethod
    def receptive(cls, a, ins):
        if a:  # a range of axes: a view (tokens from a patch grid)
            return Layout(VIEW)
        return GLOBAL if len(ins[0]) > 1 and numel(ins[0][1:]) > 1 else None


class DropoutArgs(Attrs):
    p: Prob = 0.5


@register
class Dropout(Op):
    name = "dropout"
    doc = "Dropout (training only): dropout(p=0.5)."
    Args = DropoutArgs
    positional = ("p",)
    ranks = ANY_RANK
    example = ((0.2,), {}, [(12,)])


class StochasticDepthArgs(Attrs):
    p: Prob
    row: Bool = True  # drop whole samples (torchvision's mode="row")


@register
class StochasticDepth(Op):
    name = "stochastic_depth"
    doc = "Drop the residual branch per sample with probability p (training only): stochastic_depth(p)."
    Args = StochasticDepthArgs
    positional = ("p",)
    ranks = ANY_RANK
    example = ((0.1,), {}, [(8, 10, 10)])


@register
class Identity(Op):
    name = "identity"
    doc = "Pass the input through unchanged."
    ranks = ANY_RANK

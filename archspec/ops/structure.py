"""Ops that reshape or pass values through: flatten, dropout, stochastic depth, identity."""
from __future__ import annotations

from .base import GLOBAL, Attrs, Bool, Op, Prob, numel, register


@register
class Flatten(Op):
    name = "flatten"
    doc = "Flatten the sample to a vector: [C, H, W] -> [C*H*W]."

    @classmethod
    def shape(cls, a, ins):
        return (numel(ins[0]),)

    @classmethod
    def receptive(cls, a, ins):
        return GLOBAL if len(ins[0]) > 1 and numel(ins[0][1:]) > 1 else None


class DropoutArgs(Attrs):
    p: Prob = 0.5


@register
class Dropout(Op):
    name = "dropout"
    doc = "Dropout (training only): dropout(p=0.5)."
    Args = DropoutArgs
    positional = ("p",)
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
    example = ((0.1,), {}, [(8, 10, 10)])


@register
class Identity(Op):
    name = "identity"
    doc = "Pass the input through unchanged."

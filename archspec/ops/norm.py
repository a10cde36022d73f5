"""Normalisation layers."""
from __future__ import annotations

from .base import Attrs, Bool, Float, Op, PosInt, Prob, register


class BatchNormArgs(Attrs):
    eps: Float = 1e-5
    momentum: Prob = 0.1
    affine: Bool = True


@register
class BatchNorm(Op):
    name = "bn"
    doc = "Batch norm over the channel axis: bn(eps=1e-5, momentum=0.1, affine=true)."
    Args = BatchNormArgs
    example = ((), {"eps": 1e-3, "momentum": 0.01}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        return {"channels": ins[0][0], **args.as_dict()}

    @classmethod
    def params(cls, a, ins, out):
        return 2 * a["channels"] if a["affine"] else 0

    @classmethod
    def buffers(cls, a, ins, out):
        return 2 * a["channels"] + 1  # running mean, running var, num_batches_tracked


class LRNArgs(Attrs):
    size: PosInt = 5
    alpha: Float = 1e-4
    beta: Float = 0.75
    k: Float = 1.0


@register
class LocalResponseNorm(Op):
    name = "lrn"
    doc = "Local response normalisation across channels: lrn(size=5, alpha=1e-4, beta=0.75, k=1.0)."
    Args = LRNArgs
    positional = ("size",)
    ranks = (2, 3)
    example = ((5,), {"k": 2.0}, [(8, 10, 10)])

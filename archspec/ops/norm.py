"""Normalisation layers."""
from __future__ import annotations

from typing import ClassVar

from .base import ANY_RANK, GLOBAL, Attrs, Bool, Float, Int, Mixes, Op, PosInt, Prob, ShapeError, register


class _Affine(Op):
    """A normalisation with, when `affine`, a learned scale and shift per feature (the attribute `features`)."""

    features: ClassVar[str] = "channels"

    @classmethod
    def params(cls, a, ins, out):
        return 2 * a[cls.features] if a["affine"] else 0


class BatchNormArgs(Attrs):
    eps: Float = 1e-5
    momentum: Prob = 0.1
    affine: Bool = True


@register
class BatchNorm(_Affine):
    name = "bn"
    doc = "Batch norm over the channel axis: bn(eps=1e-5, momentum=0.1, affine=true)."
    Args = BatchNormArgs
    example = ((), {"eps": 1e-3, "momentum": 0.01}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        return {"channels": ins[0][0], **args.as_dict()}

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


class LayerNormArgs(Attrs):
    eps: Float = 1e-5
    affine: Bool = True
    dim: Int = -1


@register
class LayerNorm(_Affine):
    name = "layernorm"
    doc = ("Layer norm over the last axis (tokens [L, D], channels-last maps), or with dim = 0 over the channels "
           "of a [C, H, W] map (ConvNeXt's LayerNorm2d): layernorm(eps=1e-5, affine=true, dim=-1).")
    Args = LayerNormArgs
    features = "features"
    ranks = ANY_RANK
    example = ((), {"eps": 1e-6}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        if args.dim not in (-1, rank - 1, 0):
            raise ShapeError(f"layernorm normalizes the last axis (dim = -1) or the channels (dim = 0), not axis "
                             f"{args.dim}", "permute the axis to normalize to the end first")
        dim = -1 if args.dim == rank - 1 else args.dim
        return {"features": ins[0][dim], "eps": args.eps, "affine": args.affine, "dim": dim}

    @classmethod
    def receptive(cls, a, ins):
        return Mixes(a["dim"] % len(ins[0]))


class GroupNormArgs(Attrs):
    groups: PosInt
    eps: Float = 1e-5
    affine: Bool = True


@register
class GroupNorm(_Affine):
    name = "groupnorm"
    doc = "Group norm: channels in groups, each normalized over its channels and the map: groupnorm(groups, eps=1e-5)."
    Args = GroupNormArgs
    positional = ("groups",)
    ranks = (2, 3, 4)
    example = ((4,), {"eps": 1e-6}, [(8, 10, 10)])

    @classmethod
    def normalize(cls, args, ins):
        c = ins[0][0]
        if c % args.groups:
            raise ShapeError(f"groupnorm: {args.groups} groups do not divide {c} channels")
        return {"groups": args.groups, "channels": c, "eps": args.eps, "affine": args.affine}

    @classmethod
    def receptive(cls, a, ins):
        return GLOBAL if any(s > 1 for s in ins[0][1:]) else None  # statistics over the whole map

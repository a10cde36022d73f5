"""Merges: several tensors in, one out. Written add(a, b), cat(a, b), mul(a, b) on named tensors,
and produced by residual, dense, gate and branch statements."""
from __future__ import annotations

from .base import Attrs, Int, Op, ShapeError, register


class _Merge(Op):
    arity = None
    example = ((), {}, [(8, 10, 10), (8, 10, 10)])


def _describe(ins) -> str:
    return " and ".join(str(list(s)) for s in ins)


@register
class Add(_Merge):
    name = "add"
    doc = "Element-wise sum of tensors of one shape (residual connections)."

    @classmethod
    def shape(cls, a, ins):
        if any(s != ins[0] for s in ins):
            hint = "add a projection shortcut (a 1x1 conv with the stride), or match the channels"
            raise ShapeError(f"cannot add tensors of shapes {_describe(ins)}", hint)
        return ins[0]


@register
class Mul(_Merge):
    name = "mul"
    doc = "Element-wise product with broadcasting over size-1 axes (gates, squeeze-and-excitation)."
    example = ((), {}, [(8, 10, 10), (8, 1, 1)])

    @classmethod
    def shape(cls, a, ins):
        rank = len(ins[0])
        if any(len(s) != rank for s in ins):
            raise ShapeError(f"cannot multiply tensors of shapes {_describe(ins)}: their ranks differ")
        out = []
        for axis in range(rank):
            sizes = {s[axis] for s in ins} - {1}
            if len(sizes) > 1:
                raise ShapeError(f"cannot multiply tensors of shapes {_describe(ins)}: axis {axis} disagrees",
                                 "a gate must end with as many channels as its input")
            out.append(sizes.pop() if sizes else 1)
        return tuple(out)


class CatArgs(Attrs):
    dim: Int = 0


@register
class Cat(_Merge):
    name = "cat"
    doc = "Concatenate tensors along the channel axis (dim=0 of the sample): dense and inception merges."
    Args = CatArgs

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        if not -rank <= args.dim < rank:
            raise ShapeError(f"cat dim {args.dim} is out of range for rank {rank}")
        return {"dim": args.dim % rank}

    @classmethod
    def shape(cls, a, ins):
        d = a["dim"]
        rest = [s[:d] + s[d + 1:] for s in ins]
        if any(len(s) != len(ins[0]) for s in ins) or any(r != rest[0] for r in rest):
            raise ShapeError(f"cannot concatenate tensors of shapes {_describe(ins)} along axis {d}",
                             "every branch must keep the same spatial size: check strides, padding and ceil mode")
        return ins[0][:d] + (sum(s[d] for s in ins),) + ins[0][d + 1:]

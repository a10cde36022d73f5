"""Merges: several tensors in, one out. Written add(a, b), cat(a, b), mul(a, b) on named tensors,
and produced by residual, dense, gate and branch statements."""
from __future__ import annotations

from .base import ANY_RANK, Attrs, Int, Op, ShapeError, axis, describe, register


class _Merge(Op):
    arity = None
    ranks = ANY_RANK
    example = ((), {}, [(8, 10, 10), (8, 10, 10)])


@register
class Add(_Merge):
    name = "add"
    doc = "Element-wise sum of tensors of one shape (residual connections)."

    @classmethod
    def shape(cls, a, ins):
        if any(s != ins[0] for s in ins):
            try:  # axes of size 1 broadcast ([C, H, W] + [C, 1, 1], a bias [heads, N, N] + [1, N, N])
                return broadcast(ins)
            except ShapeError:
                hint = "add a projection shortcut (a 1x1 conv with the stride), or match the channels"
                raise ShapeError(f"cannot add tensors of shapes {describe(ins)}", hint) from None
        return ins[0]


@register
class Mul(_Merge):
    name = "mul"
    doc = "Element-wise product with broadcasting over size-1 axes (gates, squeeze-and-excitation)."
    example = ((), {}, [(8, 10, 10), (8, 1, 1)])

    @classmethod
    def shape(cls, a, ins):
        return broadcast(ins, "multiply", "a gate must end with as many channels as its input")


def broadcast(ins, verb: str = "add", hint: str | None = None) -> tuple[int, ...]:
    """The shape of tensors of one rank broadcast over their axes of size 1. Ranks must agree: the backends'
    batch axis stays in front (a learnable tensor's is 1), so an axis is never silently matched to another."""
    rank = len(ins[0])
    if any(len(s) != rank for s in ins):
        raise ShapeError(f"cannot {verb} tensors of shapes {describe(ins)}: their ranks differ",
                         "reshape or unflatten one of them to add axes of size 1")
    out = []
    for d in range(rank):
        sizes = {s[d] for s in ins} - {1}
        if len(sizes) > 1:
            raise ShapeError(f"cannot {verb} tensors of shapes {describe(ins)}: axis {d} disagrees", hint)
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class CatArgs(Attrs):
    dim: Int = 0


@register
class Cat(_Merge):
    name = "cat"
    doc = ("Concatenate tensors along an axis (dim=0, the channels, by default): dense and inception merges, "
           "a class token before the patch tokens.")
    Args = CatArgs

    @classmethod
    def normalize(cls, args, ins):
        return {"dim": axis(args.dim, len(ins[0]), "cat dim")}

    @classmethod
    def shape(cls, a, ins):
        d = a["dim"]
        rest = [s[:d] + s[d + 1:] for s in ins]
        if any(len(s) != len(ins[0]) for s in ins) or any(r != rest[0] for r in rest):
            raise ShapeError(f"cannot concatenate tensors of shapes {describe(ins)} along axis {d}",
                             "every branch must keep the same spatial size: check strides, padding and ceil mode")
        return ins[0][:d] + (sum(s[d] for s in ins),) + ins[0][d + 1:]

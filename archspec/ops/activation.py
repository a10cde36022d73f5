"""Element-wise activations and softmax: shape-preserving, no parameters."""
from __future__ import annotations

from .base import ANY_RANK, GLOBAL, Attrs, Int, Op, ShapeError, register


def _activation(op_name: str, text: str) -> type[Op]:
    cls = type(op_name.title(), (Op,), {"name": op_name, "doc": text, "ranks": ANY_RANK})
    return register(cls)


Relu = _activation("relu", "max(x, 0).")
Relu6 = _activation("relu6", "min(max(x, 0), 6).")
Silu = _activation("silu", "x * sigmoid(x) (swish).")
Gelu = _activation("gelu", "Gaussian error linear unit (exact erf form).")
Sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)).")
Tanh = _activation("tanh", "Hyperbolic tangent.")
Hardswish = _activation("hardswish", "x * relu6(x + 3) / 6.")
Hardsigmoid = _activation("hardsigmoid", "relu6(x + 3) / 6.")


class SoftmaxArgs(Attrs):
    dim: Int = 0


@register
class Softmax(Op):
    name = "softmax"
    doc = "Softmax along an axis of the sample (0 = channels or features): softmax(dim=0)."
    Args = SoftmaxArgs
    positional = ("dim",)
    ranks = ANY_RANK
    example = ((), {}, [(10,)])

    @classmethod
    def normalize(cls, args, ins):
        rank = len(ins[0])
        if not -rank <= args.dim < rank:
            raise ShapeError(f"softmax dim {args.dim} is out of range for a sample of shape {list(ins[0])}")
        return {"dim": args.dim % rank}

    @classmethod
    def receptive(cls, a, ins):
        # Along a spatial axis every output depends on the whole axis.
        return GLOBAL if a["dim"] > 0 and ins[0][a["dim"]] > 1 else None

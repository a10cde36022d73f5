"""Token mixers: matmul of two computed tensors, scaled dot-product attention with heads and an optional
additive bias, and multi-head self-attention as one layer (nn.MultiheadAttention's parameters).
MACs count every multiply-accumulate, QKᵀ and AV included (what FlopCounterMode reports on the math path)."""
from __future__ import annotations

from .base import ANY_RANK, GLOBAL, Attrs, Bool, Float, Op, PosInt, Prob, ShapeError, describe, numel, register
from .merge import broadcast


def _batch(ins, what: str) -> tuple[int, ...]:
    """The broadcast leading axes of matrices [..., n, m] of one rank."""
    if any(len(s) < 2 for s in ins):
        raise ShapeError(f"{what} takes tensors of two or more axes [..., n, m], got {describe(ins)}")
    try:
        return broadcast([s[:-2] for s in ins]) if len(ins[0]) > 2 else ()
    except ShapeError:
        raise ShapeError(f"{what}: the leading axes of {describe(ins)} do not broadcast",
                         "give them one rank, with equal sizes or 1") from None


class _TokenMixer(Op):
    ranks = ANY_RANK  # windows x heads x tokens x width (Swin, MaxViT): any leading axes
    arity = None  # tensors are passed by name, as for merges: matmul(q, k)

    @classmethod
    def receptive(cls, a, ins):
        return GLOBAL


@register
class MatMul(_TokenMixer):
    name = "matmul"
    doc = "Matrix product of two named tensors [..., n, k] x [..., k, m] -> [..., n, m]; leading axes of size 1 broadcast."
    example = ((), {}, [(3, 5, 4), (1, 4, 6)])

    @classmethod
    def shape(cls, a, ins):
        if len(ins) != 2:
            raise ShapeError(f"matmul multiplies two tensors, got {len(ins)}")
        lead = _batch(ins, "matmul")
        (n, k), (k2, m) = ins[0][-2:], ins[1][-2:]
        if k != k2:
            raise ShapeError(f"cannot multiply {describe(ins)}: {k} columns against {k2} rows",
                             "transpose(-2, -1) the second one, or check the widths")
        return (*lead, n, m)

    @classmethod
    def macs(cls, a, ins, out):
        return numel(out) * ins[0][-1]


class SDPAArgs(Attrs):
    heads: PosInt = 1
    scale: Float | None = None
    dropout: Prob = 0.0


@register
class ScaledDotProductAttention(_TokenMixer):
    name = "sdpa"
    doc = ("Scaled dot-product attention softmax(q kᵀ · scale + bias) v of named tensors q [..., L, E], k [..., S, E], "
           "v [..., S, Ev] and an optional additive bias or mask broadcast to [..., heads, L, S]: sdpa(q, k, v, "
           "heads=1, scale=1/sqrt(E/heads)). With heads > 1, E and Ev are split into heads and joined back.")
    Args = SDPAArgs
    example = ((), {"heads": 2}, [(6, 8), (5, 8), (5, 4), (2, 6, 5)])

    @classmethod
    def normalize(cls, args, ins):
        if len(ins) not in (3, 4):
            raise ShapeError(f"sdpa takes q, k, v and an optional bias, got {len(ins)} tensors")
        for s, what in zip(ins[:3], "qkv"):
            if len(s) < 2:
                raise ShapeError(f"sdpa: {what} must be [..., L, E], got {list(s)}")
            if s[-1] % args.heads:
                raise ShapeError(f"sdpa: {args.heads} heads do not divide the width {s[-1]} of {what}",
                                 "the width must be a multiple of the number of heads")
        e = ins[0][-1] // args.heads
        return {"heads": args.heads, "scale": args.scale if args.scale is not None else e ** -0.5,
                "dropout": args.dropout}

    @classmethod
    def shape(cls, a, ins):
        q, k, v = ins[:3]
        lead = _batch([q, k, v], "sdpa")
        if q[-1] != k[-1]:
            raise ShapeError(f"sdpa: q and k have widths {q[-1]} and {k[-1]}")
        if k[-2] != v[-2]:
            raise ShapeError(f"sdpa: k and v have {k[-2]} and {v[-2]} positions")
        if len(ins) == 4:
            scores = (*lead, *((a["heads"],) if a["heads"] > 1 else ()), q[-2], k[-2])
            bias = ins[3]
            if len(bias) != len(scores) or broadcast([scores, bias], "add") != scores:
                raise ShapeError(f"sdpa: the bias {list(bias)} does not broadcast to the scores {list(scores)}",
                                 "give it the scores' rank, with sizes equal or 1")
        return (*lead, q[-2], v[-1])

    @classmethod
    def macs(cls, a, ins, out):
        q, k, v = ins[:3]
        positions = numel(out[:-1]) * k[-2]  # (batch, L, S) pairs
        return positions * (q[-1] + v[-1])   # q·k over E, then weights·v over Ev


class MHAArgs(Attrs):
    heads: PosInt
    dropout: Prob = 0.0
    bias: Bool = True


@register
class MultiheadAttention(Op):
    name = "multihead_attention"
    doc = ("Multi-head self-attention on tokens [L, D], nn.MultiheadAttention's layout (in_proj_weight, "
           "in_proj_bias, out_proj): multihead_attention(heads, dropout=0.0, bias=true).")
    Args = MHAArgs
    positional = ("heads",)
    ranks = (2,)
    example = ((2,), {}, [(8, 10)])

    @classmethod
    def normalize(cls, args, ins):
        d = ins[0][-1]
        if d % args.heads:
            raise ShapeError(f"{args.heads} heads do not divide the width {d}",
                             "the token width must be a multiple of the number of heads")
        return {"heads": args.heads, "dim": d, "dropout": args.dropout, "bias": args.bias}

    @classmethod
    def params(cls, a, ins, out):
        d = a["dim"]
        return 4 * d * d + (4 * d if a["bias"] else 0)

    @classmethod
    def macs(cls, a, ins, out):
        length, d = ins[0]
        return length * d * 3 * d + 2 * length * length * d + length * d * d  # projections, QKᵀ, AV, output

    @classmethod
    def receptive(cls, a, ins):
        return GLOBAL if ins[0][0] > 1 else None

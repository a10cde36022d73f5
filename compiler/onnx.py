"""ONNX backend: an archspec IR -> an `onnx.ModelProto`, emitted directly with `onnx.helper`.

    from archspec_compiler import to_onnx
    model = to_onnx(archspec.load("resnet50"), "resnet50.onnx")          # weights initialised as to_torch does
    to_onnx(arch, "r50.onnx", module=trained)                            # weights from a module
    to_onnx(arch, "r50_fp16.onnx", dtype="float16", fold_bn=True)        # deployment build

Names are the interface: graph inputs and outputs carry the spec's input/output names, each node is
named by its IR node (its scope path, `layer3.2.conv1`; sub-nodes of a multi-node lowering get
`layer3.2.conv1/Op`), the value a node produces is named like the node, and initializers are named
by the `state_dict` keys of `to_torch(arch)`. Every node's doc_string holds its spec position.

One table, `LOWERINGS`, maps every op of `archspec.ops.REGISTRY` to a function that emits its ONNX
nodes; a test fails for any op without one. The output is deterministic: the same spec and weights
give byte-identical files (no timestamps; metadata sorted).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

import archspec
from archspec.errors import Diagnostic, SpecError
from archspec.ir import Architecture, Node
from archspec.ops.tensor import shared_values
from archspec.output import atomic_folder, write_atomic

from .fold import bn_affine, fold, foldable_bn
from .lowerings import Lowerings
from .runtime import to_numpy

__all__ = ["DTYPES", "LOWERINGS", "Emitter", "check", "compare_outputs", "compare_shapes", "foldable_bn", "save",
           "to_onnx"]

DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float16": (np.float16, TensorProto.FLOAT16)}
MIN_OPSET, MAX_OPSET = 13, 21  # 13: Softmax on one axis, Clip/Squeeze with tensor inputs


# ---------------------------------------------------------------- the emitter

class Emitter:
    """Builds one graph: ONNX nodes and initializers, in a deterministic order (that of the IR)."""

    def __init__(self, arch: Architecture, weights: dict[str, np.ndarray], opset: int, dtype: str):
        self.arch = arch
        self.weights = weights
        self.opset = opset
        self.np_dtype, self.onnx_dtype = DTYPES[dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}  # made TensorProtos in place at the end (no copies)
        self.values: dict[str, str] = {i.name: i.name for i in arch.inputs}  # IR value -> ONNX value name
        self.shapes = arch.shapes()
        self.current: Node | None = None  # the IR node being lowered: names and doc strings come from it
        self._names: set[str] = set()
        self.shared = shared_values(arch.nodes)  # values with a batch axis of 1 (learnable tensors)

    # -- values and initializers
    def input(self, node: Node, i: int = 0) -> str:
        return self.values[node.inputs[i]]

    def weight(self, key: str, array: np.ndarray | None = None) -> str:
        """An initializer named by its state_dict key, cast to the model's float type."""
        if array is None:
            array = self.weights[key]
        self.initializers[key] = np.ascontiguousarray(array, dtype=self.np_dtype)
        return key

    def const(self, suffix: str, value, dtype=None) -> str:
        """A constant of this node, named `<node>.<suffix>` (float constants take the model's type)."""
        name = f"{self.current.name}.{suffix}"
        array = np.asarray(value, dtype=dtype or self.np_dtype)
        self.initializers[name] = array
        return name

    def emit(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        """Add one ONNX node for the current IR node. The node that produces the IR node's value
        (output given) is named like the IR node; helper nodes are named `<node>/<OpType>`."""
        node = self.current
        name = node.name if output is not None else self._unique(f"{node.name}/{op_type}")
        if output is None:
            output = name
        self._names.add(name)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name,
                                           doc_string=f"{node.span}: {node.op}", **attrs))
        return output

    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        return name


Lowering = Callable[[Emitter, Node, str], None]
LOWERINGS: Lowerings = Lowerings()  # op name -> fn(emitter, node, out), emitting nodes whose last output is `out`
lowering = LOWERINGS.register


# ---------------------------------------------------------------- lowerings, one per op

def _pads(a: dict) -> list[int]:
    return list(a["pad"]) * 2  # ONNX: all begins, then all ends


@lowering("conv")
def _conv(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    inputs = [g.input(n), g.weight(f"{n.name}.weight")]
    if a["bias"]:
        inputs.append(g.weight(f"{n.name}.bias"))
    g.emit("Conv", inputs, out, kernel_shape=a["kernel"], strides=a["stride"], pads=_pads(a),
           dilations=a["dilation"], group=a["groups"])


@lowering("linear")
def _linear(g: Emitter, n: Node, out: str) -> None:
    if "zero_bias" in n.attrs:  # the initializer holds the bias as forward uses it
        start, end = n.attrs["zero_bias"]
        bias = np.array(g.weights[f"{n.name}.bias"])  # a copy: the caller's arrays stay as they are
        bias[start:end] = 0
        g.weights[f"{n.name}.bias"] = bias
    if len(g.shapes[n.inputs[0]]) > 1:  # tokens, channels-last maps: MatMul on the last axis (+ Add)
        matmul_t(g, g.input(n), f"{n.name}.weight", f"{n.name}.bias" if n.attrs["bias"] else None, out)
        return
    inputs = [g.input(n), g.weight(f"{n.name}.weight")]
    if n.attrs["bias"]:
        inputs.append(g.weight(f"{n.name}.bias"))
    g.emit("Gemm", inputs, out, transB=1)


def matmul_t(g: Emitter, x: str, weight: str, bias: str | None, out: str | None = None) -> str:
    """x @ W.T (+ b) on the last axis. The initializer named by the state_dict key holds W transposed, [in, out],
    as torch.onnx.export stores it, so that onnxruntime pre-packs it for MatMul with no Transpose to fold."""
    w = g.weight(weight, np.asarray(g.weights[weight]).T)
    if bias is None:
        return g.emit("MatMul", [x, w], out)
    return g.emit("Add", [g.emit("MatMul", [x, w]), g.weight(bias)], out)


@lowering("bn")
def _bn(g: Emitter, n: Node, out: str) -> None:
    a, c = n.attrs, n.attrs["channels"]
    if g.np_dtype == np.float16:
        # In float16, var + eps and (x - mean) / std lose the small variances; fold the statistics into
        # the affine parameters in float64 instead (mean 0, var 1, eps 0: the node computes x * scale + shift).
        scale, shift = bn_affine(g.weights, n)
        inputs = [g.weight(f"{n.name}.weight", scale), g.weight(f"{n.name}.bias", shift),
                  g.weight(f"{n.name}.running_mean", np.zeros(c)), g.weight(f"{n.name}.running_var", np.ones(c))]
        g.emit("BatchNormalization", [g.input(n), *inputs], out, epsilon=0.0)
        g.nodes[-1].doc_string += " (float16: running statistics folded into weight and bias in float64)"
        return
    if a["affine"]:
        scale, shift = g.weight(f"{n.name}.weight"), g.weight(f"{n.name}.bias")
    else:
        scale, shift = g.const("ones", np.ones(c)), g.const("zeros", np.zeros(c))
    g.emit("BatchNormalization", [g.input(n), scale, shift, g.weight(f"{n.name}.running_mean"),
                                  g.weight(f"{n.name}.running_var")], out, epsilon=float(a["eps"]))


@lowering("lrn")
def _lrn(g: Emitter, n: Node, out: str) -> None:
    a, x = n.attrs, g.input(n)
    size, rank = a["size"], len(g.shapes[n.inputs[0]])
    if size % 2 == 1:  # ONNX LRN centres odd windows as PyTorch does; onnxruntime runs it on 4-d tensors only
        kw = dict(size=size, alpha=float(a["alpha"]), beta=float(a["beta"]), bias=float(a["k"]))
        if rank == 3:
            g.emit("LRN", [x], out, **kw)
        else:
            axes = g.const("axes", [3], np.int64)
            y = g.emit("LRN", [g.emit("Unsqueeze", [x, axes])], **kw)
            g.emit("Squeeze", [y, axes], out)
        return
    # PyTorch puts an even window's extra channel before the centre, ONNX after: sum the squares over
    # PyTorch's window with a banded 1x1 convolution instead. y = x / (k + alpha/size * sum x^2) ** beta
    c = g.shapes[n.inputs[0]][0]
    band = np.zeros((c, c) + (1,) * (rank - 1))
    for i in range(c):
        band[i, max(0, i - size // 2): i + (size - 1) // 2 + 1] = a["alpha"] / size
    sq = g.emit("Mul", [x, x])
    s = g.emit("Conv", [sq, g.const("window", band)], kernel_shape=[1] * (rank - 1))
    d = g.emit("Pow", [g.emit("Add", [s, g.const("k", a["k"])]), g.const("beta", a["beta"])])
    g.emit("Div", [x, d], out)


def _pool(g: Emitter, n: Node, out: str, op_type: str, **extra) -> None:
    a, x = n.attrs, g.input(n)
    size, want = list(g.shapes[n.inputs[0]][1:]), n.shape[1:]
    k, s, p, ceil = a["kernel"], a["stride"], list(a["pad"]), a["ceil"]
    begin, end = list(p), list(p)
    # ONNX's ceil-mode size formula lacks PyTorch's rule that the last window must start inside the
    # input or the left padding, so where that rule applies onnx's shape inference would claim one
    # more output than onnxruntime and PyTorch compute. There, pool without ceil mode and pad the end
    # just enough to reach PyTorch's last window: the windows start at the same places and are
    # clipped to the input as before.
    # With count_include_pad, PyTorch divides by the window clipped to the input and its explicit padding,
    # never by the part that ceil mode hangs past them; so that path too pools without ceil mode.
    if ceil and (extra.get("count_include_pad") or any(
            math.ceil((size[i] + 2 * p[i] - k[i]) / s[i]) + 1 != want[i] for i in range(len(k)))):
        if extra.get("count_include_pad"):
            # Pad with zeros explicitly (they count), then average without counting ONNX's own end padding.
            if any(p):
                x = g.emit("Pad", [x, g.const("pads", [0, 0, *p, 0, 0, *p], np.int64)])
                size, begin = [sz + 2 * pp for sz, pp in zip(size, p)], [0] * len(k)
            extra = {"count_include_pad": 0}
        end = [max(0, (w - 1) * st + kk - sz - b) for w, st, kk, sz, b in zip(want, s, k, size, begin)]
        ceil = False
    g.emit(op_type, [x], out, kernel_shape=k, strides=s, pads=begin + end, ceil_mode=int(ceil), **extra)


@lowering("maxpool")
def _maxpool(g: Emitter, n: Node, out: str) -> None:
    _pool(g, n, out, "MaxPool")


@lowering("avgpool")
def _avgpool(g: Emitter, n: Node, out: str) -> None:
    _pool(g, n, out, "AveragePool", count_include_pad=int(n.attrs["count_include_pad"]))


@lowering("adaptive_avgpool")
def _adaptive(g: Emitter, n: Node, out: str) -> None:
    x, spatial = g.input(n), g.shapes[n.inputs[0]][1:]
    size = n.attrs["size"]
    if list(spatial) == list(size):
        g.emit("Identity", [x], out)
    elif all(o == 1 for o in size):
        g.emit("GlobalAveragePool", [x], out)
    elif all(i % o == 0 for i, o in zip(spatial, size)):
        kernel = [i // o for i, o in zip(spatial, size)]  # even windows: a plain AveragePool
        g.emit("AveragePool", [x], out, kernel_shape=kernel, strides=kernel)
    else:
        # Uneven windows (PyTorch: [floor(i*in/out), ceil((i+1)*in/out))): pooling is linear and
        # separable, so average each spatial axis with a matrix of 1/count entries.
        def matrix(i_size: int, o_size: int) -> np.ndarray:
            m = np.zeros((i_size, o_size))
            for j in range(o_size):
                lo, hi = (j * i_size) // o_size, -((-(j + 1) * i_size) // o_size)
                m[lo:hi, j] = 1.0 / (hi - lo)
            return m
        if len(spatial) == 1:
            g.emit("MatMul", [x, g.const("pool_l", matrix(spatial[0], size[0]))], out)
        elif len(spatial) == 3:  # [N, C, D, H, W]: each axis moved last in turn, pooled, moved back
            y = x
            for axis in (4, 3, 2):
                perm = [0, 1, 2, 3, 4]
                perm[axis], perm[4] = 4, axis
                pooled = g.emit("MatMul", [g.emit("Transpose", [y], perm=perm),
                                           g.const(f"pool_{axis}", matrix(spatial[axis - 2], size[axis - 2]))])
                y = g.emit("Transpose", [pooled], out if axis == 2 else None, perm=perm)
        else:
            y = g.emit("MatMul", [x, g.const("pool_w", matrix(spatial[1], size[1]))])
            g.emit("MatMul", [g.const("pool_h", matrix(spatial[0], size[0]).T), y], out)


@lowering("gap")
def _gap(g: Emitter, n: Node, out: str) -> None:
    g.emit("GlobalAveragePool", [g.input(n)], out)


@lowering("identity", "dropout", "stochastic_depth")
def _identity(g: Emitter, n: Node, out: str) -> None:
    g.emit("Identity", [g.input(n)], out)  # inference: dropout and stochastic depth pass through


@lowering("softmax")
def _softmax(g: Emitter, n: Node, out: str) -> None:
    g.emit("Softmax", [g.input(n)], out, axis=n.attrs["dim"] + 1)


_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


@lowering(*_UNARY)
def _unary(g: Emitter, n: Node, out: str) -> None:
    g.emit(_UNARY[n.op], [g.input(n)], out)


@lowering("relu6")
def _relu6(g: Emitter, n: Node, out: str) -> None:
    g.emit("Clip", [g.input(n), g.const("min", 0.0), g.const("max", 6.0)], out)


@lowering("silu")
def _silu(g: Emitter, n: Node, out: str) -> None:
    x = g.input(n)
    g.emit("Mul", [x, g.emit("Sigmoid", [x])], out)


@lowering("hardsigmoid")
def _hardsigmoid(g: Emitter, n: Node, out: str) -> None:
    g.emit("HardSigmoid", [g.input(n)], out, alpha=1.0 / 6, beta=0.5)  # PyTorch's: relu6(x + 3) / 6


@lowering("hardswish")
def _hardswish(g: Emitter, n: Node, out: str) -> None:
    x = g.input(n)
    if g.opset >= 14:
        g.emit("HardSwish", [x], out)
    else:
        g.emit("Mul", [x, g.emit("HardSigmoid", [x], alpha=1.0 / 6, beta=0.5)], out)


@lowering("gelu")
def _gelu(g: Emitter, n: Node, out: str) -> None:
    x = g.input(n)
    if g.opset >= 20:
        g.emit("Gelu", [x], out)
        return
    # x * (1 + erf(x / sqrt 2)) * 0.5: the exact (erf) form, in the order onnxruntime's GeluFusion matches.
    e = g.emit("Erf", [g.emit("Div", [x, g.const("sqrt2", math.sqrt(2.0))])])
    y = g.emit("Mul", [x, g.emit("Add", [e, g.const("one", 1.0)])])
    g.emit("Mul", [y, g.const("half", 0.5)], out)


@lowering("add", "mul")
def _merge(g: Emitter, n: Node, out: str) -> None:
    op_type = "Add" if n.op == "add" else "Mul"
    names = [g.values[i] for i in n.inputs]
    acc = names[0]
    for k, other in enumerate(names[1:], start=2):  # a left fold, as to_torch computes it
        acc = g.emit(op_type, [acc, other], out if k == len(names) else None)


@lowering("cat")
def _cat(g: Emitter, n: Node, out: str) -> None:
    names = [g.values[i] for i in n.inputs]
    shared = [i in g.shared for i in n.inputs]
    if any(shared) and not all(shared):  # a learnable tensor (batch 1) joins per-sample ones: expand it
        batch = g.emit("Shape", [names[shared.index(False)]], start=0, end=1) if g.opset >= 15 else \
            slice_axis(g, g.emit("Shape", [names[shared.index(False)]]), -1, 0, 1)
        names = [g.emit("Expand", [x, g.emit("Concat", [batch, g.const(f"sample{k}", g.shapes[i], np.int64)],
                                                       axis=0)]) if s else x
                 for k, (x, i, s) in enumerate(zip(names, n.inputs, shared))]
    g.emit("Concat", names, out, axis=n.attrs["dim"] + 1)


# ---------------------------------------------------------------- tensor ops and attention (issue 13)
# Shapes exclude the batch axis: axes are +1 here, and every Reshape copies the batch with a 0 (it stays dynamic).

def reshape(g: Emitter, x: str, shape, out: str | None = None) -> str:
    return g.emit("Reshape", [x, g.const(f"shape{len(g.nodes)}", [0, *shape], np.int64)], out)


@lowering("reshape", "unflatten")
def _reshape(g: Emitter, n: Node, out: str) -> None:
    reshape(g, g.input(n), n.shape, out)


@lowering("permute", "transpose")
def _transpose(g: Emitter, n: Node, out: str) -> None:
    g.emit("Transpose", [g.input(n)], out, perm=[0] + [d + 1 for d in n.attrs["dims"]])


@lowering("select")
def _select(g: Emitter, n: Node, out: str) -> None:
    g.emit("Gather", [g.input(n), g.const("index", n.attrs["index"], np.int64)], out, axis=n.attrs["dim"] + 1)


def slice_axis(g: Emitter, x: str, dim: int, start: int, end: int, step: int = 1, out: str | None = None) -> str:
    """x[..., start:end:step] on sample axis dim."""
    k = len(g.nodes)
    consts = [g.const(f"{what}{k}", [v], np.int64) for what, v in
              (("starts", start), ("ends", end), ("axes", dim + 1), ("steps", step))]
    return g.emit("Slice", [x, *consts], out)


@lowering("slice")
def _slice(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    slice_axis(g, g.input(n), a["dim"], a["start"], a["end"], a["step"], out)


@lowering("roll")
def _roll(g: Emitter, n: Node, out: str) -> None:
    x, shape = g.input(n), g.shapes[n.inputs[0]]
    moves = [(s, d) for s, d in zip(n.attrs["shifts"], n.attrs["dims"]) if s]
    if not moves:
        g.emit("Identity", [x], out)
    for i, (s, d) in enumerate(moves):  # the last s positions move to the front: two slices, one Concat
        size = shape[d]
        tail, head = slice_axis(g, x, d, size - s, size), slice_axis(g, x, d, 0, size - s)
        x = g.emit("Concat", [tail, head], out if i == len(moves) - 1 else None, axis=d + 1)


@lowering("pad")
def _pad(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    g.emit("Pad", [g.input(n), g.const("pads", [0, *a["before"], 0, *a["after"]], np.int64),
                   g.const("value", a["value"])], out, mode="constant")


@lowering("flatten")
def _flatten(g: Emitter, n: Node, out: str) -> None:
    if n.attrs:  # a range of axes
        reshape(g, g.input(n), n.shape, out)
    else:
        g.emit("Flatten", [g.input(n)], out, axis=1)


def layer_norm(g: Emitter, x: str, n: Node, out: str | None) -> str:
    """Layer norm over the last axis: LayerNormalization from opset 17, else its decomposition."""
    a, c = n.attrs, n.attrs["features"]
    scale = g.weight(f"{n.name}.weight") if a["affine"] else g.const("ones", np.ones(c))
    bias = g.weight(f"{n.name}.bias") if a["affine"] else g.const("zeros", np.zeros(c))
    if g.opset >= 17:
        return g.emit("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=float(a["eps"]))
    d = g.emit("Sub", [x, g.emit("ReduceMean", [x], axes=[-1])])
    var = g.emit("ReduceMean", [g.emit("Mul", [d, d])], axes=[-1])
    y = g.emit("Div", [d, g.emit("Sqrt", [g.emit("Add", [var, g.const("eps", a["eps"])])])])
    return g.emit("Add", [g.emit("Mul", [y, scale]), bias], out)


@lowering("layernorm")
def _layernorm(g: Emitter, n: Node, out: str) -> None:
    rank = len(g.shapes[n.inputs[0]]) + 1
    if n.attrs["dim"] == -1:
        layer_norm(g, g.input(n), n, out)
        return
    # over the channels of [N, C, ...]: channels last, normalize, back (as torchvision's LayerNorm2d)
    last = g.emit("Transpose", [g.input(n)], perm=[0, *range(2, rank), 1])
    y = layer_norm(g, last, n, None)
    g.emit("Transpose", [y], out, perm=[0, rank - 1, *range(1, rank - 1)])


@lowering("groupnorm")
def _groupnorm(g: Emitter, n: Node, out: str) -> None:
    a, shape = n.attrs, g.shapes[n.inputs[0]]
    k = a["groups"]
    # InstanceNormalization normalizes each [N, G] row of the grouped view; the per-channel affine follows.
    grouped = reshape(g, g.input(n), [k, -1])
    y = g.emit("InstanceNormalization", [grouped, g.const("ones", np.ones(k)), g.const("zeros", np.zeros(k))],
               epsilon=float(a["eps"]))
    y = reshape(g, y, shape, None if a["affine"] else out)
    if a["affine"]:
        per_channel = [a["channels"]] + [1] * (len(shape) - 1)
        w = g.weight(f"{n.name}.weight", np.asarray(g.weights[f"{n.name}.weight"]).reshape(per_channel))
        b = g.weight(f"{n.name}.bias", np.asarray(g.weights[f"{n.name}.bias"]).reshape(per_channel))
        g.emit("Add", [g.emit("Mul", [y, w]), b], out)


@lowering("learnable")
def _learnable(g: Emitter, n: Node, out: str) -> str:
    """The initializer (named by the label, like the node) is the value: shared by every sample, with a
    batch axis of 1, stored or added here, which broadcasts. Returns the value's name."""
    w = g.weight(n.name)
    return w if n.attrs["batch"] else g.emit("Unsqueeze", [w, g.const("axes", [0], np.int64)])


@lowering("buffer")
def _buffer(g: Emitter, n: Node, out: str) -> str:
    """An initializer named by the label; integer buffers (indices) keep their type in float16 models too."""
    if n.name in g.weights:
        array = np.asarray(g.weights[n.name])
    else:  # not persistent: not in the state_dict, computed by its rule
        from archspec.ops.tensor import Buffer
        values, dtype = Buffer.values(n.attrs)
        array = np.asarray(values, dtype=dtype).reshape(n.attrs["shape"])
    if np.issubdtype(array.dtype, np.integer):
        g.initializers[n.name] = np.ascontiguousarray(array, dtype=np.int64)
        w = n.name
    else:
        w = g.weight(n.name)
    return g.emit("Unsqueeze", [w, g.const("axes", [0], np.int64)])


@lowering("take")
def _take(g: Emitter, n: Node, out: str) -> None:
    table, index = (g.values[i] for i in n.inputs)
    flat = g.emit("Reshape", [index, g.const("flat", [-1], np.int64)])
    rows = g.emit("Gather", [table, flat], axis=1)
    reshape(g, rows, n.shape, out)


@lowering("matmul")
def _matmul(g: Emitter, n: Node, out: str) -> None:
    g.emit("MatMul", [g.values[i] for i in n.inputs], out)


def attention(g: Emitter, q: str, k: str, v: str, rank: int, scale: float, bias: str | None = None,
              out: str | None = None) -> str:
    """softmax(q kᵀ * scale + bias) v of [..., L, E] tensors of `rank` axes (batch included); the scale
    multiplies q, the smaller operand."""
    kt = g.emit("Transpose", [k], perm=[*range(rank - 2), rank - 1, rank - 2])
    s = g.emit("MatMul", [g.emit("Mul", [q, g.const(f"scale{len(g.nodes)}", scale)]), kt])
    if bias is not None:
        s = g.emit("Add", [s, bias])
    return g.emit("MatMul", [g.emit("Softmax", [s], axis=-1), v], out)


@lowering("sdpa")
def _sdpa(g: Emitter, n: Node, out: str) -> None:
    a, h = n.attrs, n.attrs["heads"]
    names = [g.values[i] for i in n.inputs]
    shapes = [g.shapes[i] for i in n.inputs]
    if h == 1:
        attention(g, *names[:3], len(shapes[0]) + 1, a["scale"], names[3] if len(names) == 4 else None, out)
        return
    split = []
    for name, shape in zip(names[:3], shapes):  # [..., L, E] -> [..., h, L, E/h]
        r = len(shape) + 1
        y = reshape(g, name, [*shape[:-1], h, shape[-1] // h])
        split.append(g.emit("Transpose", [y], perm=[*range(r - 2), r - 1, r - 2, r]))
    y = attention(g, *split, len(shapes[0]) + 2, a["scale"], names[3] if len(names) == 4 else None)
    r = len(n.shape) + 2
    y = g.emit("Transpose", [y], perm=[*range(r - 3), r - 2, r - 3, r - 1])
    reshape(g, y, n.shape, out)


@lowering("multihead_attention")
def _mha(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    length, d = g.shapes[n.inputs[0]]
    h = a["heads"]
    bias = a["bias"]
    qkv = matmul_t(g, g.input(n), f"{n.name}.in_proj_weight", f"{n.name}.in_proj_bias" if bias else None)
    # [N, L, 3D] -> [3, N, h, L, D/h]: q, k and v in one Transpose, then one Split
    qkv = g.emit("Transpose", [reshape(g, qkv, [length, 3, h, d // h])], perm=[2, 0, 3, 1, 4])
    split = g.const("split", [1, 1, 1], np.int64)
    parts = [f"{n.name}/{w}" for w in "qkv"]
    g.nodes.append(helper.make_node("Split", [qkv, split], parts, name=g._unique(f"{n.name}/Split"), axis=0,
                                    doc_string=f"{n.span}: {n.op}"))
    axes = g.const("axes0", [0], np.int64)
    q, k, v = (g.emit("Squeeze", [p, axes]) for p in parts)
    y = attention(g, q, k, v, 4, (d // h) ** -0.5)
    y = reshape(g, g.emit("Transpose", [y], perm=[0, 2, 1, 3]), [length, d])
    matmul_t(g, y, f"{n.name}.out_proj.weight", f"{n.name}.out_proj.bias" if bias else None, out)


# batch-norm folding: compiler/fold.py (shared with the torch inference build)


# ---------------------------------------------------------------- weights

def _weights(arch: Architecture, module, state_dict) -> dict[str, np.ndarray]:
    """The weights as numpy arrays: from a module, a state_dict (checked against the spec by
    to_torch, errors at spec positions), or initialised as to_torch would."""
    if module is None:
        from .torch import to_torch
        module = to_torch(arch, weights=state_dict)
    return {k: to_numpy(v) for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- the model

def _check_ops(arch: Architecture) -> None:
    missing = [n for n in arch.nodes if n.op not in LOWERINGS]
    if missing:
        raise SpecError([Diagnostic(f"op '{n.op}' has no ONNX lowering", n.span.pos(),
                                    "add one in compiler/onnx.py (LOWERINGS)") for n in missing])


def _metadata(arch: Architecture) -> dict[str, str]:
    return {
        "archspec.name": arch.name,
        "archspec.variant": arch.variant or "",
        "archspec.params": json.dumps(arch.params, sort_keys=True, separators=(",", ":")),
        "archspec.version": archspec.__version__,
        "archspec.source": arch.source,
        "archspec.inputs": json.dumps({i.name: list(i.shape) for i in arch.inputs}, separators=(",", ":")),
    }


def to_onnx(arch: Architecture, path: str | Path | None = None, module=None, state_dict=None, opset: int = 17,
            dynamic_batch: bool = True, dtype: str = "float32", fold_bn: bool = False) -> onnx.ModelProto:
    """Emit an ONNX model for an Architecture (and write it to `path` if given).

    Weights come from `module` (an nn.Module from to_torch), else `state_dict` (a dict or a file, checked
    against the spec), else a fresh `to_torch(arch)`. dtype: "float32" or "float16" (weights and IO).
    fold_bn: fold each batch norm that follows a conv or linear into it (inference only).
    The batch axis is named "batch" and dynamic unless dynamic_batch is False (then 1)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")
    _check_ops(arch)
    weights = _weights(arch, module, state_dict)
    folded = foldable_bn(arch) if fold_bn else {}
    if folded:
        weights = fold(weights, arch, folded)
    g = Emitter(arch, weights, opset, dtype)

    # The value of an output node is named like the output (unless another value already has that name).
    taken = {i.name for i in arch.inputs} | {n.name for n in arch.nodes}
    renamed: dict[str, str] = {}
    for o in arch.outputs:
        if not o.training and o.node not in renamed and (o.name == o.node or o.name not in taken):
            renamed[o.node] = o.name
    into = {layer: bn for bn, layer in folded.items()}  # conv/linear -> the bn folded into it

    training = arch.training_only()  # ONNX is inference: training outputs and what only they need are left out
    for node in arch.nodes:
        g.current = node
        if node.name in folded or node.name in training:  # folded: its conv already computed it
            continue
        target = into.get(node.name, node.name)
        out = renamed.get(target, target)
        if node.name in into:  # a conv/linear that now ends in its bn: give it the bn's value name
            conv = dataclasses.replace(node, attrs={**node.attrs, "bias": True})
            LOWERINGS[node.op](g, conv, out)
            g.nodes[-1].doc_string += f" (batch norm {target} folded in)"
            g.values[target] = out
        else:
            out = LOWERINGS[node.op](g, node, out) or out  # a learnable tensor's value is its initializer
        g.values[node.name] = out

    batch = "batch" if dynamic_batch else 1
    outputs = []
    for o in arch.outputs:
        if o.training:
            continue
        value = g.values[o.node]
        if value != o.name:  # two outputs of one node, or a name clash: a named Identity
            g.current = arch.node(o.node)
            value = g.emit("Identity", [value], o.name)
        outputs.append(helper.make_tensor_value_info(o.name, g.onnx_dtype, [batch, *arch.node(o.node).shape]))
    inputs = [helper.make_tensor_value_info(i.name, g.onnx_dtype, [batch, *i.shape]) for i in arch.inputs]
    for vi, i in zip(inputs, arch.inputs):
        vi.doc_string = str(i.span)

    # Built in place: helper.make_graph/make_model would copy every initializer twice (seconds for VGG).
    model = onnx.ModelProto()
    model.opset_import.add(domain="", version=opset)
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    model.producer_name, model.producer_version = "archspec", archspec.__version__
    model.doc_string = f"{arch.title}: generated by archspec {archspec.__version__}"
    graph = model.graph
    graph.name, graph.doc_string = arch.title, f"{arch.title}, from {arch.source}"
    graph.node.extend(g.nodes)
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    for name, array in g.initializers.items():
        tensor = graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    helper.set_model_props(model, dict(sorted(_metadata(arch).items())))
    if path is not None:
        save(model, path)
    return model


# Models with more initializer bytes than this keep their weights in an external data file beside the model
# (PATH.data): protobuf cannot serialize a message over 2 GB.
EXTERNAL_DATA_BYTES = 1_800_000_000


def save(model: onnx.ModelProto, path: str | Path) -> None:
    """Write a model atomically (a temporary file renamed into place), its weights in PATH.data when they
    pass EXTERNAL_DATA_BYTES (the model then refers to that file by name: it no longer holds them)."""
    path = Path(path)
    if sum(len(t.raw_data) for t in model.graph.initializer) < EXTERNAL_DATA_BYTES:
        write_atomic(path, model.SerializeToString())
        return
    with atomic_folder(path) as tmp:
        onnx.save_model(model, str(tmp / path.name), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)


def compare_outputs(arch: Architecture, module, path: str | Path, dtype: str = "float32", seed: int = 0) -> float:
    """Run `module` (torch) and the model at `path` (onnxruntime, CPU) on one random sample and compare every
    output; SpecError when they disagree. Returns the largest difference relative to the outputs' scale."""
    import onnxruntime as ort
    import torch
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((1, *i.shape)).astype(np.float32) for i in arch.inputs]
    with torch.no_grad():
        ys = module.eval()(*[torch.from_numpy(x) for x in xs])
    ys = [y.numpy() for y in (ys if isinstance(ys, tuple) else (ys,))]
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    np_type = DTYPES[dtype][0]
    got = sess.run(None, {i.name: x.astype(np_type) for i, x in zip(arch.inputs, xs)})
    tolerance = 1e-3 if dtype == "float32" else 5e-2
    worst = 0.0
    for o, want, have in zip(arch.outputs, ys, got):
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        err = float(np.abs(want - have.astype(np.float32)).max(initial=0.0)) / scale
        if not err <= tolerance:  # NaN fails too
            raise SpecError(f"onnxruntime and PyTorch disagree on output '{o.name}': largest difference "
                            f"{err:.3g} of the output's scale (tolerance {tolerance:g})",
                            hint="this is a bug in compiler/onnx.py; please report it with the spec "
                                 "(--no-compare skips this check)")
        worst = max(worst, err)
    return worst


# ---------------------------------------------------------------- verification

def compare_shapes(arch: Architecture, model: onnx.ModelProto) -> tuple[int, list[Diagnostic]]:
    """Run onnx shape inference and compare the shape of each IR node's value with the IR's.
    Returns (values compared, one diagnostic per mismatch, at the node's spec position)."""
    # Clear the declared output shapes (on a copy) so inference reports its own for them too.
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    for o in bare.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(bare, data_prop=True)  # symbolic batch through Shape -> Expand
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in t.shape.dim]
    # Each IR node's value is the first output of the ONNX node named like it (a folded conv's is
    # its bn's value, of the same shape).
    produced = {n.name: n.output[0] for n in inferred.graph.node}
    batch = shapes.get(model.graph.output[0].name, ["batch"])[0] if model.graph.output else "batch"
    compared, diags, wrong = 0, [], set()
    shared = shared_values(arch.nodes)  # computed from learnable tensors and buffers alone: batch 1
    for node in arch.nodes:
        value = produced.get(node.name)
        if value is None:  # a folded batch norm: it inherits its conv's verdict
            if any(i in wrong for i in node.inputs):
                wrong.add(node.name)
            continue
        compared += 1
        want = [1 if node.name in shared else batch, *node.shape]
        got = shapes.get(value)
        if got != want:
            wrong.add(node.name)
            if any(i in wrong for i in node.inputs):
                continue  # a consequence of an earlier mismatch: report the causes only
            what = "no shape" if got is None else f"shape {got}"
            diags.append(Diagnostic(f"onnx infers {what} for '{node.name}' ({node.op}), the IR has {want}",
                                    node.span.pos(),
                                    f"the ONNX lowering of '{node.op}' disagrees with the op table's shape rule "
                                    f"(compiler/onnx.py)"))
    return compared, diags


def check(arch: Architecture, model: onnx.ModelProto | str | Path) -> int:
    """Compare inferred shapes with the IR's (SpecError listing the mismatches), then run the full
    onnx checker (SpecError on failure). Returns the number of values compared."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    compared, diags = compare_shapes(arch, proto)
    if diags:
        raise SpecError(diags)
    try:
        # A path lets the checker handle models over protobuf's 2 GB limit.
        onnx.checker.check_model(proto if isinstance(model, onnx.ModelProto) else str(model), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"the exported model fails onnx's checker: {first}",
                        hint="this is a bug in compiler/onnx.py; please report it with the spec") from None
    return compared


# ---------------------------------------------------------------- windowed attention's pieces (archspec/ops/window.py)

@lowering("shifted_window_mask")
def _shifted_window_mask(g: Emitter, n: Node, out: str) -> str:
    """The mask computed by its rule (it is in no state_dict): an initializer named like the node, shared by
    every sample with a batch axis of 1."""
    from archspec.ops.window import ShiftedWindowMask
    g.initializers[n.name] = np.asarray(ShiftedWindowMask.values(n.attrs), dtype=g.np_dtype).reshape(1, *n.shape)
    return n.name


@lowering("normalize")
def _normalize(g: Emitter, n: Node, out: str) -> None:
    x, axis = g.input(n), n.attrs["dim"] + 1
    half = g.onnx_dtype == TensorProto.FLOAT16
    if half:  # a sum of squares overflows float16 long before the values do: normalize in float32
        x = g.emit("Cast", [x], to=TensorProto.FLOAT)
    if g.opset >= 18:  # axes became an input
        norm = g.emit("ReduceL2", [x, g.const("axes", [axis], np.int64)], keepdims=1)
    else:
        norm = g.emit("ReduceL2", [x], axes=[axis], keepdims=1)
    eps = g.const("eps", n.attrs["eps"], np.float32 if half else None)
    y = g.emit("Div", [x, g.emit("Max", [norm, eps])], None if half else out)
    if half:
        g.emit("Cast", [y], out, to=TensorProto.FLOAT16)


@lowering("clamp")
def _clamp(g: Emitter, n: Node, out: str) -> None:
    bounds = [g.const(k, n.attrs[k]) if n.attrs[k] is not None else "" for k in ("min", "max")]
    g.emit("Clip", [g.input(n), *bounds], out)


@lowering("exp")
def _exp(g: Emitter, n: Node, out: str) -> None:
    g.emit("Exp", [g.input(n)], out)


@lowering("scale")
def _scale(g: Emitter, n: Node, out: str) -> None:
    g.emit("Mul", [g.input(n), g.const("factor", n.attrs["factor"])], out)


from . import onnx_cnn  # noqa: E402,F401  (registers issue 14's lowerings in LOWERINGS)

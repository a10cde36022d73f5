"""ONNX backend: an archspec IR -> an `onnx.ModelProto`, emitted directly with `onnx.helper`.

    from compiler import to_onnx
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
from archspec.errors import Diagnostic, Pos, SpecError
from archspec.ir import Architecture, Node

__all__ = ["DTYPES", "LOWERINGS", "Emitter", "check", "compare_shapes", "foldable_bn", "to_onnx"]

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
LOWERINGS: dict[str, Lowering] = {}


def lowering(*ops: str):
    """Register the ONNX lowering of ops: fn(emitter, node, out) emits nodes whose last output is `out`."""
    def wrap(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
        return fn
    return wrap


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
    inputs = [g.input(n), g.weight(f"{n.name}.weight")]
    if n.attrs["bias"]:
        inputs.append(g.weight(f"{n.name}.bias"))
    g.emit("Gemm", inputs, out, transB=1)


def bn_affine(weights: dict, n: Node) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm at inference as y = x * scale + shift, computed in float64."""
    c = n.attrs["channels"]
    gamma = weights.get(f"{n.name}.weight", np.ones(c)) if n.attrs["affine"] else np.ones(c)
    beta = weights.get(f"{n.name}.bias", np.zeros(c)) if n.attrs["affine"] else np.zeros(c)
    mean = np.asarray(weights[f"{n.name}.running_mean"], np.float64)
    var = np.asarray(weights[f"{n.name}.running_var"], np.float64)
    scale = np.asarray(gamma, np.float64) / np.sqrt(var + n.attrs["eps"])
    return scale, np.asarray(beta, np.float64) - mean * scale


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
    if ceil and any(math.ceil((size[i] + 2 * p[i] - k[i]) / s[i]) + 1 != want[i] for i in range(len(k))):
        if extra.get("count_include_pad") and any(p):
            # PyTorch divides by the window clipped to the padded input: pad with zeros explicitly,
            # then average without counting ONNX's own (end) padding.
            x = g.emit("Pad", [x, g.const("pads", [0, 0, *p, 0, 0, *p], np.int64)])
            size, begin, extra = [sz + 2 * pp for sz, pp in zip(size, p)], [0] * len(k), {"count_include_pad": 0}
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


@lowering("flatten")
def _flatten(g: Emitter, n: Node, out: str) -> None:
    g.emit("Flatten", [g.input(n)], out, axis=1)


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
    g.emit("Concat", [g.values[i] for i in n.inputs], out, axis=n.attrs["dim"] + 1)


# ---------------------------------------------------------------- batch-norm folding

def foldable_bn(arch: Architecture) -> dict[str, str]:
    """bn node -> the conv or linear node it can be folded into: the bn's input is read by nothing else
    and is not a graph output."""
    readers: dict[str, int] = {}
    for node in arch.nodes:
        for i in node.inputs:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.node for o in arch.outputs}
    ops = {node.name: node.op for node in arch.nodes}
    return {node.name: node.inputs[0] for node in arch.nodes
            if node.op == "bn" and ops.get(node.inputs[0]) in ("conv", "linear")
            and readers[node.inputs[0]] == 1 and node.inputs[0] not in outputs}


def _fold(weights: dict[str, np.ndarray], arch: Architecture, pairs: dict[str, str]) -> dict[str, np.ndarray]:
    """Weights with each folded bn's scale and shift moved into its conv/linear (in float64)."""
    out = dict(weights)
    for bn_name, layer in pairs.items():
        scale, shift = bn_affine(weights, arch.node(bn_name))
        w = np.asarray(weights[f"{layer}.weight"], np.float64)
        b = np.asarray(weights.get(f"{layer}.bias", np.zeros(w.shape[0])), np.float64)
        out[f"{layer}.weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        out[f"{layer}.bias"] = b * scale + shift
    return out


# ---------------------------------------------------------------- weights

def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; bfloat16 has no numpy type
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _weights(arch: Architecture, module, state_dict) -> dict[str, np.ndarray]:
    """The weights as numpy arrays: from a module, a state_dict (checked against the spec by
    to_torch, errors at spec positions), or initialised as to_torch would."""
    if module is None:
        from .torch import to_torch
        module = to_torch(arch, weights=state_dict)
    return {k: _numpy(v) for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- the model

def _check_ops(arch: Architecture) -> None:
    missing = [n for n in arch.nodes if n.op not in LOWERINGS]
    if missing:
        raise SpecError([Diagnostic(f"op '{n.op}' has no ONNX lowering", Pos(n.span.file, n.span.line, n.span.col),
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
        weights = _fold(weights, arch, folded)
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
            LOWERINGS[node.op](g, node, out)
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
        Path(path).write_bytes(model.SerializeToString())
    return model


# ---------------------------------------------------------------- verification

def compare_shapes(arch: Architecture, model: onnx.ModelProto) -> tuple[int, list[Diagnostic]]:
    """Run onnx shape inference and compare the shape of each IR node's value with the IR's.
    Returns (values compared, one diagnostic per mismatch, at the node's spec position)."""
    # Clear the declared output shapes (on a copy) so inference reports its own for them too.
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    for o in bare.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(bare)
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
    for node in arch.nodes:
        value = produced.get(node.name)
        if value is None:  # a folded batch norm: it inherits its conv's verdict
            if any(i in wrong for i in node.inputs):
                wrong.add(node.name)
            continue
        compared += 1
        want = [batch, *node.shape]
        got = shapes.get(value)
        if got != want:
            wrong.add(node.name)
            if any(i in wrong for i in node.inputs):
                continue  # a consequence of an earlier mismatch: report the causes only
            what = "no shape" if got is None else f"shape {got}"
            diags.append(Diagnostic(f"onnx infers {what} for '{node.name}' ({node.op}), the IR has {want}",
                                    Pos(node.span.file, node.span.line, node.span.col),
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


from . import onnx_cnn  # noqa: E402,F401  (registers issue 14's lowerings in LOWERINGS)

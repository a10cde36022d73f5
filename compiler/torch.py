"""PyTorch backend: an archspec IR -> a `torch.nn.Module` with torchvision-style names.

    from archspec_compiler import to_torch
    model = to_torch(archspec.load("resnet50"))              # fresh weights, the spec's init schemes
    model = to_torch(arch, weights="resnet50.pth")          # a state_dict file, loaded safely

    feats = to_torch(arch, outputs=["layer2", "layer3", "layer4"])  # forward returns {name: tensor}
    fast = to_torch(arch, weights=..., inference=True)     # BN folded into convs (compiler/fold.py)

Submodules are named by node names (`layer1.0.conv1` lives at `layer1 -> 0 -> conv1`) and registered
in the order the nodes appear, so `state_dict()` keys and order match a hand-written model. The tree
is planned from the names alone (compiler/plan.py): a scope that runs as a unit is a module with its
own forward (`Block`, an fx.GraphModule: straight-line code generated from an fx.Graph), so hooks on
it fire; a chain is an nn.Sequential; the rest are leaves. Ops in MERGES are functions, not modules;
`learnable` and `buffer` (archspec.ops.tensor.SOURCES) are an nn.Parameter / a buffer (stored or not)
of their container at their label, with a batch axis of 1 that the forward unsqueezes (expanded where
a cat joins them to per-sample values). An `order` statement sets a container's registration order.

One table, `LOWERINGS`, maps every op of `archspec.ops.REGISTRY` to a builder that returns a
`ModuleSpec` (class + constructor arguments); the same spec builds the module here and writes the
constructor call in the standalone source emitter (compiler/pysource.py).
"""
from __future__ import annotations

import copy
import keyword
import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.fx as fx
from torch import nn

from archspec.errors import Diagnostic, SpecError
from archspec import graph as graph_passes
from archspec.graph import inplace_adds
from archspec.ir import Architecture, Node
from archspec.ops.tensor import SOURCES, shared_values

from .lowerings import Lowerings
from .plan import ROOT, Plan, plan
from .standalone import (CUSTOM_MODULES, Container, StochasticDepth, init_default_zero_bias, init_kaiming_normal_fan_in,
                         init_kaiming_normal_fan_out, init_kaiming_uniform, init_normal_001, init_ones_zeros,
                         init_trunc_normal_001, init_trunc_normal_002, init_uniform_fan_out, init_xavier_uniform)

__all__ = ["LOWERINGS", "MERGES", "INIT", "ModuleSpec", "StochasticDepth", "build_module", "load_weights",
           "lower_module", "to_torch"]


# ---------------------------------------------------------------- the op table's torch lowering

@dataclass(frozen=True)
class ModuleSpec:
    """A module constructor call: `nn.<cls>(*args, **kwargs)` or a custom class of compiler/standalone.py."""

    cls: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @property
    def is_parameter(self) -> bool:
        """A learnable tensor (`learnable`: an nn.Parameter) that the enclosing container owns at the node's
        name (ViT's class_token), not a module."""
        return self.cls == "learnable"

    @property
    def is_buffer(self) -> bool:
        """A tensor computed by a rule (`buffer`), registered as a buffer of the enclosing container."""
        return self.cls == "buffer"

    def build(self) -> nn.Module | torch.Tensor:
        ctor = CUSTOM_MODULES.get(self.cls) or getattr(nn, self.cls)
        return ctor(*self.args, **self.kwargs)


Builder = Callable[[dict, tuple], ModuleSpec]
LOWERINGS: Lowerings = Lowerings()  # op name -> builder(attrs, input_shape) -> ModuleSpec
lowering = LOWERINGS.register


def _one(values: list[int]) -> int | tuple[int, ...]:
    """One int when every axis agrees (as torchvision writes it), else a tuple."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def _dim(shape: tuple, name: str) -> str:
    """nn.Conv1d/2d-style suffix from the sample's rank (shapes exclude the batch axis)."""
    spatial = len(shape) - 1
    if spatial not in (1, 2, 3):
        raise ValueError(f"{name} needs a [C, L], [C, H, W] or [C, D, H, W] input, got {list(shape)}")
    return f"{spatial}d"


@lowering("conv")
def _conv(a, shape):
    kw = {"kernel_size": _one(a["kernel"])}
    if any(s != 1 for s in a["stride"]):
        kw["stride"] = _one(a["stride"])
    if any(a["pad"]):
        kw["padding"] = _one(a["pad"])
    if any(d != 1 for d in a["dilation"]):
        kw["dilation"] = _one(a["dilation"])
    if a["groups"] != 1:
        kw["groups"] = a["groups"]
    if not a["bias"]:
        kw["bias"] = False
    return ModuleSpec("Conv" + _dim(shape, "conv"), (a["in"], a["out"]), kw)


@lowering("linear")
def _linear(a, shape):
    if "zero_bias" in a:
        return ModuleSpec("LinearZeroBias", (a["in"], a["out"], *a["zero_bias"]))
    return ModuleSpec("Linear", (a["in"], a["out"]), {} if a["bias"] else {"bias": False})


@lowering("bn")
def _bn(a, shape):
    kw = {}
    if a["eps"] != 1e-5:
        kw["eps"] = a["eps"]
    if a["momentum"] != 0.1:
        kw["momentum"] = a["momentum"]
    if not a["affine"]:
        kw["affine"] = False
    # [F] and [C, L] both use BatchNorm1d.
    return ModuleSpec("BatchNorm1d" if len(shape) <= 2 else "BatchNorm" + _dim(shape, "bn"), (a["channels"],), kw)


@lowering("lrn")
def _lrn(a, shape):
    return ModuleSpec("LocalResponseNorm", (a["size"],), {"alpha": a["alpha"], "beta": a["beta"], "k": a["k"]})


def _pool_kwargs(a) -> dict:
    kw = {"kernel_size": _one(a["kernel"]), "stride": _one(a["stride"])}
    if any(a["pad"]):
        kw["padding"] = _one(a["pad"])
    if a["ceil"]:
        kw["ceil_mode"] = True
    return kw


@lowering("maxpool")
def _maxpool(a, shape):
    return ModuleSpec("MaxPool" + _dim(shape, "maxpool"), (), _pool_kwargs(a))


@lowering("avgpool")
def _avgpool(a, shape):
    kw = _pool_kwargs(a)
    if not a["count_include_pad"]:
        kw["count_include_pad"] = False
    return ModuleSpec("AvgPool" + _dim(shape, "avgpool"), (), kw)


@lowering("adaptive_avgpool")
def _adaptive(a, shape):
    return ModuleSpec("AdaptiveAvgPool" + _dim(shape, "adaptive_avgpool"), (_one(a["size"]),))


@lowering("gap")
def _gap(a, shape):
    return ModuleSpec("AdaptiveAvgPool" + _dim(shape, "gap"), (1,))


@lowering("flatten")
def _flatten(a, shape):
    if not a:
        return ModuleSpec("Flatten", (1,))
    return ModuleSpec("Flatten", (a["start"] + 1, a["end"] + 1))


@lowering("reshape")
def _reshape(a, shape):
    return ModuleSpec("Reshape", (tuple(a["shape"]),))


@lowering("unflatten")
def _unflatten(a, shape):
    return ModuleSpec("Unflatten", (a["dim"] + 1, tuple(a["sizes"])))


@lowering("permute", "transpose")
def _permute(a, shape):
    return ModuleSpec("Permute", (a["dims"],))


@lowering("select")
def _select(a, shape):
    return ModuleSpec("Select", (a["dim"], a["index"]))


@lowering("slice")
def _slice(a, shape):
    return ModuleSpec("Slice", (a["dim"], a["start"], a["end"]) + ((a["step"],) if a["step"] != 1 else ()))


@lowering("roll")
def _roll(a, shape):
    return ModuleSpec("Roll", (a["shifts"], a["dims"]))


@lowering("pad")
def _pad(a, shape):
    pads = [p for b, e in zip(reversed(a["before"]), reversed(a["after"])) for p in (b, e)]
    while len(pads) > 2 and pads[-2:] == [0, 0]:  # torch's short form: leading axes without padding are left out
        pads = pads[:-2]
    return ModuleSpec("Pad", (pads,), {"value": a["value"]} if a["value"] else {})


@lowering("layernorm")
def _layernorm(a, shape):
    kw = {"eps": a["eps"]} if a["eps"] != 1e-5 else {}
    if not a["affine"]:
        kw["elementwise_affine"] = False
    return ModuleSpec("LayerNorm2d" if a["dim"] == 0 else "LayerNorm", (a["features"],), kw)


@lowering("groupnorm")
def _groupnorm(a, shape):
    kw = {"eps": a["eps"]} if a["eps"] != 1e-5 else {}
    if not a["affine"]:
        kw["affine"] = False
    return ModuleSpec("GroupNorm", (a["groups"], a["channels"]), kw)


@lowering("multihead_attention")
def _mha(a, shape):
    kw = {"dropout": a["dropout"]} if a["dropout"] else {}
    if not a["bias"]:
        kw["bias"] = False
    return ModuleSpec("SelfAttention", (a["dim"], a["heads"]), kw)


@lowering("learnable")
def _learnable(a, shape):
    """Not a module: the nn.Parameter registered at the label's path (see assemble)."""
    kw = {"init": a["init"]} if a["init"] != "zeros" else {}
    if a["init"] == "constant":
        kw["value"] = a["value"]
    if a["init"] in ("normal", "trunc_normal"):
        kw["std"] = a["std"]
    return ModuleSpec("learnable", (_stored(a),), kw)


@lowering("buffer")
def _buffer(a, shape):
    from archspec.ops.tensor import Buffer
    values, dtype = Buffer.values(a)
    return ModuleSpec("buffer", (values, dtype, list(a["shape"])))


def _stored(a) -> list[int]:
    return [1, *a["shape"]] if a["batch"] else list(a["shape"])


@lowering("dropout")
def _dropout(a, shape):
    return ModuleSpec("Dropout", (a["p"],))


@lowering("stochastic_depth")
def _stochastic_depth(a, shape):
    return ModuleSpec("StochasticDepth", (a["p"], "row" if a["row"] else "batch"))


@lowering("softmax")
def _softmax(a, shape):
    return ModuleSpec("Softmax", (), {"dim": a["dim"] + 1})  # +1: the batch axis


_ACTIVATIONS = {"identity": "Identity", "relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "gelu": "GELU",
                "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid"}
# Activations torchvision runs in place; we do too where no other node reads the input.
INPLACE = {"relu", "relu6", "silu", "hardswish", "hardsigmoid"}
# Ops whose result may share memory with their input (see inplace_nodes): the identities in eval mode, torch's
# views (an in-place activation on a reshape would write into the reshaped tensor, which others may read), and
# learnable/buffer (an expanded parameter).
ALIASING = {"identity", "dropout", "stochastic_depth", "flatten", "unflatten", "reshape", "permute", "transpose",
            "select", "slice", "chunk", "split", "center_crop", "channel_shuffle", "learnable", "buffer"}

for _op, _cls in _ACTIVATIONS.items():
    LOWERINGS[_op] = (lambda cls: lambda a, shape: ModuleSpec(cls))(_cls)


# Merges are functions. Each entry: (fx/source function, how to call it). `cat` takes a list and a dim.
@dataclass(frozen=True)
class Merge:
    fn: Callable
    source_name: str  # the function's name in the emitted source (compiler/pysource.py)

    def fx(self, graph: fx.Graph, args: list, attrs: dict) -> fx.Node:
        if self.fn is torch.cat:
            return graph.call_function(torch.cat, (list(args),), {"dim": attrs["dim"] + 1})
        out = args[0]
        for other in args[1:]:  # n-ary add/mul: a left fold, as hand-written code would do
            out = graph.call_function(self.fn, (out, other))
        return out


class MatMul(Merge):
    """matmul(a, b): torch.matmul, which broadcasts the leading axes."""

    def fx(self, graph, args, attrs):
        return graph.call_function(torch.matmul, tuple(args))


class Attention(Merge):
    """sdpa(q, k, v[, bias]): F.scaled_dot_product_attention, with heads split off the width and joined back."""

    def fx(self, graph, args, attrs):
        h = attrs["heads"]
        q, k, v = (graph.call_method("transpose", (graph.call_method("unflatten", (t, -1, (h, -1))), -3, -2))
                   if h > 1 else t for t in args[:3])
        kw = {"scale": attrs["scale"]}
        if len(args) == 4:
            kw["attn_mask"] = args[3]
        y = graph.call_function(nn.functional.scaled_dot_product_attention, (q, k, v), kw)
        return graph.call_method("flatten", (graph.call_method("transpose", (y, -3, -2)), -2)) if h > 1 else y


class Take(Merge):
    """take(table, index): table[index] on the sample's first axis; the index (a buffer) has a batch axis of 1."""

    def fx(self, graph, args, attrs):
        flat = graph.call_method("flatten", (args[1],))
        rows = graph.call_function(torch.index_select, (args[0], 1, flat))
        return graph.call_method("unflatten", (rows, 1, tuple(attrs["index"])))


MERGES: dict[str, Merge] = {"take": Take(torch.index_select, "torch.index_select"), "add": Merge(torch.add, "torch.add"), "mul": Merge(torch.mul, "torch.mul"),
                            "cat": Merge(torch.cat, "torch.cat"), "matmul": MatMul(torch.matmul, "torch.matmul"),
                            "sdpa": Attention(nn.functional.scaled_dot_product_attention, "sdpa")}


def lower_module(op: str, attrs: dict, input_shape: tuple) -> ModuleSpec:
    """The ModuleSpec for one op (KeyError for an op without a torch lowering)."""
    return LOWERINGS[op](attrs, tuple(input_shape))


def build_module(op: str, attrs: dict, input_shape: tuple) -> nn.Module:
    """op name + normalised IR attrs + input shape (no batch) -> a fresh nn.Module."""
    return lower_module(op, attrs, input_shape).build()


# ---------------------------------------------------------------- initialisation schemes

# scheme name (archspec.ir.INIT_SCHEMES) -> function(module); "default" keeps PyTorch's own.
INIT: dict[str, Callable[[nn.Module], None] | None] = {
    "default": None,
    "kaiming_normal_fan_out": init_kaiming_normal_fan_out,
    "kaiming_normal_fan_in": init_kaiming_normal_fan_in,
    "kaiming_uniform": init_kaiming_uniform,
    "xavier_uniform": init_xavier_uniform,
    "normal_0.01": init_normal_001,
    "uniform_fan_out": init_uniform_fan_out,
    "ones_zeros": init_ones_zeros,
    "trunc_normal_0.01": init_trunc_normal_001,
    "trunc_normal_0.02": init_trunc_normal_002,
    "default_zero_bias": init_default_zero_bias,
}


def init_scheme(arch: Architecture, op: str) -> Callable[[nn.Module], None] | None:
    return INIT[arch.init.get(op, "default")]


def apply_init(arch: Architecture, module: nn.Module) -> None:
    """Apply the spec's `init OP = "scheme"` declarations to the modules of those ops."""
    if not arch.init:
        return
    for node in arch.nodes:
        fn = init_scheme(arch, node.op)
        if fn is None or node.op in MERGES or node.op in SOURCES:  # sources: tensors of their container
            continue
        m = module.get_submodule(node.name)
        if getattr(m, "weight", None) is not None:  # a bn without affine has nothing to initialise
            fn(m)


# ---------------------------------------------------------------- building the module

def module_specs(arch: Architecture) -> list[tuple[Node, ModuleSpec]]:
    """(node, ModuleSpec) for every non-merge node, in IR order. SpecError for an op without a lowering."""
    shapes = arch.shapes()
    out, errors = [], []
    for node in arch.nodes:
        if node.op in MERGES:
            continue
        if node.op not in LOWERINGS:
            errors.append(Diagnostic(f"op '{node.op}' has no PyTorch lowering", node.span.pos(),
                                     "add a builder to compiler/torch.py's LOWERINGS"))
            continue
        try:
            shape = shapes[node.inputs[0]] if node.inputs else node.shape  # a parameter has no input
            out.append((node, lower_module(node.op, node.attrs, shape)))
        except (ValueError, KeyError) as exc:
            errors.append(Diagnostic(f"cannot lower '{node.name}' ({node.op}) to PyTorch: {exc}", node.span.pos()))
    if errors:
        raise SpecError(errors)
    return out


def inplace_nodes(arch: Architecture) -> set[str]:
    """Activation nodes that may run in place (archspec.graph.inplace_nodes with this backend's ops)."""
    return graph_passes.inplace_nodes(arch, INPLACE, ALIASING)


def _set_inplace(spec: ModuleSpec) -> ModuleSpec:
    return ModuleSpec(spec.cls, spec.args, {**spec.kwargs, "inplace": True})


def leaf_specs(arch: Architecture, inplace: bool = True) -> list[tuple[Node, ModuleSpec]]:
    """module_specs with `inplace=True` set on the activations that may run in place."""
    can_inplace = inplace_nodes(arch) if inplace else set()
    return [(node, _set_inplace(spec) if node.name in can_inplace else spec) for node, spec in module_specs(arch)]


class BufferTracer(fx.Tracer):
    """fx's tracer, with buffers as graph values: ops on buffers alone (Swin's relative_position_index)
    stay in the graph instead of running once into a constant."""

    proxy_buffer_attributes = True


class Block(fx.GraphModule):
    """A block or the model: an fx.GraphModule (straight-line generated forward) whose children keep the
    IR's registration order and types through deepcopy and pickling (GraphModule alone re-registers
    them in call order, and rebuilds passive containers as plain modules)."""

    __str__ = nn.Module.__repr__  # print(model) shows the tree, as torchvision's does

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tracer_cls = BufferTracer  # unpickling re-traces the code with it


    def __deepcopy__(self, memo):
        res = super().__deepcopy__(memo)
        _restore_children(res, {attr: copy.deepcopy(getattr(self, attr), memo) for attr in _CHILD_DICTS})
        return res

    def __reduce__(self):
        fn, args = super().__reduce__()
        return (_unpickle_block, (fn, args, {attr: copy.copy(getattr(self, attr)) for attr in _CHILD_DICTS}))


# which buffers are left out of the state_dict is a set beside them
_CHILD_DICTS = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _restore_children(module: nn.Module, children: dict[str, dict | set]) -> None:
    for attr, values in children.items():
        getattr(module, attr).clear()
        getattr(module, attr).update(values)


def _unpickle_block(fn, args, children: dict[str, dict]) -> Block:
    plain = fn(*args)  # GraphModule's own unpickling: the code re-traced into a graph
    holder = nn.Module()
    _restore_children(holder, children)
    block = Block(holder, plain.graph, class_name=type(plain).__name__)
    _restore_children(block, children)
    for key, value in plain.__dict__.items():  # attributes GraphModule preserved (arch_name, meta, ...)
        if key not in block.__dict__:
            block.__dict__[key] = value
    block.training = plain.training
    return block


# Attributes of fx.GraphModule that a child module name would shadow (forward is code that reads them).
_RESERVED = frozenset(dir(fx.GraphModule))


def node_kinds(arch: Architecture, specs: dict[str, ModuleSpec]) -> dict[str, str]:
    """node name -> "function" (a MERGES entry), "parameter" (a learnable tensor), "buffer" (a tensor
    computed by a rule) or "module"."""
    return {n.name: "function" if n.op in MERGES else "parameter" if specs[n.name].is_parameter
            else "buffer" if specs[n.name].is_buffer else "module" for n in arch.nodes}


def make_plan(arch: Architecture, kinds: dict[str, str], outputs: list[str] | None = None,
              flat: bool = False) -> Plan:
    return plan(arch, {k for k, v in kinds.items() if v == "function"},
                {k for k, v in kinds.items() if v in ("parameter", "buffer")}, outputs, flat)


def build_graph(arch: Architecture, p: Plan | None = None, path: str = ROOT, kinds: dict[str, str] | None = None,
                taps: dict[str, str] | None = None, elide: frozenset = frozenset(),
                adds: frozenset = frozenset(), inference: bool = False) -> fx.Graph:
    """The forward of one callable container of plan `p` as straight-line fx code: a call_module per
    layer or callable child, call_function for function ops, get_attr for parameters. Without a plan:
    the whole dataflow flat in one graph (one call_module per layer, by its full path).
    taps (the root only): return {tap name: value} instead of the outputs. elide: layers skipped (their
    value is their input's: batch norms folded away). adds: adds written into their first input.
    inference (the root only): without the training outputs and what only they need (the nodes and the
    child containers that feed them alone): what eval mode runs."""
    if kinds is None:
        kinds = node_kinds(arch, dict((n.name, spec) for n, spec in module_specs(arch)))
    p = p or make_plan(arch, kinds, flat=True)
    c = p.containers[path]
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    skip = arch.training_only() if inference else set()
    names = c.inputs if path == ROOT else ["x"] if len(c.inputs) == 1 else [f"x{i}" for i in range(len(c.inputs))]
    for value, name in zip(c.inputs, names):
        env[value] = graph.placeholder(name)
    shared = shared_values(p.nodes.values())
    for item in c.items:
        if item in p.containers:
            child = p.containers[item]
            if not (child.outputs and all(v in skip for v in child.outputs)):
                _call_child(graph, env, c.rel(item), child)
            continue
        if item in skip:
            continue
        node = p.nodes[item]
        args = [env[i] for i in node.inputs]
        if item in elide:
            env[item] = args[0]
            continue
        if item in adds:
            env[item] = graph.call_method("add_", tuple(args))
        else:
            env[item] = _node_value(graph, node, kinds[item], c.rel(item), args, shared)
        env[item].meta["archspec_node"] = item  # for tools (and tests) that map fx back to the IR
    if taps is not None:
        graph.output({name: env[value] for name, value in taps.items()})
    else:
        values = c.outputs
        if inference:  # the root's outputs are the architecture's, in order
            values = [v for v, o in zip(values, arch.outputs) if not o.training]
        outs = [env[v] for v in values]
        graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    graph.lint()
    return graph


def _call_child(graph: fx.Graph, env: dict[str, fx.Node], rel: str, child) -> None:
    """Call a callable child container and bind the values it passes on."""
    out = graph.call_module(rel, tuple(env[v] for v in child.inputs))
    out.meta["archspec_scope"] = child.path
    if len(child.outputs) == 1:
        env[child.outputs[0]] = out
    else:
        for i, value in enumerate(child.outputs):
            env[value] = graph.call_function(operator.getitem, (out, i))


def _node_value(graph: fx.Graph, node: Node, kind: str, rel: str, args: list, shared: set[str]) -> fx.Node:
    """One node's fx value: a function call, a parameter or buffer of the container, or a module call."""
    if kind == "function":
        if node.op == "cat" and shared & set(node.inputs) and not set(node.inputs) <= shared:
            # a value shared by the batch (batch axis of 1) joins per-sample ones: expand it
            batch = graph.call_method("size", (next(a for a, i in zip(args, node.inputs) if i not in shared), 0))
            args = [graph.call_method("expand", (a, batch, *[-1] * len(node.shape))) if i in shared else a
                    for a, i in zip(args, node.inputs)]
        return MERGES[node.op].fx(graph, args, node.attrs)
    if kind in ("parameter", "buffer"):  # owned by this container; a batch axis of 1 (shared_values)
        value = graph.get_attr(rel)
        return value if node.attrs.get("batch") else graph.call_method("unsqueeze", (value, 0))
    return graph.call_module(rel, tuple(args))


def assemble(arch: Architecture, p: Plan, leaves: dict[str, nn.Module | nn.Parameter], kinds: dict[str, str],
             taps: dict[str, str] | None = None, elide: frozenset = frozenset(),
             adds: frozenset = frozenset()) -> nn.Module:
    """The module tree of plan `p` around the given leaf modules and parameters (shared, not copied):
    callable containers are fx.GraphModules running their own forward, chains are nn.Sequential,
    the others plain containers. Children keep IR order, so state_dict order is IR order."""
    built: dict[str, nn.Module | nn.Parameter] = dict(leaves)
    blocks = {s.name: s.block for s in arch.scopes}
    errors = name_errors(arch, p)
    for path in sorted(p.containers, key=lambda q: q.count(".") if q else -1, reverse=True):  # leaves first
        c = p.containers[path]
        holder = nn.Module()
        for child in c.children:
            if kinds.get(child) == "function":  # no module: the forward calls a function
                continue
            name, value = c.rel(child), built[child]
            try:
                if isinstance(value, nn.Parameter):  # a learnable tensor: its label is its state_dict key
                    holder.register_parameter(name, value)
                elif isinstance(value, torch.Tensor):  # a buffer computed by a rule, stored or not
                    holder.register_buffer(name, value, persistent=p.nodes[child].attrs.get("persistent", True))
                else:
                    holder.add_module(name, value)
            except KeyError as exc:  # add_module refuses names of nn.Module's own attributes ("train", "forward")
                errors.append(_name_error(arch, child, exc.args[0]))
        if errors:
            continue
        if c.kind == "sequential":
            module = nn.Sequential(OrderedDict(holder._modules))
        elif c.callable:
            cls = class_name(arch) if path == ROOT else _camel(blocks.get(path) or "block")
            graph = build_graph(arch, p, path, kinds, taps if path == ROOT else None, elide, adds)
            if path == ROOT and taps is None and any(o.training for o in arch.outputs):
                # Training-only outputs: eval mode runs another forward (compiler/torch_cnn.py)
                module = torch_cnn.TrainEvalBlock(holder, graph, build_graph(arch, p, path, kinds, None, elide, adds,
                                                                             inference=True), class_name=cls)
            else:
                module = Block(holder, graph, class_name=cls)
            # GraphModule registers what its code uses, in code order; keep the IR's registration order.
            _restore_children(module, {attr: getattr(holder, attr) for attr in _CHILD_DICTS})
        else:
            module = Container()
            _restore_children(module, {attr: getattr(holder, attr) for attr in _CHILD_DICTS})
        built[path] = module
    if errors:
        raise SpecError(errors)
    return built[ROOT]


def name_errors(arch: Architecture, p: Plan) -> list[Diagnostic]:
    """Child names that the forward of their container would not reach (they shadow its attributes)."""
    return [_name_error(arch, child, f"'{c.rel(child)}' is an attribute of the module that runs it")
            for c in p.containers.values() if c.callable and c.kind != "sequential"
            for child in c.children if c.rel(child) in _RESERVED]


def _name_error(arch: Architecture, path: str, why: str) -> Diagnostic:
    node = next((n for n in arch.nodes if n.name == path or n.name.startswith(path + ".")), None)
    return Diagnostic(f"the name '{path}' cannot be a PyTorch module path: {why}",
                      node.span.pos() if node else None, "rename the label")


def build_leaves(arch: Architecture, inplace: bool = True) -> tuple[dict[str, nn.Module | nn.Parameter], dict[str, str]]:
    """(node name -> fresh leaf module or parameter, node name -> kind) for every node."""
    specs = dict((node.name, spec) for node, spec in leaf_specs(arch, inplace))
    leaves = {name: spec.build() for name, spec in specs.items()}
    return leaves, node_kinds(arch, specs)


def build_tree(arch: Architecture, inplace: bool = True) -> nn.Module:
    """The module tree with fresh weights (no init schemes applied)."""
    leaves, kinds = build_leaves(arch, inplace)
    return assemble(arch, make_plan(arch, kinds), leaves, kinds, adds=inplace_adds(arch) if inplace else frozenset())


def class_name(arch: Architecture) -> str:
    """A Python class name for the model: resnet50 -> Resnet50, mobilenet_v2 -> MobilenetV2."""
    return _camel(arch.title)


def _camel(text: str) -> str:
    out = "".join(part[:1].upper() + part[1:] for part in _identifier(text).split("_") if part)
    # 'arch None' would give `class None`: keywords and names that start with a digit get a prefix
    return out if out and not out[0].isdigit() and not keyword.iskeyword(out) else "Model" + out


def _identifier(text: str) -> str:
    out = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)
    return out if out and not out[0].isdigit() else "_" + out


def to_torch(arch: Architecture, weights: str | Path | dict | None = None, strict: bool = True,
             inplace: bool = True, outputs: list[str] | tuple[str, ...] | None = None,
             inference: bool | str = False) -> nn.Module:
    """Compile an Architecture to an nn.Module tree like a hand-written one: each block call or labeled
    group that runs as a unit is a module with its own forward (an fx.GraphModule: straight-line code),
    straight chains are nn.Sequential, leaves are the standard nn layers; module paths are node names.

    weights: a state_dict or a path to one (.pt/.pth via torch.load(weights_only=True), or .safetensors);
    strict: missing or unexpected keys are errors (mis-shaped ones always are).
    inplace: run activations in place where no other node reads their input (as torchvision does).
    outputs: feature taps (layer or scope names, e.g. ["layer2", "layer3", "layer4"]): forward returns
    {name: tensor} and only the layers they need are kept (weights are loaded before pruning).
    inference: True gives an eval-mode build without gradients, each batch norm after a conv/linear
    folded into it (any device); "cpu" also prepacks conv and linear weights for oneDNN (torch's
    mkldnn modules: no weight reordering per call; CPU only, not traceable by fx/export).
    Raises archspec.SpecError, with spec positions, for ops without a lowering and for bad weights."""
    from archspec.analysis import analyze

    from .runtime import check_fits
    check_fits(analyze(arch).params * 4, f"building the weights of {arch.title}")  # before torch allocates them
    leaves, kinds = build_leaves(arch, inplace)
    module = assemble(arch, make_plan(arch, kinds), leaves, kinds, adds=inplace_adds(arch) if inplace else frozenset())
    apply_init(arch, module)
    if weights is not None:
        load_weights(module, arch, weights, strict=strict)
    tap_nodes = None
    if outputs is not None:
        from archspec.analysis import taps as resolve_taps
        if isinstance(outputs, str) or not outputs:
            raise SpecError("outputs must be a non-empty list of layer or scope names",
                            hint='to_torch(arch, outputs=["layer2", "layer3", "layer4"])')
        tap_nodes = {t.name: t.node for t in resolve_taps(arch, list(outputs))}
    elide = frozenset()
    if inference not in (False, True, "cpu"):
        raise ValueError(f"inference must be False, True or 'cpu', got {inference!r}")
    if inference:
        elide = fold_batchnorms(arch, leaves)
    if inference == "cpu":
        prepack_cpu(leaves)
    if tap_nodes is not None or inference:
        p = make_plan(arch, kinds, list(dict.fromkeys(tap_nodes.values())) if tap_nodes else None)
        adds = inplace_adds(arch, frozenset(tap_nodes.values()) if tap_nodes else frozenset()) if inplace else frozenset()
        module = assemble(arch, p, {k: v for k, v in leaves.items() if k in p.nodes}, kinds, tap_nodes, elide, adds)
    info = {"arch_name": arch.title, "input_names": tuple(i.name for i in arch.inputs),
            "output_names": tuple(tap_nodes) if tap_nodes else tuple(o.name for o in arch.outputs if not o.training)}
    for key, value in info.items():
        setattr(module, key, value)
    # GraphModule's deepcopy rebuilds the module and keeps only the attributes listed here.
    module.meta.setdefault("_user_preserved_attributes", {}).update(info)
    if inference:
        module.eval().requires_grad_(False)
    return module


def prepack_cpu(leaves: dict[str, nn.Module | nn.Parameter]) -> None:
    """Replace conv and linear leaves by torch's oneDNN modules (torch.utils.mkldnn), which keep the
    weights in oneDNN's blocked layout: the reorder is done once here instead of in every call."""
    if not torch.backends.mkldnn.is_available():
        raise SpecError("inference='cpu' needs a torch built with oneDNN (mkldnn)", hint="use inference=True")
    import warnings
    with warnings.catch_warnings():  # these modules are TorchScript, whose decorators now warn
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils import mkldnn
        kinds = {nn.Conv1d: mkldnn.MkldnnConv1d, nn.Conv2d: mkldnn.MkldnnConv2d, nn.Conv3d: mkldnn.MkldnnConv3d,
                 nn.Linear: mkldnn.MkldnnLinear}
        for name, leaf in leaves.items():
            cls = kinds.get(type(leaf))
            if cls is not None and getattr(leaf, "padding_mode", "zeros") == "zeros" and leaf.weight.device.type == "cpu":
                leaves[name] = cls(leaf, torch.float).eval()


def fold_batchnorms(arch: Architecture, leaves: dict[str, nn.Module]) -> frozenset:
    """Fold every batch norm that follows a conv or linear into it (compiler/fold.py, float64, as the
    ONNX backend's fold_bn): the conv gets the folded weight and a bias, the bn becomes nn.Identity.
    Returns the folded bn names (the forward skips them)."""
    from .fold import fold, foldable_bn
    from .runtime import to_numpy
    pairs = foldable_bn(arch)
    if not pairs:
        return frozenset()
    names = set(pairs) | set(pairs.values())
    weights = {}
    for name in names:
        for key, value in leaves[name].state_dict().items():
            weights[f"{name}.{key}"] = to_numpy(value, "float64")
    folded = fold(weights, arch, pairs)
    for bn, layer in pairs.items():
        old = leaves[layer]
        dtype, device = old.weight.dtype, old.weight.device
        if old.bias is None:
            old.bias = nn.Parameter(torch.empty(old.weight.shape[0], dtype=dtype, device=device))
        with torch.no_grad():
            old.weight.copy_(torch.from_numpy(folded[f"{layer}.weight"]))
            old.bias.copy_(torch.from_numpy(folded[f"{layer}.bias"]))
        leaves[bn] = nn.Identity()
    return frozenset(pairs)


# ---------------------------------------------------------------- weights

def read_state_dict(weights: str | Path | dict) -> dict[str, torch.Tensor]:
    """A state_dict from a dict or a file, never running code from the file (SpecError otherwise)."""
    if isinstance(weights, dict):
        state = weights
    elif not isinstance(weights, (str, Path)):
        raise SpecError(f"weights must be a state_dict or a path to one, got {type(weights).__name__}",
                        hint="to_torch(arch, weights='model.pth') or weights=other_model.state_dict()")
    else:
        path = Path(weights)
        if not path.is_file():
            raise SpecError(f"no such weights file: {path}", hint="give a state_dict file (.pt, .pth, .safetensors)")
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:  # pragma: no cover - safetensors is optional
                raise SpecError(f"cannot read {path}: the safetensors package is not installed",
                                hint="pip install safetensors") from None
            try:
                state = load_file(str(path))
            except Exception as exc:  # a corrupt header, a truncated file
                raise SpecError(f"cannot read {path}: {exc}") from None
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # pickle.UnpicklingError for pickles that would run code, and corrupt files
                raise SpecError(f"refused to load {path}: it is not a plain state_dict of tensors ({_first_line(exc)})",
                                hint="weights are loaded with torch.load(weights_only=True), which never runs code "
                                     "from the file; save with torch.save(model.state_dict(), path) "
                                     "or use .safetensors") from None
    # Common wrappers: {"state_dict": ...}, {"model": ...}; DDP's "module." prefix.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not any(
                isinstance(v, torch.Tensor) for v in state.values()):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError("the weights are not a state_dict (a mapping of names to tensors)",
                        hint="save with torch.save(model.state_dict(), path)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_weights(module: nn.Module, arch: Architecture, weights: str | Path | dict, strict: bool = True) -> None:
    """Load a state_dict into `module` (built from `arch`). On a mismatch raise SpecError listing the
    missing, unexpected and mis-shaped keys, each missing/mis-shaped one at its node's spec position."""
    state = read_state_dict(weights)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    diags: list[Diagnostic] = []
    for k in misshaped:
        node = _owner(arch, k)
        diags.append(Diagnostic(f"weight '{k}' has shape {list(state[k].shape)}, the spec's "
                                f"{node.op if node else 'layer'} expects {list(own[k].shape)}",
                                node.span.pos() if node else None,
                                "the checkpoint was trained with other widths or variant"))
    if strict:
        for k in missing:
            node = _owner(arch, k)
            diags.append(Diagnostic(f"missing weight '{k}' in the checkpoint", node.span.pos() if node else None,
                                    "pass strict=False to keep this layer's fresh initialisation"))
        if unexpected:
            shown = ", ".join(f"'{k}'" for k in unexpected[:20]) + (" ..." if len(unexpected) > 20 else "")
            diags.append(Diagnostic(f"{len(unexpected)} unexpected weight(s) in the checkpoint, no layer of the "
                                    f"spec has them: {shown}", None,
                                    "check the variant and the layer labels, or pass strict=False"))
    diags += _value_problems(arch, state, own)
    if diags:
        raise SpecError(diags)
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def _value_problems(arch: Architecture, state: dict, own: dict) -> list[Diagnostic]:
    """Weights whose type or values the model cannot take as they are: another kind of number (int8, bool
    for float32) or a lossy cast is refused, a lossless one (float16 -> float32) warned about; NaN or
    infinite values are refused. Each names its key and the node's spec position."""
    import warnings
    diags = []
    for k, want in own.items():
        got = state.get(k)
        if got is None or tuple(got.shape) != tuple(want.shape):
            continue
        node = _owner(arch, k)
        where = node.span.pos() if node else None
        if got.dtype != want.dtype:
            same_kind = got.dtype.is_floating_point == want.dtype.is_floating_point and got.dtype != torch.bool
            lossless = same_kind and torch.equal(got.to(want.dtype).to(got.dtype), got)
            if not lossless:
                diags.append(Diagnostic(f"weight '{k}' is {str(got.dtype).removeprefix('torch.')}, the model's is "
                                        f"{str(want.dtype).removeprefix('torch.')}: converting it would change "
                                        "its values", where, "save the checkpoint in the model's type"))
                continue
            warnings.warn(f"weight '{k}' is {str(got.dtype).removeprefix('torch.')}, converted without loss "
                          f"to {str(want.dtype).removeprefix('torch.')}", stacklevel=3)
        if got.dtype.is_floating_point and not bool(torch.isfinite(got).all()):
            diags.append(Diagnostic(f"weight '{k}' holds NaN or infinite values", where,
                                    "the checkpoint is corrupt or the training diverged"))
    return diags


def _owner(arch: Architecture, key: str) -> Node | None:
    """The node whose module holds a state_dict key ('layer1.0.bn1.running_mean' -> layer1.0.bn1)."""
    return graph_passes.graph(arch).node.get(key.rsplit(".", 1)[0])


# ---------------------------------------------------------------- windowed attention's pieces (archspec/ops/window.py)

@lowering("shifted_window_mask")
def _shifted_window_mask(a, shape):
    """Not a module: a buffer (not stored) registered at the label's path, as `buffer` (see assemble)."""
    from archspec.ops.window import ShiftedWindowMask
    return ModuleSpec("buffer", (ShiftedWindowMask.values(a), "float32", list(ShiftedWindowMask.shape(a, []))))


@lowering("normalize")
def _normalize(a, shape):
    return ModuleSpec("Normalize", (a["dim"],), {"eps": a["eps"]} if a["eps"] != 1e-12 else {})


@lowering("clamp")
def _clamp(a, shape):
    return ModuleSpec("Clamp", (), {k: v for k, v in a.items() if v is not None})


@lowering("exp")
def _exp(a, shape):
    return ModuleSpec("Exp")


@lowering("scale")
def _scale(a, shape):
    return ModuleSpec("Scale", (a["factor"],))


from . import torch_cnn  # noqa: E402,F401  (registers issue 14's lowerings in LOWERINGS)

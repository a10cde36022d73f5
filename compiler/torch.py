"""PyTorch backend: an archspec IR -> a `torch.nn.Module` with torchvision-style names.

    from compiler import to_torch
    model = to_torch(archspec.load("resnet50"))              # fresh weights, the spec's init schemes
    model = to_torch(arch, weights="resnet50.pth")          # a state_dict file, loaded safely

Submodules are named by node names (`layer1.0.conv1` lives at `layer1 -> 0 -> conv1`) and registered
in the order the nodes appear, so `state_dict()` keys and order match a hand-written model.
`forward` is straight-line code: a `torch.fx.Graph` built once from the IR, compiled by
`torch.fx.GraphModule` into Python source. Merges (add, cat, mul) are functions, not modules.

One table, `LOWERINGS`, maps every op of `archspec.ops.REGISTRY` to a builder that returns a
`ModuleSpec` (class + constructor arguments); the same spec builds the module here and writes the
constructor call in the standalone source emitter (compiler/pysource.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.fx as fx
from torch import nn

from archspec.errors import Diagnostic, Pos, SpecError
from archspec.ir import Architecture, Node, Span

__all__ = ["LOWERINGS", "MERGES", "INIT", "ModuleSpec", "StochasticDepth", "build_module", "load_weights",
           "lower_module", "to_torch"]


# ---------------------------------------------------------------- custom modules (torch only)

class StochasticDepth(nn.Module):
    """Randomly drop the input per sample (mode "row") or for the whole batch (mode "batch") while
    training, rescaling survivors by 1/(1-p); identity at eval. torchvision.ops.StochasticDepth."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


CUSTOM_MODULES: dict[str, type[nn.Module]] = {"StochasticDepth": StochasticDepth}


# ---------------------------------------------------------------- the op table's torch lowering

@dataclass(frozen=True)
class ModuleSpec:
    """A module constructor call: `nn.<cls>(*args, **kwargs)` or a custom class of this file."""

    cls: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def build(self) -> nn.Module:
        ctor = CUSTOM_MODULES.get(self.cls) or getattr(nn, self.cls)
        return ctor(*self.args, **self.kwargs)

    def source(self) -> str:
        """The constructor call as Python source (nn.X for torch's modules)."""
        prefix = "" if self.cls in CUSTOM_MODULES else "nn."
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{prefix}{self.cls}({', '.join(parts)})"


Builder = Callable[[dict, tuple], ModuleSpec]
LOWERINGS: dict[str, Builder] = {}


def lowering(*names: str):
    """Register a builder for op names: builder(attrs, input_shape) -> ModuleSpec."""
    def wrap(fn: Builder) -> Builder:
        for n in names:
            LOWERINGS[n] = fn
        return fn
    return wrap


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
    return ModuleSpec("Flatten", (1,))


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
# Ops whose result may share memory with their input (see inplace_nodes).
ALIASING = {"identity", "flatten", "dropout", "stochastic_depth"}

for _op, _cls in _ACTIVATIONS.items():
    LOWERINGS[_op] = (lambda cls: lambda a, shape: ModuleSpec(cls))(_cls)


# Merges are functions. Each entry: (fx/source function, how to call it). `cat` takes a list and a dim.
@dataclass(frozen=True)
class Merge:
    fn: Callable
    source_name: str  # the name in generated source

    def fx(self, graph: fx.Graph, args: list, attrs: dict) -> fx.Node:
        if self.fn is torch.cat:
            return graph.call_function(torch.cat, (list(args),), {"dim": attrs["dim"] + 1})
        out = args[0]
        for other in args[1:]:  # n-ary add/mul: a left fold, as hand-written code would do
            out = graph.call_function(self.fn, (out, other))
        return out

    def source(self, args: list[str], attrs: dict) -> str:
        if self.fn is torch.cat:
            return f"torch.cat([{', '.join(args)}], dim={attrs['dim'] + 1})"
        out = args[0]
        for other in args[1:]:
            out = f"{self.source_name}({out}, {other})"
        return out


MERGES: dict[str, Merge] = {"add": Merge(torch.add, "torch.add"), "mul": Merge(torch.mul, "torch.mul"),
                            "cat": Merge(torch.cat, "torch.cat")}


def lower_module(op: str, attrs: dict, input_shape: tuple) -> ModuleSpec:
    """The ModuleSpec for one op (KeyError for an op without a torch lowering)."""
    return LOWERINGS[op](attrs, tuple(input_shape))


def build_module(op: str, attrs: dict, input_shape: tuple) -> nn.Module:
    """op name + normalised IR attrs + input shape (no batch) -> a fresh nn.Module."""
    return lower_module(op, attrs, input_shape).build()


# ---------------------------------------------------------------- initialisation schemes

def _zero_bias(m: nn.Module) -> None:
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)


def init_kaiming_normal_fan_out(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    _zero_bias(m)


def init_kaiming_normal_fan_in(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    _zero_bias(m)


def init_kaiming_uniform(m: nn.Module) -> None:
    nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
    _zero_bias(m)


def init_xavier_uniform(m: nn.Module) -> None:
    nn.init.xavier_uniform_(m.weight)
    _zero_bias(m)


def init_normal_001(m: nn.Module) -> None:
    nn.init.normal_(m.weight, 0.0, 0.01)
    _zero_bias(m)


def init_trunc_normal_001(m: nn.Module) -> None:
    nn.init.trunc_normal_(m.weight, std=0.01)
    _zero_bias(m)


def init_uniform_fan_out(m: nn.Module) -> None:
    bound = 1.0 / math.sqrt(m.weight.shape[0])  # out_features (out_channels for a conv)
    nn.init.uniform_(m.weight, -bound, bound)
    _zero_bias(m)


def init_default_zero_bias(m: nn.Module) -> None:
    _zero_bias(m)  # the weight keeps PyTorch's own initialisation


def init_ones_zeros(m: nn.Module) -> None:
    nn.init.ones_(m.weight)
    _zero_bias(m)


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
        if fn is None or node.op in MERGES:
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
            errors.append(Diagnostic(f"op '{node.op}' has no PyTorch lowering", _pos(node.span),
                                     "add a builder to compiler/torch.py's LOWERINGS"))
            continue
        try:
            out.append((node, lower_module(node.op, node.attrs, shapes[node.inputs[0]])))
        except (ValueError, KeyError) as exc:
            errors.append(Diagnostic(f"cannot lower '{node.name}' ({node.op}) to PyTorch: {exc}", _pos(node.span)))
    if errors:
        raise SpecError(errors)
    return out


def inplace_nodes(arch: Architecture) -> set[str]:
    """Activation nodes that may run in place: their input is an intermediate read by no other node
    and not returned as an output (in-place would change what the other reader sees)."""
    readers: dict[str, int] = {}
    for node in arch.nodes:
        for i in node.inputs:
            readers[i] = readers.get(i, 0) + 1
    protected = {i.name for i in arch.inputs} | {o.node for o in arch.outputs}
    # These return their input itself or a view of it (identity, flatten; dropout and stochastic
    # depth at eval): writing into their result would write into a tensor other nodes may read.
    aliasing = {n.name for n in arch.nodes if n.op in ALIASING}
    return {n.name for n in arch.nodes
            if n.op in INPLACE and readers.get(n.inputs[0]) == 1 and n.inputs[0] not in protected
            and n.inputs[0] not in aliasing}


def _set_inplace(spec: ModuleSpec) -> ModuleSpec:
    return ModuleSpec(spec.cls, spec.args, {**spec.kwargs, "inplace": True})


def leaf_specs(arch: Architecture, inplace: bool = True) -> list[tuple[Node, ModuleSpec]]:
    """module_specs with `inplace=True` set on the activations that may run in place."""
    can_inplace = inplace_nodes(arch) if inplace else set()
    return [(node, _set_inplace(spec) if node.name in can_inplace else spec) for node, spec in module_specs(arch)]


def build_tree(arch: Architecture, inplace: bool = True) -> nn.Module:
    """The module hierarchy: plain nn.Module containers for scopes, one leaf per non-merge node."""
    root = nn.Module()
    errors = []
    for node, spec in leaf_specs(arch, inplace):
        *path, leaf = node.name.split(".")
        parent = root
        try:
            for part in path:
                child = parent._modules.get(part)
                if child is None:
                    child = nn.Module()
                    parent.add_module(part, child)
                parent = child
            parent.add_module(leaf, spec.build())
        except KeyError as exc:  # add_module refuses names of nn.Module's own attributes ("train", "forward")
            errors.append(Diagnostic(f"the name '{node.name}' cannot be a PyTorch module path: {exc.args[0]}",
                                     _pos(node.span), "rename the label"))
    if errors:
        raise SpecError(errors)
    return root


def build_graph(arch: Architecture, inference: bool = False) -> fx.Graph:
    """Straight-line dataflow: one call_module per layer, call_function for merges. `inference`: without
    the training outputs and the nodes only they need (what eval mode runs)."""
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    skip = arch.training_only() if inference else set()
    for inp in arch.inputs:
        env[inp.name] = graph.placeholder(inp.name)
    for node in arch.nodes:
        if node.name in skip:
            continue
        args = [env[i] for i in node.inputs]
        if node.op in MERGES:
            env[node.name] = MERGES[node.op].fx(graph, args, node.attrs)
        else:
            env[node.name] = graph.call_module(node.name, (args[0],))
        env[node.name].meta["archspec_node"] = node.name  # for tools (and tests) that map fx back to the IR
    outs = [env[o.node] for o in arch.outputs if not (inference and o.training)]
    graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    graph.lint()
    return graph


def class_name(arch: Architecture) -> str:
    """A Python class name for the model: resnet50 -> Resnet50, mobilenet_v2 -> MobilenetV2."""
    text = "".join(part[:1].upper() + part[1:] for part in _identifier(arch.title).split("_") if part)
    return text if text and not text[0].isdigit() else "Model" + text


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else "_" + out


def to_torch(arch: Architecture, weights: str | Path | dict | None = None, strict: bool = True,
             inplace: bool = True) -> nn.Module:
    """Compile an Architecture to a `torch.fx.GraphModule` (an nn.Module).

    weights: a state_dict or a path to one (.pt/.pth via torch.load(weights_only=True), or .safetensors);
    strict: missing or unexpected keys are errors (mis-shaped ones always are).
    inplace: run activations in place where no other node reads their input (as torchvision does).
    Raises archspec.SpecError, with spec positions, for ops without a lowering and for bad weights."""
    root = build_tree(arch, inplace=inplace)
    apply_init(arch, root)
    if any(o.training for o in arch.outputs):  # eval mode runs another graph (compiler/torch_cnn.py)
        module = torch_cnn.TrainEvalGraphModule(root, build_graph(arch), build_graph(arch, inference=True),
                                                class_name=class_name(arch))
    else:
        module = fx.GraphModule(root, build_graph(arch), class_name=class_name(arch))
    # GraphModule copies the leaves in graph order, which is IR order: state_dict order is preserved.
    info = {"arch_name": arch.title, "input_names": tuple(i.name for i in arch.inputs),
            "output_names": tuple(o.name for o in arch.outputs if not o.training)}
    for key, value in info.items():
        setattr(module, key, value)
    # GraphModule's deepcopy rebuilds the module and keeps only the attributes listed here.
    module.meta.setdefault("_user_preserved_attributes", {}).update(info)
    if weights is not None:
        load_weights(module, arch, weights, strict=strict)
    return module


# ---------------------------------------------------------------- weights

def _pos(span: Span | None) -> Pos | None:
    return None if span is None else Pos(span.file, span.line, span.col)


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
                                _pos(node.span) if node else None,
                                "the checkpoint was trained with other widths or variant"))
    if strict:
        for k in missing:
            node = _owner(arch, k)
            diags.append(Diagnostic(f"missing weight '{k}' in the checkpoint", _pos(node.span) if node else None,
                                    "pass strict=False to keep this layer's fresh initialisation"))
        if unexpected:
            shown = ", ".join(f"'{k}'" for k in unexpected[:20]) + (" ..." if len(unexpected) > 20 else "")
            diags.append(Diagnostic(f"{len(unexpected)} unexpected weight(s) in the checkpoint, no layer of the "
                                    f"spec has them: {shown}", None,
                                    "check the variant and the layer labels, or pass strict=False"))
    if diags:
        raise SpecError(diags)
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def _owner(arch: Architecture, key: str) -> Node | None:
    """The node whose module holds a state_dict key ('layer1.0.bn1.running_mean' -> layer1.0.bn1)."""
    path = key.rsplit(".", 1)[0]
    for node in arch.nodes:
        if node.name == path:
            return node
    return None


from . import torch_cnn  # noqa: E402,F401  (registers issue 14's lowerings in LOWERINGS)

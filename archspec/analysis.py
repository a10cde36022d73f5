"""The static analyzer: parameters, buffers, MACs, activation memory and receptive fields from the IR alone.

    report = archspec.analyze(archspec.load("resnet50"))
    report.params, report.buffers, report.macs, report.flops      # 25557032, ..., 4.09e9, 2 * macs
    report.receptive_field.size, .stride, .padding, .is_global     # per spatial axis
    report.layers                                                  # one Layer per node
    report.scopes(depth=2)                                         # roll-ups: layer3, layer3.2, ...

Every number comes from the op table (`Op.params/buffers/macs/receptive` in archspec/ops/); this module
only walks the graph. No torch: a zoo model is analyzed in a few milliseconds.

Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks" (Distill 2019). Each tensor carries, per spatial axis, the field size r, the effective stride
(jump) j and the effective padding p of its first unit, whose field spans input pixels [-p, r - 1 - p].
A layer with (dilated) kernel k, stride s and padding q gives r + (k - 1) j, j s, p + q j. A merge
(add, cat, mul) takes the union of its paths' fields, which is the largest one when the paths are
centred alike; paths with different strides or centres are reported as misaligned. An op that mixes
the whole image (global pooling, flatten of a map, the pooled branch of a gate) marks the tensor
global, and the local field of its spatial path is kept beside the flag.

JSON (`Report.to_dict`, `archspec analyze --format json`), stable keys:
    name, variant            the architecture and variant
    input, outputs           {tensor name: shape without batch}
    params, buffers          trainable parameters; non-trainable state (BN running stats)
    macs, flops              conv and linear multiply-accumulates of inference (layers only training
                             outputs need are left out, as eval mode skips them); flops = 2 * macs
    memory                   {"outputs": bytes, "peak": bytes}: float32, batch 1; outputs is the sum of
                             every node's output, peak the most bytes alive in a forward in IR order
                             that frees each tensor after its last use (no in-place ops assumed)
    receptive_field          {size, stride, padding: per spatial axis; global: bool; tensor: name}
    layers                   [{name, op, shape, params, buffers, macs, receptive_field, source}]
    scopes                   roll-ups at the chosen depth: [{name, block, layers, params, buffers, macs,
                             memory, shape, receptive_field}]
    warnings                 misaligned merges and other caveats, as text
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .graph import graph
from .ir import Architecture
from .limits import gc_paused
from .ops import GLOBAL, REGISTRY
from .ops.base import VIEW, Layout, Mixes
from .ops.tensor import SOURCES

BYTES_PER_VALUE = 4  # float32


# ---------------------------------------------------------------- receptive fields

@dataclass(frozen=True)
class Field:
    """Receptive field of one tensor, per spatial axis of the network's input. When `is_global`, some op
    on the way mixed the whole image; size/stride/padding are then the field of the spatial path."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    is_global: bool = False

    def to_dict(self) -> dict:
        return {"size": _json(self.size), "stride": _json(self.stride), "padding": _json(self.padding),
                "global": self.is_global}

    def local_text(self) -> str:
        if not self.size:
            return "-"
        return f"{axes_text(self.size)} (stride {axes_text(self.stride)}, padding {axes_text(self.padding)})"

    def __str__(self) -> str:
        if self.is_global:
            return "global" + (f" (local {self.local_text()})" if self.size else "")
        return self.local_text()


def _json(values) -> list:
    """Fractions (strides after an upsample, U-Net's 1/2) as floats: JSON has no fractions."""
    return [v if isinstance(v, int) else float(v) for v in values]


def _exact(v):
    """A Fraction that came out whole is an int again (an upsample's stride 1/2 times a pool's 2)."""
    return int(v) if isinstance(v, Fraction) and v.denominator == 1 else v


def axes_text(values: tuple[int, ...]) -> str:
    """212 when every axis agrees, 212x100 otherwise."""
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


# Axis layouts: for each axis of a tensor, the axis of the network's input it holds (0 = channels,
# 1.. = spatial), TRIVIAL for an added axis of size 1, UNKNOWN once values moved or axes merged.
TRIVIAL, UNKNOWN = -2, -1


def _layout_after(lay: tuple[int, ...], rule, before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, ...]:
    """The layout of an op's output (tokens, channels-last maps): ops that keep the rank keep it, a permute
    moves it, a view keeps what can be followed (axes of size 1 come and go)."""
    if isinstance(rule, Layout) and rule.dims not in (None, VIEW):
        return tuple(lay[d] for d in rule.dims)
    if isinstance(rule, Layout) and rule.dims is None:
        return (UNKNOWN,) * len(after)
    if len(before) == len(after) and not isinstance(rule, Layout):
        return lay
    kept = [(s, i) for s, i in zip(before, lay) if s != 1]
    targets = [k for k, s in enumerate(after) if s != 1]
    if [s for s, _ in kept] != [after[k] for k in targets]:
        return (UNKNOWN,) * len(after)
    out = [TRIVIAL] * len(after)
    for (_, i), k in zip(kept, targets):
        out[k] = i
    return tuple(out)


def _apply(f: Field, rule, name: str, lay: tuple[int, ...] | None = None, shape: tuple[int, ...] = ()) -> Field:
    """One single-input op's contribution (op.receptive's answer) to its input's field; `lay` is the input's
    layout and `shape` its shape (see _layout_after)."""
    if isinstance(rule, Mixes):  # global when it mixes along an axis that holds (or may hold) a spatial one
        spatial = any(shape[a] > 1 and lay[a] != 0 for a in rule.axes) if lay is not None else False
        rule = GLOBAL if spatial else None
    elif isinstance(rule, Layout):
        rule = None
    elif isinstance(rule, list) and lay is not None and lay != tuple(range(len(lay))):
        rule = GLOBAL  # a window over axes that no longer are the input's own, in their order
    if rule is None:
        return f
    if rule == GLOBAL:
        return Field(f.size, f.stride, f.padding, True) if not f.is_global else f
    if len(rule) != len(f.size):  # an op on a tensor whose axes are not the input's: no local meaning left
        return Field(f.size, f.stride, f.padding, True)
    size = tuple(_exact(r + (k.kernel - 1) * j) for r, j, k in zip(f.size, f.stride, rule))
    padding = tuple(_exact(p + k.pad * j) for p, j, k in zip(f.padding, f.stride, rule))
    stride = tuple(_exact(j * k.stride) for j, k in zip(f.stride, rule))
    if max(size + stride + padding) > _FIELD_CAP:
        # Strides multiply: a stack of strided layers on a 1x1 map reaches sizes no input has (10**9900
        # in a fuzz case). A field that wide covers any input: call it global and stop the growth.
        return Field(tuple(min(v, _FIELD_CAP) for v in f.size), tuple(min(v, _FIELD_CAP) for v in f.stride),
                     tuple(min(v, _FIELD_CAP) for v in f.padding), True)
    return Field(size, stride, padding, f.is_global)


_CONSTANT = Field((), (), ())  # the field of a learnable tensor: it sees no input
_FIELD_CAP = 2 ** 62  # far beyond any input the activation-memory limit admits


def _merge(fields: list[Field], broadcast_global: bool) -> tuple[Field, str | None]:
    """Union of the paths' fields; a warning when their strides or centres disagree."""
    glob = broadcast_global or any(f.is_global for f in fields)
    first = fields[0]
    if all(f == first for f in fields):
        return (Field(first.size, first.stride, first.padding, glob) if glob != first.is_global else first), None
    n = len(first.size)
    size, stride, padding, problems = [], [], [], []
    for axis in range(n):
        strides = {f.stride[axis] for f in fields}
        # Twice the centre of the first unit's field, in input pixels: integral even for even sizes.
        centres = {f.size[axis] - 1 - 2 * f.padding[axis] for f in fields}
        if len(strides) > 1:
            problems.append(f"strides {sorted(strides)}")
        if len(centres) > 1:
            problems.append(f"field centres {sorted(c / 2 for c in centres)}")
        lo = min(-f.padding[axis] for f in fields)
        hi = max(f.size[axis] - 1 - f.padding[axis] for f in fields)
        size.append(_exact(hi - lo + 1))
        stride.append(max(strides))
        padding.append(-lo)
    warning = None
    if problems:
        warning = "misaligned paths (" + "; ".join(dict.fromkeys(problems)) + ")"
    return Field(tuple(size), tuple(stride), tuple(padding), glob), warning


# ---------------------------------------------------------------- report

@dataclass(frozen=True)
class Layer:
    """One node of the IR with its costs and the receptive field of its output."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    params: int
    buffers: int
    macs: int
    receptive_field: Field
    source: str  # file:line:col of the statement

    @property
    def memory(self) -> int:
        """Bytes of the output, float32, batch 1."""
        return math.prod(self.shape) * BYTES_PER_VALUE

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "shape": list(self.shape), "params": self.params,
                "buffers": self.buffers, "macs": self.macs, "receptive_field": self.receptive_field.to_dict(),
                "source": self.source}


@dataclass(frozen=True)
class ScopeStats:
    """Totals of the layers under a dotted-name prefix (`layer3`, `layer3.2`)."""

    name: str
    block: str | None       # the block it instantiates, or the op of a single layer
    layers: int
    params: int
    buffers: int
    macs: int
    memory: int             # bytes of its layers' outputs
    shape: tuple[int, ...]  # output of its last layer
    receptive_field: Field  # of that output

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {"name": self.name, "block": self.block, "layers": self.layers, "params": self.params,
                "buffers": self.buffers, "macs": self.macs, "memory": self.memory, "shape": list(self.shape),
                "receptive_field": self.receptive_field.to_dict()}


@dataclass(frozen=True)
class Memory:
    """Activation memory in bytes, float32, batch 1."""

    outputs: int  # every node's output, summed
    peak: int     # most bytes alive at once in a forward that frees tensors after their last use


@dataclass(frozen=True)
class NetworkField(Field):
    """The network's receptive field: that of `tensor`, the last spatial map on the way to the first output."""

    tensor: str | None = None

    def to_dict(self) -> dict:
        return {**super().to_dict(), "tensor": self.tensor}


@dataclass(frozen=True)
class Report:
    name: str
    variant: str | None
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    params: int
    buffers: int
    macs: int
    memory: Memory
    receptive_field: NetworkField
    layers: tuple[Layer, ...]
    warnings: tuple[str, ...]
    blocks: dict[str, str | None]  # scope name -> block name (from the IR's scopes)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def title(self) -> str:
        return self.variant or self.name

    def layer(self, name: str) -> Layer:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def scopes(self, depth: int = 1) -> list[ScopeStats]:
        """Roll-ups by the first `depth` parts of each layer's dotted name, in order of first appearance.
        A layer whose name has fewer parts is its own row (`conv1` at any depth)."""
        if depth < 1:
            raise ValueError("depth must be at least 1")
        groups: dict[str, list[Layer]] = {}
        for row in self.layers:
            groups.setdefault(".".join(row.name.split(".")[:depth]), []).append(row)
        return [self._stats(name, rows) for name, rows in groups.items()]

    def scope(self, prefix: str) -> ScopeStats:
        """Totals of one scope (`layer3.2`); the empty prefix is the whole network."""
        rows = [r for r in self.layers if not prefix or r.name == prefix or r.name.startswith(prefix + ".")]
        if not rows:
            raise KeyError(prefix)
        return self._stats(prefix, rows)

    def _stats(self, name: str, rows: list[Layer]) -> ScopeStats:
        last = rows[-1]
        block = self.blocks.get(name)
        if block is None and len(rows) == 1 and last.name == name:
            block = last.op
        return ScopeStats(name, block, len(rows), sum(r.params for r in rows), sum(r.buffers for r in rows),
                          sum(r.macs for r in rows), sum(r.memory for r in rows), last.shape, last.receptive_field)

    def to_dict(self, depth: int = 1) -> dict[str, Any]:
        """The documented JSON form (see the module docstring)."""
        return {
            "name": self.name, "variant": self.variant,
            "input": {k: list(v) for k, v in self.inputs.items()},
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "params": self.params, "buffers": self.buffers, "macs": self.macs, "flops": self.flops,
            "memory": {"outputs": self.memory.outputs, "peak": self.memory.peak},
            "receptive_field": self.receptive_field.to_dict(),
            "layers": [r.to_dict() for r in self.layers],
            "scopes": [s.to_dict() for s in self.scopes(depth)],
            "warnings": list(self.warnings),
        }

    def to_json(self, depth: int = 1) -> str:
        """`to_dict` as JSON text: one line per key, and per layer and scope, so that diffs read well.
        (json's C encoder only runs without indent: this is several times faster than indent=2.)"""
        import json
        lines = []
        for key, value in self.to_dict(depth).items():
            if isinstance(value, list) and value:
                items = ",\n".join("    " + json.dumps(v) for v in value)
                lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
            else:
                lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
        return "{\n" + ",\n".join(lines) + "\n}"

# ---------------------------------------------------------------- the pass

def analyze(arch: Architecture) -> Report:
    """Costs and receptive fields of every node of `arch`, and their totals. Linear in the graph's size."""
    with gc_paused():
        return _analyze(arch)


def _analyze(arch: Architecture) -> Report:
    shapes: dict[str, tuple[int, ...]] = {}
    fields: dict[str, Field] = {}
    for i in arch.inputs:
        shapes[i.name] = i.shape
        n = len(i.shape) - 1
        fields[i.name] = Field((1,) * n, (1,) * n, (0,) * n)

    layouts: dict[str, tuple[int, ...]] = {i.name: tuple(range(len(i.shape))) for i in arch.inputs}
    layers: list[Layer] = []
    warnings: list[str] = []
    for node in arch.nodes:
        op = REGISTRY[node.op]
        a = node.attrs
        ins = [shapes[x] for x in node.inputs]
        out = node.shape
        # Learnable tensors (and what is computed from them alone) see no input: they take no part in fields.
        varying = [i for i, x in enumerate(node.inputs) if x in fields]
        if node.op in SOURCES or not varying:
            field, layout = None, None
        elif op.arity is None:  # a merge: its own rule first (none today), then the union of its paths
            spatial = math.prod(out[1:])
            local = [fields[node.inputs[i]] for i in varying if math.prod(ins[i][1:]) == spatial or spatial == 1]
            # Inputs broadcast over the map (a gate's pooled [C, 1, 1]) only make the result global.
            broadcast_global = len(local) < len(varying)
            field, warning = _merge(local or [fields[node.inputs[varying[0]]]], broadcast_global)
            lays = {layouts[node.inputs[i]] for i in varying}
            lay = lays.pop() if len(lays) == 1 else (UNKNOWN,) * len(ins[varying[0]])
            rule = op.receptive(a, ins)
            field = _apply(field, rule, node.name, lay, ins[varying[0]])
            layout = _layout_after(lay, rule, ins[varying[0]], out)
            if warning:
                warnings.append(f"{node.name} ({node.span}): {node.op} of {', '.join(node.inputs)}: {warning}")
        else:
            rule, lay = op.receptive(a, ins), layouts[node.inputs[0]]
            field = _apply(fields[node.inputs[0]], rule, node.name, lay, ins[0])
            layout = _layout_after(lay, rule, ins[0], out)
        shapes[node.name] = out
        if field is not None:
            fields[node.name], layouts[node.name] = field, layout
        layers.append(Layer(node.name, node.op, node.inputs, out, op.params(a, ins, out), op.buffers(a, ins, out),
                            op.macs(a, ins, out), field or _CONSTANT, str(node.span)))

    outputs = {o.name: shapes[o.node] for o in arch.outputs}
    training = arch.training_only()
    return Report(
        name=arch.name, variant=arch.variant,
        inputs={i.name: i.shape for i in arch.inputs}, outputs=outputs,
        params=sum(r.params for r in layers), buffers=sum(r.buffers for r in layers),
        macs=sum(r.macs for r in layers if r.name not in training),  # inference: eval mode skips these
        memory=_memory(arch, layers),
        receptive_field=_network_field(arch, fields, shapes),
        layers=tuple(layers), warnings=tuple(warnings),
        blocks={s.name: s.block for s in arch.scopes},
    )


def _memory(arch: Architecture, layers: list[Layer]) -> Memory:
    size = {i.name: math.prod(i.shape) * BYTES_PER_VALUE for i in arch.inputs}
    last_use = graph(arch).last_use  # outputs are kept to the end: never freed
    live = peak = sum(size.values())
    total = 0
    for step, (node, row) in enumerate(zip(arch.nodes, layers)):
        size[node.name] = row.memory
        total += row.memory
        live += row.memory
        peak = max(peak, live)
        for x in set(node.inputs):
            if last_use[x] == step:
                live -= size[x]
        if node.name not in last_use:  # a dead end: freed at once
            live -= row.memory
    return Memory(total, peak)


def _network_field(arch: Architecture, fields: dict[str, Field], shapes: dict) -> NetworkField:
    """The field of the last spatial map that feeds the first output, in IR order (a map with a spatial axis
    > 1, or a local one of any size); global when anything between it and the output mixes the whole image."""
    if not arch.outputs:
        return NetworkField((), (), ())
    end = arch.outputs[0].node
    ancestors = graph(arch).ancestors([end])
    # A [C, 1, 1] map still counts when it is local (LeNet's C5 sees the whole 32x32 through convs alone).
    candidates = [n.name for n in arch.nodes if n.name in ancestors and len(n.shape) > 1
                  and n.name in fields and (is_map(n.shape) or not fields[n.name].is_global)]
    candidates += [i.name for i in arch.inputs if i.name in ancestors and len(i.shape) > 1] if not candidates else []
    glob = fields.get(end, _CONSTANT).is_global
    if not candidates:
        f = fields.get(end, _CONSTANT)
        return NetworkField(f.size, f.stride, f.padding, glob, end)
    f = fields[candidates[-1]]
    return NetworkField(f.size, f.stride, f.padding, glob or f.is_global, candidates[-1])


def is_map(shape: tuple[int, ...]) -> bool:
    """A map with a spatial axis larger than 1 (not a vector, nor a [C, 1, 1] map)."""
    return len(shape) > 1 and any(x > 1 for x in shape[1:])


# ---------------------------------------------------------------- text helpers shared by the CLI

def human(n: float, unit: str = "", base: float = 1000.0) -> str:
    """4.09 G, 25.56 M, 512 (3 significant decimals at most)."""
    prefixes = ["", "K", "M", "G", "T", "P"] if base == 1000.0 else ["", "Ki", "Mi", "Gi", "Ti", "Pi"]
    i = 0
    while abs(n) >= base and i < len(prefixes) - 1:
        n /= base
        i += 1
    text = f"{n:.0f}" if i == 0 else f"{n:.2f}"
    return f"{text} {prefixes[i]}{unit}".rstrip()


def macs_text(macs: int) -> str:
    """'4.09 GMACs / 8.18 GFLOPs': the unit is always named."""
    return f"{human(macs, 'MACs')} / {human(2 * macs, 'FLOPs')}"


def bytes_text(n: int) -> str:
    return human(n, "B", 1024.0)


# ---------------------------------------------------------------- the IR as JSON


from .irdump import ir_from_json  # noqa: E402,F401  (archspec.analysis.ir_from_json: the validated way in)


# ---------------------------------------------------------------- feature taps

def boundary(arch: Architecture, members: set[str], outputs: set[str] | frozenset = frozenset(),
             readers: dict[str, list[str]] | None = None, ordered: list | None = None) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a set of nodes: the values its nodes read from outside, in order of first
    use, and its values read outside it or listed in `outputs` (graph outputs, taps), in IR order.
    `readers` (value -> reading node names) may be passed to avoid recomputing it per call, and `ordered`
    (the member nodes in IR order) to keep a call proportional to the set, not to the graph."""
    readers = readers if readers is not None else graph(arch).readers
    ins: dict[str, None] = {}
    outs = []
    for node in ordered if ordered is not None else (n for n in arch.nodes if n.name in members):
        for x in node.inputs:
            if x not in members:
                ins.setdefault(x)
        if node.name in outputs or any(r not in members for r in readers.get(node.name, ())):
            outs.append(node.name)
    return list(ins), outs


@dataclass(frozen=True)
class Tap:
    """A named intermediate tensor for feature extraction: a node, or a scope's single output."""

    name: str
    node: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]  # effective stride of the tensor (per spatial axis), from its receptive field

    @property
    def channels(self) -> int:
        return self.shape[0]

    def to_dict(self) -> dict:
        return {"name": self.name, "node": self.node, "shape": list(self.shape), "channels": self.channels,
                "stride": list(self.stride)}


def taps(arch: Architecture, names: list[str] | tuple[str, ...], report: Report | None = None) -> list[Tap]:
    """Resolve feature-tap names (`layer2`, `features.6`, a node name) to tensors, with shape and stride.
    A scope's tap is the one value it passes on; SpecError naming the tap when there is none or several."""
    from .errors import SpecError
    report = report or analyze(arch)
    layers = {row.name: row for row in report.layers}
    readers = graph(arch).readers
    out, problems = [], []
    for name in names:
        if name in layers:
            node = name
        else:
            members = {n.name for n in arch.nodes if n.name.startswith(name + ".")}
            _, ends = boundary(arch, members, {o.node for o in arch.outputs}, readers)
            if len(ends) != 1:
                problems.append(f"'{name}': " + ("no layer or scope has that name" if not members else
                                                 f"it passes on {len(ends)} tensors ({', '.join(ends)}), not one"))
                continue
            node = ends[0]
        row = layers[node]
        out.append(Tap(name, node, row.shape, row.receptive_field.stride))
    if problems:
        scopes = sorted({s.name for s in arch.scopes if s.name.count(".") == 0})
        raise SpecError(f"cannot tap {'; '.join(problems)}",
                        hint="name a layer or a scope with one output" + (f", e.g. {', '.join(scopes[:6])}" if scopes else ""))
    return out

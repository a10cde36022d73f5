"""Graph facts of an Architecture, computed once per Architecture, and the rewrites every backend shares.

    g = graph(arch)              # cached on arch: a second call is free
    g.node["layer1.0.conv1"]     # index by name (Architecture.node uses it)
    g.readers["x"]               # the nodes that read x, in IR order (a node reading x twice once)
    g.uses["x"]                  # how many inputs of nodes name x (a node reading x twice: 2)
    g.last_use                   # value -> step after which it is dead (outputs: len(arch.nodes))
    last_use(steps, keep)        # the same for any sequence of steps (the source emitter's forwards)

The passes (`foldable_bn`, `inplace_nodes`, `inplace_adds`) choose rewrites from these facts alone: the
torch backend, the ONNX backend and the source emitter apply them. No torch, no numpy here.
"""
from __future__ import annotations

from functools import cached_property
from typing import Collection, Iterable

from .ir import Architecture, Node

__all__ = ["Graph", "foldable_bn", "graph", "inplace_adds", "inplace_nodes", "last_use"]


def last_use(steps: Iterable[Iterable[str]], keep: Iterable[str] = ()) -> dict[str, int]:
    """value -> the index of the last step that reads it; each value in `keep` (returned ones) -> the
    number of steps, alive to the end. A value absent from the result is never read: a dead end."""
    out: dict[str, int] = {}
    n = 0
    for n, reads in enumerate(steps, 1):
        for name in reads:
            out[name] = n - 1
    for name in keep:
        out[name] = n
    return out


class Graph:
    """The dataflow facts of one Architecture; each computed on first use and kept."""

    def __init__(self, arch: Architecture) -> None:
        self.arch = arch

    @cached_property
    def node(self) -> dict[str, Node]:
        """node name -> Node."""
        return {n.name: n for n in self.arch.nodes}

    @cached_property
    def readers(self) -> dict[str, list[str]]:
        """value name -> the nodes that read it, in IR order, each once."""
        out: dict[str, list[str]] = {}
        for node in self.arch.nodes:
            for x in dict.fromkeys(node.inputs):
                out.setdefault(x, []).append(node.name)
        return out

    @cached_property
    def uses(self) -> dict[str, int]:
        """value name -> how many node inputs name it (`mul(x, x)` counts twice)."""
        out: dict[str, int] = {}
        for node in self.arch.nodes:
            for x in node.inputs:
                out[x] = out.get(x, 0) + 1
        return out

    @cached_property
    def outputs(self) -> frozenset[str]:
        """The nodes the outputs return (training ones too)."""
        return frozenset(o.node for o in self.arch.outputs)

    def ancestors(self, values: Iterable[str]) -> set[str]:
        """The values `values` are computed from, themselves included (network inputs too)."""
        seen: set[str] = set()
        stack = list(values)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                node = self.node.get(name)
                if node is not None:
                    stack.extend(node.inputs)
        return seen

    @cached_property
    def last_use(self) -> dict[str, int]:
        """value -> index of the last node that reads it; returned values -> len(arch.nodes)."""
        return last_use((n.inputs for n in self.arch.nodes), self.outputs)


def graph(arch: Architecture) -> Graph:
    """The Graph of `arch`, built once and kept on it (an Architecture is immutable)."""
    try:
        return arch._graph
    except AttributeError:
        g = Graph(arch)
        object.__setattr__(arch, "_graph", g)
        return g


# ---------------------------------------------------------------- passes: which rewrites apply

def foldable_bn(arch: Architecture) -> dict[str, str]:
    """bn node -> the conv or linear node it can be folded into: the bn's input is read by nothing else
    and is not a graph output."""
    g = graph(arch)
    return {node.name: node.inputs[0] for node in arch.nodes
            if node.op == "bn" and getattr(g.node.get(node.inputs[0]), "op", None) in ("conv", "linear")
            and g.uses[node.inputs[0]] == 1 and node.inputs[0] not in g.outputs}


def _private(g: Graph, value: str, protected: Collection[str]) -> bool:
    """`value` is an intermediate that one node input alone reads: writing into it changes nothing else."""
    return g.uses.get(value) == 1 and value not in protected and value not in g.outputs


def inplace_nodes(arch: Architecture, ops: Collection[str], aliasing: Collection[str]) -> set[str]:
    """Nodes of `ops` (activations) that may run in place: their input is an intermediate read by no other
    node, not returned, and not the result of an op of `aliasing` (which returns its input or a view of it:
    writing into it would write into a tensor other nodes may read)."""
    g = graph(arch)
    inputs = {i.name for i in arch.inputs}
    return {n.name for n in arch.nodes if n.op in ops and _private(g, n.inputs[0], inputs)
            and getattr(g.node.get(n.inputs[0]), "op", None) not in aliasing}


def inplace_adds(arch: Architecture, protected: Collection[str] = frozenset()) -> frozenset:
    """Adds that may write into their first input, as torchvision's `out += identity`: that input is a
    batch norm's output (its backward does not need it) of the add's own shape, read by nothing else and
    not returned (nor in `protected`)."""
    g = graph(arch)
    protected = set(protected) | {i.name for i in arch.inputs}
    return frozenset(n.name for n in arch.nodes if n.op == "add" and len(n.inputs) == 2
                     and getattr(g.node.get(n.inputs[0]), "op", None) == "bn" and _private(g, n.inputs[0], protected)
                     and tuple(g.node[n.inputs[0]].shape) == tuple(n.shape))

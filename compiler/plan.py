"""The module tree of a compiled model, planned from the IR's node names alone (no torch).

Every proper prefix of a node name is a container (`layer1`, `layer1.0`, `layer1.0.downsample`); its
children are registered in the order their first node appears, so `state_dict` order is IR order, but
where a scope's `order` statement (Architecture.orders) lists its children in another order.
A container whose nodes can run as one unit (no outside path leaves it and comes back) is *callable*:
its parent calls it with the values it reads and gets back the values it passes on, so a forward hook
on it fires with its output. A callable container whose children form a straight chain, one value in
and one out, is a *sequential* one (`nn.Sequential` in torch). Any other container is *passive*: it
only holds modules, and the nearest callable ancestor runs its members inline. The root is always
callable. Ops are told apart only by the backend's tables: `functions` (no module: merges, reshapes)
and `parameters` (a learnable tensor owned by its container); every other node is a module.

The planning is shared by the torch backend (compiler/torch.py) and the source emitter (pysource.py).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from archspec.analysis import boundary
from archspec.errors import Diagnostic, SpecError
from archspec.graph import graph
from archspec.ir import Architecture

__all__ = ["Container", "Plan", "plan"]

ROOT = ""


@dataclass
class Container:
    """One container module. `items` is what its forward runs, in order: node names and the paths of
    callable child containers (for a passive container, empty). Paths are full (`layer1.0`)."""

    path: str
    block: str | None = None       # the block the scope instantiates (None for a group or the root)
    children: list[str] = field(default_factory=list)  # full paths of direct children, registration order
    kind: str = "passive"          # "root", "block", "sequential" or "passive"
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)

    @property
    def callable(self) -> bool:
        return self.kind != "passive"

    def rel(self, path: str) -> str:
        """A descendant's path relative to this container."""
        return path[len(self.path) + 1:] if self.path else path


@dataclass
class Plan:
    containers: dict[str, Container]   # by path; ROOT is the model itself
    nodes: dict[str, object]           # node name -> Node, the nodes that run (IR order)
    outputs: list[str]                 # the values the root returns

    def parent(self, path: str) -> str:
        return path.rsplit(".", 1)[0] if "." in path else ROOT


def plan(arch: Architecture, functions: set[str], parameters: set[str] = frozenset(),
         outputs: list[str] | None = None, flat: bool = False) -> Plan:
    """The module tree for `arch`. functions: node names that are function calls; parameters: node
    names that are learnable tensors of their container. outputs: the values the root returns (default
    the architecture's outputs, and every node runs); given, only the nodes they need run. flat: every container passive (the
    whole dataflow in the root's forward)."""
    outs = list(outputs) if outputs is not None else [o.node for o in arch.outputs]
    # Taps keep only what they need; the model itself runs every node, dead ends too (their
    # parameters are part of the model).
    needed = _ancestors(arch, outs) if outputs is not None else {n.name for n in arch.nodes}
    nodes = {n.name: n for n in arch.nodes if n.name in needed}
    containers = {ROOT: Container(ROOT, kind="root")}
    blocks = {s.name: s.block for s in arch.scopes}
    errors = []
    for name, node in nodes.items():
        parts = name.split(".")
        for k in range(len(parts)):
            path, parent = ".".join(parts[:k + 1]), ".".join(parts[:k])
            if k < len(parts) - 1 and path not in containers:
                if path in nodes:
                    errors.append(Diagnostic(f"'{path}' is a layer and also holds '{name}'",
                                             node.span.pos(), "rename one of the labels"))
                    break
                containers[path] = Container(path, blocks.get(path))
                containers[parent].children.append(path)
            elif k == len(parts) - 1:
                if name in containers:
                    errors.append(Diagnostic(f"'{name}' is a layer and also a scope", node.span.pos(),
                                             "rename one of the labels"))
                    break
                containers[parent].children.append(name)
    if errors:
        raise SpecError(errors)
    for path, names in arch.orders.items():  # `order` statements: registration order, not data flow
        if path in containers:
            _reorder(containers[path], names)

    sub = _subset(arch, nodes)
    readers = graph(sub).readers
    members: dict[str, set[str]] = {p: set() for p in containers}
    for name in nodes:
        parts = name.split(".")
        for k in range(len(parts)):
            members[".".join(parts[:k])].add(name)
    index = {name: i for i, name in enumerate(nodes)}
    keep = set(outs)
    for path, c in containers.items():
        if path == ROOT:
            c.inputs, c.outputs = [i.name for i in arch.inputs], outs
            continue
        ordered = [nodes[m] for m in sorted(members[path], key=index.__getitem__)]
        c.inputs, c.outputs = boundary(sub, members[path], keep, readers, ordered)
        if not flat and c.outputs and _convex(sub, members[path], index, readers):
            c.kind = "block"

    # Forward order per callable container; a child whose call cannot be ordered (two interleaved
    # containers feeding each other) becomes passive and is run inline.
    for path in sorted(containers, key=lambda p: p.count(".") if p else -1):
        c = containers[path]
        if c.callable:
            c.items = _order(c, containers, nodes, members, index)
    for c in containers.values():
        if c.kind == "block" and _is_chain(c, containers, nodes, functions | parameters):
            c.kind = "sequential"
    return Plan(containers, nodes, outs)


def _reorder(c: Container, names: tuple[str, ...]) -> None:
    """The children an `order` statement names take the places they held, in the statement's order."""
    slots = [i for i, ch in enumerate(c.children) if c.rel(ch) in names]
    by_name = {c.rel(ch): ch for ch in c.children}
    for i, name in zip(slots, [n for n in names if n in by_name]):
        c.children[i] = by_name[name]


def _ancestors(arch: Architecture, outs: list[str]) -> set[str]:
    g = graph(arch)
    unknown = [o for o in outs if o not in g.node and o not in {i.name for i in arch.inputs}]
    if unknown:
        raise SpecError(f"no layer named {', '.join(repr(u) for u in unknown)} to return")
    return g.ancestors(outs)


def _subset(arch: Architecture, nodes: dict) -> Architecture:
    if len(nodes) == len(arch.nodes):
        return arch
    return arch.model_copy(update={"nodes": tuple(nodes.values())})


def _convex(arch: Architecture, members: set[str], index: dict[str, int], readers) -> bool:
    """No path leaves the member set and comes back (then the set can run as one call)."""
    last = max(index[m] for m in members)
    tainted: set[str] = set()  # outside nodes that depend on a member
    for m in sorted(members, key=index.get):
        for r in readers.get(m, ()):
            if r not in members and index[r] < last:
                tainted.add(r)
    frontier = sorted(tainted, key=index.get)
    while frontier:
        x = frontier.pop()
        for r in readers.get(x, ()):
            if r in members:
                return False
            if r not in tainted and index[r] < last:
                tainted.add(r)
                frontier.append(r)
    return True


def _order(c: Container, containers, nodes, members, index) -> list[str]:
    """The items `c`'s forward runs, topologically ordered (ties: IR order)."""
    while True:
        items = _expand(c.children, containers)
        owner: dict[str, str] = {}
        for it in items:
            for m in (members[it] if it in containers else (it,)):
                owner[m] = it
        deps = {it: set() for it in items}
        for it in items:
            for x in (containers[it].inputs if it in containers else nodes[it].inputs):
                if x in owner and owner[x] != it:
                    deps[it].add(owner[x])
        first = {it: min(index[m] for m in members[it]) if it in containers else index[it] for it in items}
        users: dict[str, list[str]] = {}
        for it, ds in deps.items():
            for d in ds:
                users.setdefault(d, []).append(it)
        left = {it: len(ds) for it, ds in deps.items()}
        ready = [(first[it], it) for it in items if not left[it]]
        heapq.heapify(ready)
        done = []
        while ready:
            _, it = heapq.heappop(ready)
            done.append(it)
            for u in users.get(it, ()):
                left[u] -= 1
                if not left[u]:
                    heapq.heappush(ready, (first[u], u))
        if len(done) == len(items):
            return done
        stuck = min((it for it in items if left[it] and it in containers), key=first.get)
        containers[stuck].kind = "passive"
        containers[stuck].items = []


def _expand(children: list[str], containers) -> list[str]:
    out = []
    for ch in children:
        if ch in containers and not containers[ch].callable:
            out.extend(_expand(containers[ch].children, containers))
        else:
            out.append(ch)
    return out


def _is_chain(c: Container, containers, nodes, not_modules: set[str]) -> bool:
    """One value in, one out, and every child a module that reads the previous child's value alone."""
    if len(c.inputs) != 1 or len(c.outputs) != 1 or c.items != c.children:
        return False
    prev = c.inputs[0]
    for it in c.items:
        if it in containers:
            ch = containers[it]
            if ch.inputs != [prev] or len(ch.outputs) != 1:
                return False
            prev = ch.outputs[0]
        else:
            if it in not_modules or list(nodes[it].inputs) != [prev]:
                return False
            prev = it
    return prev == c.outputs[0]

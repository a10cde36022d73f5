"""Standalone PyTorch source from an archspec IR (`archspec compile SPEC --emit python`).

The emitted file imports only torch. It has the module tree `to_torch` builds (compiler/plan.py: same
`state_dict` keys, order and shapes; the constructor calls come from the same lowering table), written
as a person would: one class per kind of block (its children passed to its constructor, a
straight-line `forward`), `nn.Sequential` for chains, and a model class whose `__init__` builds the
tree and whose `forward` calls its top-level blocks. In each `forward` the main path is `x`; values
still needed later (a residual's input) keep their own variable. Spec text reaches the file only as
`repr` literals or as comments stripped of control characters.
"""
from __future__ import annotations

import inspect
import keyword
from pathlib import Path

from torch import nn

from archspec.analysis import analyze
from archspec.errors import SpecError, printable
from archspec.ir import Architecture

from . import torch as backend
from .plan import Container, Plan

__all__ = ["emit_python"]

# build() checks the weights fit before allocating them, as to_torch does (compiler/runtime.check_fits): a model
# written for a bigger machine fails with a message, not by the OOM killer.
_CHECK_MEMORY = '''\
def _check_memory(nbytes: int) -> None:
    """MemoryError, before allocating, when `nbytes` exceed the memory this machine has available."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):  # not Linux: let torch try
        return
    if nbytes > free:
        raise MemoryError(f"the weights need {nbytes / 2**30:,.1f} GiB, more than the {free / 2**30:,.1f} GiB "
                          "of memory available: build it on a bigger machine")
'''

_HELPERS = '''\
def _sequential(*children: tuple[str, nn.Module]) -> nn.Sequential:
    """An nn.Sequential with named children (names that are not 0, 1, 2, ...)."""
    seq = nn.Sequential()
    for name, module in children:
        seq.add_module(name, module)
    return seq


class Container(nn.Module):
    """Holds modules that its parent's forward calls one by one (they run interleaved with others), and
    tensors it reads: (name, parameter), (name, buffer) or (name, buffer, False) for one not stored."""

    def __init__(self, *children: tuple) -> None:
        super().__init__()
        for name, value, *persistent in children:
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value, persistent=all(persistent))
            else:
                self.add_module(name, value)
'''


def _comment(text: str) -> str:
    """Text safe inside a # comment: printable characters only, no line breaks."""
    return printable(str(text))


def _doc(text: str) -> str:
    """Spec text (a path, a parameter value, a command line) made safe inside a triple-quoted docstring:
    no control characters or line breaks, and no quote or backslash that could end or bend the literal."""
    return _comment(text).replace("\\", "\\\\").replace('"', '\\"')


def _attr_ok(part: str) -> bool:
    """Whether `module.part` reaches the child: an identifier that is no nn.Module attribute."""
    return part.isidentifier() and not keyword.iskeyword(part) and not hasattr(nn.Module, part)


def _path(parts: list[str]) -> str:
    """Source that reaches a submodule: self.layer1, getattr(self, "0").conv1."""
    out = "self"
    for part in parts:
        out = f"{out}.{part}" if _attr_ok(part) else f"getattr({out}, {part!r})"
    return out


def _scope_notes(arch: Architecture) -> dict[str, str]:
    """scope name -> a comment naming the block it instantiates and where."""
    notes = {}
    for sc in arch.scopes:
        what = f"{sc.block}" if sc.block else "group"
        notes[sc.name] = _comment(f"{sc.name}: {what} ({Path(sc.span.file).name}:{sc.span.line})")
    return notes


def _init_lines(arch: Architecture, specs) -> tuple[list[str], list[str]]:
    """(helper function sources, body lines of _init_weights) for the spec's init declarations."""
    by_scheme: dict[str, list[str]] = {}
    for node, spec in specs:
        scheme = arch.init.get(node.op, "default")
        fn = backend.INIT.get(scheme)
        if fn is None:
            continue
        classes = by_scheme.setdefault(fn.__name__, [])
        if spec.cls not in classes and spec.cls not in backend.CUSTOM_MODULES:
            classes.append(spec.cls)
    if not by_scheme:
        return [], []
    helpers = [inspect.getsource(backend._zero_bias)] + [inspect.getsource(getattr(backend, n)) for n in by_scheme]
    body = ["for m in self.modules():"]
    for i, (fn, classes) in enumerate(by_scheme.items()):
        kinds = ", ".join(f"nn.{c}" for c in classes)
        cond = f"isinstance(m, ({kinds},))"
        body.append(f"    {'if' if i == 0 else 'elif'} {cond} and m.weight is not None:")
        body.append(f"        {fn}(m)")
    return helpers, body


class _Names:
    """Variable allocation for forward: reuse a name once its value is dead, so a chain reads x = f(x)."""

    def __init__(self, reserved: set[str]):
        self.reserved = reserved
        self.free: list[str] = []
        self.count = 0

    def take(self, dying: list[str]) -> str:
        # Prefer the variable of an input that dies here (x = f(x)), else a free one, else a new one.
        for v in sorted(dying, key=self._order):  # "x" first: the main path keeps its name
            if v in self.free:
                self.free.remove(v)
                return v
        if self.free:
            self.free.sort(key=self._order)
            return self.free.pop(0)
        while True:
            name = "x" if self.count == 0 else f"x{self.count}"
            self.count += 1
            if name not in self.reserved:
                return name

    @staticmethod
    def _order(name: str) -> int:
        return 0 if name == "x" else int(name[1:]) if name[1:].isdigit() else 1 << 30

    def release(self, name: str) -> None:
        if name not in self.reserved and name not in self.free:
            self.free.append(name)


def _forward_lines(p: Plan, c: Container, kinds: dict[str, str], taps: dict[str, str] | None = None,
                   arch: Architecture | None = None) -> tuple[list[str], list[str]]:
    """(argument names, body lines) of container `c`'s forward: one line per layer or block call.
    arch (the root only): eval mode's forward, without the training outputs and what only they need."""
    skip = arch.training_only() if arch is not None else set()
    steps = []  # (values read, values written, expression)
    shared = backend.shared_values(p.nodes.values())
    for item in c.items:
        rel = c.rel(item).split(".")
        if item in p.containers:
            child = p.containers[item]
            if child.outputs and all(v in skip for v in child.outputs):
                continue
            steps.append((list(child.inputs), list(child.outputs), lambda args, rel=rel: f"{_path(rel)}({', '.join(args)})"))
            continue
        if item in skip:
            continue
        node = p.nodes[item]
        kind = kinds[item]
        if kind == "function":
            expr = (lambda args, node=node: backend.MERGES[node.op].source(_expand_shared(node, args, shared),
                                                                            node.attrs))
        elif kind in ("parameter", "buffer"):  # with a batch axis of 1, as in to_torch
            expr = (lambda args, rel=rel, node=node: _path(rel) + ("" if node.attrs.get("batch") else ".unsqueeze(0)"))
        else:
            expr = (lambda args, rel=rel: f"{_path(rel)}({', '.join(args)})")
        steps.append((list(node.inputs), [item], expr))
    last_use: dict[str, int] = {}
    for i, (reads, _, _) in enumerate(steps):
        for name in reads:
            last_use[name] = i
    outputs = c.outputs if arch is None else [v for v, o in zip(c.outputs, arch.outputs) if not o.training]
    returned = list(taps.values()) if taps is not None else outputs
    for o in returned:
        last_use[o] = len(steps)  # returned: alive to the end
    if c.path == "":
        names = _Names(set(c.inputs) | {"self", "torch", "nn"})
        var = {i: i for i in c.inputs}
        args = list(c.inputs)
    else:
        names = _Names({"self", "torch", "nn"})
        var = {i: names.take([]) for i in c.inputs}
        args = [var[i] for i in c.inputs]
    lines = []
    for i, (reads, writes, expr) in enumerate(steps):
        text = expr([var[n] for n in reads])
        dying = [var[n] for n in dict.fromkeys(reads) if last_use.get(n) == i]
        for v in dying:  # released before taking: the result may reuse an input's variable
            names.release(v)
        live = [w for w in writes if w in last_use]
        if not live:  # a dead end (nothing reads it): still run it, as to_torch does
            lines.append(text)
            continue
        targets = []
        for w in writes:
            var[w] = names.take(dying) if w in last_use else "_"
            targets.append(var[w])
        lines.append(f"{', '.join(targets)} = {text}")
    if taps is not None:
        lines.append("return {" + ", ".join(f"{k!r}: {var[v]}" for k, v in taps.items()) + "}")
    else:
        outs = [var[o] for o in outputs]
        lines.append(f"return {outs[0]}" if len(outs) == 1 else f"return ({', '.join(outs)})")
    return args, lines


def _expand_shared(node, args: list[str], shared: set[str]) -> list[str]:
    """A cat of values shared by the batch (batch axis of 1) and per-sample ones: expand the shared ones."""
    if node.op != "cat" or not shared & set(node.inputs) or set(node.inputs) <= shared:
        return args
    batch = next(a for a, n in zip(args, node.inputs) if n not in shared)
    return [f"{a}.expand({batch}.shape[0], {', '.join(['-1'] * len(node.shape))})" if n in shared else a
            for a, n in zip(args, node.inputs)]


class _Tree:
    """The emitted classes and constructor expressions for a plan."""

    def __init__(self, arch: Architecture, p: Plan, specs: dict, kinds: dict[str, str], taken: set[str]):
        self.arch, self.p, self.specs, self.kinds = arch, p, specs, kinds
        self.notes = _scope_notes(arch)
        self.classes: dict[tuple, str] = {}      # (forward, children) -> class name
        self.sources: list[list[str]] = []       # class definitions, in order of first use
        self.taken = set(taken)
        self.heads: set[str] = set()             # the constructors used ("nn.Sequential(", ...)

    def uses(self, head: str) -> bool:
        return head in self.heads

    def how(self, child: str) -> str:
        """How `child` is registered on its container (see _set)."""
        kind = self.kinds.get(child, "module")
        if kind == "buffer" and not self.p.nodes[child].attrs.get("persistent", True):
            return "transient"
        return kind

    def children(self, c: Container) -> list[str]:
        return [ch for ch in c.children if self.kinds.get(ch) != "function"]

    def klass(self, c: Container) -> str:
        """The class of a callable block (shared by blocks with the same children and forward)."""
        args, body = _forward_lines(self.p, c, self.kinds)
        kids = tuple(c.rel(ch) for ch in self.children(c))
        hows = tuple(self.how(ch) for ch in self.children(c))
        key = (tuple(args), tuple(body), kids, hows)
        if key not in self.classes:
            base = backend._camel(c.block or "block")
            name, k = base, 2
            while name in self.taken:
                name, k = f"{base}{k}", k + 1
            self.taken.add(name)
            self.classes[key] = name
            params = _params(kids)
            lines = [f"class {name}(nn.Module):"]
            note = self.notes.get(c.path)
            if note:
                lines.append(f"    # first built for {note}")
            lines.append(f"    def __init__(self, {', '.join(params)}) -> None:" if params else
                         "    def __init__(self) -> None:")
            lines.append("        super().__init__()")
            for kid, param, how in zip(kids, params, hows):
                lines.append(f"        {_set(kid, param, how)}")
            sig = ", ".join(f"{a}: torch.Tensor" for a in args)
            lines.append("")
            lines.append(f"    def forward(self, {sig}):")
            lines.extend(f"        {line}" for line in body)
            self.sources.append(lines)
        return self.classes[key]

    def expr(self, path: str, indent: str) -> list[str]:
        """Source lines of an expression that builds the module (or parameter) at `path`."""
        if path not in self.p.containers:
            return [self.specs[path].source()]
        c = self.p.containers[path]
        kids = self.children(c)
        names = [c.rel(ch) for ch in kids]
        inner = indent + "    "
        if c.kind == "sequential" and names == [str(i) for i in range(len(names))]:
            head, items = "nn.Sequential(", [self.expr(ch, inner) for ch in kids]
        elif c.kind in ("sequential", "passive"):
            head = "_sequential(" if c.kind == "sequential" else "Container("
            items = [[f"({n!r}, " + self.expr(ch, inner)[0]] + self.expr(ch, inner)[1:] for n, ch in zip(names, kids)]
            items = [lines[:-1] + [lines[-1] + (", False)" if self.how(ch) == "transient" else ")")]
                     for lines, ch in zip(items, kids)]
        else:
            head, items = f"{self.klass(c)}(", [self.expr(ch, inner) for ch in kids]
        self.heads.add(head)
        note = self.notes.get(path)
        out = [head + (f"  # {note}" if note else "")]
        for n, lines in zip(names, items):
            first = f"{inner}{lines[0]}"
            out.append(first)
            out.extend(lines[1:])
            out[-1] += ","
            if len(lines) == 1:
                out[-1] += f"  # {_comment(n)}"
        out.append(f"{indent})")
        return out


def _params(kids: tuple[str, ...]) -> list[str]:
    """Constructor argument names for children: the name when it is a plain identifier, else m<name>."""
    out, seen = [], {"self"}
    for kid in kids:
        name = kid if kid.isidentifier() and not keyword.iskeyword(kid) else "m" + backend._identifier(kid).lstrip("_")
        while name in seen or keyword.iskeyword(name):
            name += "_"
        seen.add(name)
        out.append(name)
    return out


def _set(name: str, value: str, how: str = "module") -> str:
    """Register a child under `name` on self: how is "module", "parameter", "buffer" or "transient" (a
    buffer left out of the state_dict); a plain tensor attribute would not be a buffer."""
    if how in ("buffer", "transient"):
        return f"self.register_buffer({name!r}, {value}{', persistent=False' if how == 'transient' else ''})"
    if _attr_ok(name):
        return f"self.{name} = {value}"
    return f"self.{'register_parameter' if how == 'parameter' else 'add_module'}({name!r}, {value})"


def emit_python(arch: Architecture, inplace: bool = True, command: str | None = None,
                outputs: list[str] | None = None) -> str:
    """Readable, standalone PyTorch source (imports only torch) for `arch`. outputs: feature taps
    (layer or scope names): forward returns {name: tensor} and only what they need is built."""
    leaf = backend.leaf_specs(arch, inplace)
    specs = {node.name: spec for node, spec in leaf}
    kinds = backend.node_kinds(arch, specs)
    taps = None
    if outputs:
        from archspec.analysis import taps as resolve_taps
        taps = {t.name: t.node for t in resolve_taps(arch, list(outputs))}
    p = backend.make_plan(arch, kinds, list(dict.fromkeys(taps.values())) if taps else None)
    errors = backend.name_errors(arch, p)
    if errors:
        raise SpecError(errors)
    cls = backend.class_name(arch)
    specs_used = [(node, spec) for node, spec in leaf if node.name in p.nodes]
    customs = sorted({s.cls for _, s in specs_used if s.cls in backend.CUSTOM_MODULES})
    init_helpers, init_body = _init_lines(arch, specs_used)
    tree = _Tree(arch, p, specs, kinds, {cls, "Container", "Model", *backend.CUSTOM_MODULES})
    root = p.containers[""]
    init = []
    for child in tree.children(root):
        lines = tree.expr(child, "        ")
        name = root.rel(child)
        where = "" if child in p.containers else \
            f"  # {_comment(Path(p.nodes[child].span.file).name)}:{p.nodes[child].span.line}"
        value = lines[0] if len(lines) == 1 else "\n".join(lines)
        init.append(f"        {_set(name, value, tree.how(child))}" + (where if len(lines) == 1 else ""))
    args, body = _forward_lines(p, root, kinds, taps)

    out: list[str] = []
    title = _doc(arch.title)
    origin = f"`{command}`" if command else "archspec"
    params = ", ".join(f"{k}={v!r}" for k, v in arch.params.items())
    out.append(f'"""{title}: PyTorch model generated by {_doc(origin)} from {_doc(arch.source or "a spec")}.\n')
    if params:
        out.append(f"Parameters: {_doc(params)}.")
    out.append("Standalone: needs only torch. The state_dict keys equal those of archspec's to_torch.\n")
    out.append("    model = build()")
    out.append(f"    model.load_state_dict(torch.load({_doc(repr(arch.title + '.pth'))}, weights_only=True))")
    out.append('"""')
    out.append("import math  # noqa: F401  (used by some init schemes)\n")
    out.append("import torch")
    out.append("from torch import nn\n")
    shapes = ", ".join(f"{i.name!r}: {tuple(i.shape)!r}" for i in arch.inputs)
    out.append(f"# Input shapes without the batch axis.\nINPUT_SHAPES = {{{shapes}}}")
    out.append(f"OUTPUT_NAMES = {tuple(taps) if taps else tuple(o.name for o in arch.outputs if not o.training)!r}"
               "  # in eval mode\n")
    out.append("")
    helpers = _HELPERS.split("\n\n\n")  # _sequential, Container: only those the tree uses
    out.extend(h.rstrip("\n") + "\n\n" for h, used in zip(helpers, (tree.uses("_sequential("), tree.uses("Container(")))
               if used)
    for name in customs:
        out.append(inspect.getsource(backend.CUSTOM_MODULES[name]) + "\n")
    for h in init_helpers:
        out.append(h + "\n")
    for lines in tree.sources:
        out.append("\n".join(lines) + "\n\n")

    out.append(f"class {cls}(nn.Module):")
    out.append(f'    """{title} ({len(arch.nodes)} nodes)."""\n')
    out.append("    def __init__(self) -> None:")
    out.append("        super().__init__()")
    out.extend(init)
    if init_body:
        out.append("        self._init_weights()\n")
        decl = _doc("; ".join(f'init {k} = "{v}"' for k, v in arch.init.items()))
        out.append("    def _init_weights(self) -> None:")
        out.append(f'        """The spec\'s declarations: {decl}."""')
        out.extend(f"        {line}" for line in init_body)
    out.append("")
    sig = ", ".join(f"{a}: torch.Tensor" for a in args)
    ret = "dict[str, torch.Tensor]" if taps else "torch.Tensor" if len(root.outputs) == 1 else "tuple[torch.Tensor, ...]"
    if taps is None and any(o.training for o in arch.outputs):  # training mode also returns the training outputs
        ret = "torch.Tensor | tuple[torch.Tensor, ...]"
        out.append(f"    def forward(self, {sig}) -> {ret}:")
        out.append("        if self.training:")
        out.append(f"            return self._forward_train({', '.join(args)})")
        out.extend(f"        {line}" for line in _forward_lines(p, root, kinds, None, arch)[1])
        out.append("")
        out.append(f"    def _forward_train(self, {sig}) -> tuple[torch.Tensor, ...]:")
        out.append('        """Training mode: every output, the training ones included."""')
    else:
        out.append(f"    def forward(self, {sig}) -> {ret}:")
    out.extend(f"        {line}" for line in body)
    out.append("\n")
    out.append(f"Model = {cls}\n")
    out.append(f"WEIGHT_BYTES = {analyze(arch).params * 4}  # float32 parameters\n\n")
    out.append(_CHECK_MEMORY + "\n")
    out.append(f"def build() -> {cls}:")
    out.append(f'    """A fresh {title} (MemoryError, before allocating, when its weights do not fit)."""')
    out.append("    _check_memory(WEIGHT_BYTES)")
    out.append(f"    return {cls}()\n\n")
    out.append('if __name__ == "__main__":')
    out.append("    model = build().eval()")
    out.append("    inputs = [torch.randn(1, *shape) for shape in INPUT_SHAPES.values()]")
    out.append("    with torch.no_grad():")
    out.append("        y = model(*inputs)")
    out.append("    y = tuple(y.values()) if isinstance(y, dict) else y")
    out.append("    shapes = [tuple(t.shape) for t in (y if isinstance(y, tuple) else (y,))]")
    out.append(f'    print({arch.title + ":"!r}, sum(p.numel() for p in model.parameters()), "parameters, outputs", shapes)')
    return "\n".join(out) + "\n"

"""Standalone PyTorch source from an archspec IR (`archspec compile SPEC --emit python`).

The emitted file imports only torch. Its class builds the same module tree as `to_torch` (same
`state_dict` keys, order and shapes: the constructor calls come from the same lowering table) and
has a straight-line `forward` written like hand-written code: the main path is `x`, values that
are still needed later (a residual's input, a saved tensor) keep their own variable.
"""
from __future__ import annotations

import inspect
import keyword
from pathlib import Path

from torch import nn

from archspec.ir import Architecture

from . import torch as backend

__all__ = ["emit_python"]

_SCOPE_HELP = '''\
def _get(parent: nn.Module, name: str) -> nn.Module:
    """A child module by name (used for names that are not Python identifiers, such as "0")."""
    return parent._modules[name]
'''


def _attr_ok(part: str) -> bool:
    """Whether `module.part` reaches the child: an identifier that no nn.ModuleDict attribute shadows."""
    return part.isidentifier() and not keyword.iskeyword(part) and not hasattr(nn.ModuleDict, part)


def _path(parts: list[str]) -> str:
    """Source that reaches a submodule: self.layer1["0"].conv1."""
    out = "self"
    for i, part in enumerate(parts):
        if _attr_ok(part):
            out += f".{part}"
        elif i == 0:  # the root is the model class itself (not a ModuleDict): no [] there
            out = f"_get({out}, {part!r})"
        else:
            out += f"[{part!r}]"
    return out


def _assign(parts: list[str], value: str) -> str:
    parent, leaf = parts[:-1], parts[-1]
    if _attr_ok(leaf):
        return f"{_path(parent)}.{leaf} = {value}"
    if not parent:
        return f"self.add_module({leaf!r}, {value})"
    return f"{_path(parent)}[{leaf!r}] = {value}"


def _scope_notes(arch: Architecture) -> dict[str, str]:
    """scope name -> a comment naming the block it instantiates and where."""
    notes = {}
    for s in arch.scopes:
        what = f"{s.block}" if s.block else "group"
        notes[s.name] = f"{s.name}: {what} ({Path(s.span.file).name}:{s.span.line})"
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


def _forward_lines(arch: Architecture, inference: bool = False) -> list[str]:
    """The body of forward; `inference`: without the training outputs and the nodes only they need."""
    if inference and any(o.training for o in arch.outputs):
        skip = arch.training_only()
        arch = arch.model_copy({"nodes": tuple(n for n in arch.nodes if n.name not in skip),
                                "outputs": tuple(o for o in arch.outputs if not o.training)})
    last_use: dict[str, int] = {}
    for i, node in enumerate(arch.nodes):
        for name in node.inputs:
            last_use[name] = i
    end = len(arch.nodes)
    for o in arch.outputs:
        last_use[o.node] = end  # returned: alive to the end
    inputs = [i.name for i in arch.inputs]
    names = _Names(set(inputs) | {"self", "torch", "nn"})
    var = {i: i for i in inputs}
    notes = _scope_notes(arch)
    scope_names = sorted(notes, key=len, reverse=True)
    blocks = {sc.name: sc.block for sc in arch.scopes}
    lines, announced = [], set()
    for i, node in enumerate(arch.nodes):
        # A comment where a scope starts: every block call entered here (outermost first), and the
        # innermost scope even when it is a plain group.
        inner = next((s for s in scope_names if node.name.startswith(s + ".")), None)
        for s in sorted((s for s in scope_names if node.name.startswith(s + ".") and s not in announced), key=len):
            if s == inner or blocks.get(s):
                announced.add(s)
                lines.append(f"# {notes[s]}")
        args = [var[n] for n in node.inputs]
        dying = [var[n] for n in dict.fromkeys(node.inputs) if last_use.get(n) == i]
        if node.op in backend.MERGES:
            expr = backend.MERGES[node.op].source(args, node.attrs)
        else:
            expr = f"{_path(node.name.split('.'))}({args[0]})"
        for v in dying:  # released before taking: the result may reuse an input's variable
            names.release(v)
        if node.name in last_use:
            var[node.name] = names.take(dying)
            lines.append(f"{var[node.name]} = {expr}")
        else:  # a dead end (nothing reads it): still run it, as to_torch does
            lines.append(expr)
    outs = [var[o.node] for o in arch.outputs]
    lines.append(f"return {outs[0]}" if len(outs) == 1 else f"return ({', '.join(outs)})")
    return lines


def emit_python(arch: Architecture, inplace: bool = True, command: str | None = None) -> str:
    """Readable, standalone PyTorch source (imports only torch) for `arch`."""
    specs = backend.leaf_specs(arch, inplace)
    cls = backend.class_name(arch)
    customs = sorted({s.cls for _, s in specs if s.cls in backend.CUSTOM_MODULES})
    init_helpers, init_body = _init_lines(arch, specs)

    out: list[str] = []
    title = arch.title
    origin = f"`{command}`" if command else "archspec"
    params = ", ".join(f"{k}={v!r}" for k, v in arch.params.items())
    out.append(f'"""{title}: PyTorch model generated by {origin} from {arch.source or "a spec"}.\n')
    if params:
        out.append(f"Parameters: {params}.")
    out.append("Standalone: needs only torch. The state_dict keys equal those of archspec's to_torch.\n")
    out.append("    model = build()")
    out.append(f"    model.load_state_dict(torch.load(\"{arch.title}.pth\", weights_only=True))")
    out.append('"""')
    out.append("import math  # noqa: F401  (used by some init schemes)\n")
    out.append("import torch")
    out.append("from torch import nn\n")
    shapes = ", ".join(f"{i.name!r}: {tuple(i.shape)!r}" for i in arch.inputs)
    out.append(f"# Input shapes without the batch axis.\nINPUT_SHAPES = {{{shapes}}}")
    out.append(f"OUTPUT_NAMES = {tuple(o.name for o in arch.outputs if not o.training)!r}  # in eval mode\n")
    out.append("")
    if any(not _attr_ok(n.name.split(".")[0]) for n, _ in specs):
        out.append(_SCOPE_HELP + "\n")
    for name in customs:
        out.append(inspect.getsource(backend.CUSTOM_MODULES[name]) + "\n")
    for h in init_helpers:
        out.append(h + "\n")

    out.append(f"class {cls}(nn.Module):")
    out.append(f'    """{title} ({len(arch.nodes)} nodes)."""\n')
    out.append("    def __init__(self) -> None:")
    out.append("        super().__init__()")
    made: set[tuple[str, ...]] = set()
    notes = _scope_notes(arch)
    for node, spec in specs:
        parts = node.name.split(".")
        for k in range(1, len(parts)):  # containers, created where first needed (state_dict order)
            prefix = tuple(parts[:k])
            if prefix not in made:
                made.add(prefix)
                note = notes.get(".".join(prefix))
                line = _assign(list(prefix), "nn.ModuleDict()")
                out.append(f"        {line}" + (f"  # {note}" if note else ""))
        where = f"{Path(node.span.file).name}:{node.span.line}"
        out.append(f"        {_assign(parts, spec.source())}  # {where}")
    if init_body:
        out.append("        self._init_weights()\n")
        decl = "; ".join(f'init {k} = "{v}"' for k, v in arch.init.items())
        out.append("    def _init_weights(self) -> None:")
        out.append(f'        """The spec\'s declarations: {decl}."""')
        out.extend(f"        {line}" for line in init_body)
    out.append("")
    sig = ", ".join(f"{i.name}: torch.Tensor" for i in arch.inputs)
    ret = "torch.Tensor" if len(arch.outputs) == 1 else "tuple[torch.Tensor, ...]"
    if any(o.training for o in arch.outputs):  # training mode also returns the training outputs
        ret = "torch.Tensor | tuple[torch.Tensor, ...]"
        out.append(f"    def forward(self, {sig}) -> {ret}:")
        out.append("        if self.training:")
        out.append(f"            return self._forward_train({', '.join(i.name for i in arch.inputs)})")
        out.extend(f"        {line}" for line in _forward_lines(arch, inference=True))
        out.append("")
        out.append(f"    def _forward_train(self, {sig}) -> tuple[torch.Tensor, ...]:")
        out.append('        """Training mode: every output, the training ones included."""')
        out.extend(f"        {line}" for line in _forward_lines(arch))
    else:
        out.append(f"    def forward(self, {sig}) -> {ret}:")
        out.extend(f"        {line}" for line in _forward_lines(arch))
    out.append("\n")
    out.append(f"Model = {cls}\n\n")
    out.append(f"def build() -> {cls}:")
    out.append(f'    """A fresh {title}."""')
    out.append(f"    return {cls}()\n\n")
    out.append('if __name__ == "__main__":')
    out.append("    model = build().eval()")
    out.append("    inputs = [torch.randn(1, *shape) for shape in INPUT_SHAPES.values()]")
    out.append("    with torch.no_grad():")
    out.append("        y = model(*inputs)")
    out.append("    shapes = [tuple(t.shape) for t in (y if isinstance(y, tuple) else (y,))]")
    out.append(f'    print("{title}:", sum(p.numel() for p in model.parameters()), "parameters, outputs", shapes)')
    return "\n".join(out) + "\n"

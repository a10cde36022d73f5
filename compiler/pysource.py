"""Standalone PyTorch source from an archspec IR (`archspec compile SPEC --emit python`).

The emitted file imports only torch. It has the module tree `to_torch` builds (compiler/plan.py: same
`state_dict` keys, order and shapes; the constructor calls come from the same lowering table), written
as a person would: one class per kind of block (its children passed to its constructor, a
straight-line `forward`), `nn.Sequential` for chains, and a model class whose `__init__` builds the
tree and whose `forward` calls its top-level blocks. In each `forward` the main path is `x`; values
still needed later (a residual's input) keep their own variable.

The file is written from a syntax tree (`ast`), never by pasting text: every value from a spec (names,
numbers, strings, the title, parameters, the spec path, the command line) is an `ast.Constant`, every
identifier is checked first, and the definitions the file needs (custom modules, init schemes, helpers)
are taken from compiler/standalone.py's own tree. `_Writer` only lays the tree out (line breaks, blank
lines) and adds end-of-line comments stripped of control characters.
"""
from __future__ import annotations

import ast
import functools
import gc
import keyword
import math
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

from torch import nn

from archspec.analysis import analyze
from archspec.errors import SpecError, printable
from archspec.graph import last_use as graph_last_use
from archspec.ir import Architecture
from archspec.ops.tensor import shared_values

from . import torch as backend
from .plan import Container, Plan
from .standalone import CUSTOM_MODULES

__all__ = ["emit_python"]

WIDTH = 120  # a call longer than this is written one argument per line
_LOAD, _STORE = ast.Load(), ast.Store()
_NUMBERS = (int, float, bool)


# ---------------------------------------------------------------- nodes

@functools.cache
def _definitions() -> dict[str, ast.stmt]:
    """name -> definition (class or function) of compiler/standalone.py, from its syntax tree: our own file,
    read as a package resource, never a backend class's source."""
    tree = ast.parse(resources.files(__package__).joinpath("standalone.py").read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}


def _ident(name: str) -> str:
    """`name`, refused unless it is a plain Python identifier (what reaches code outside a literal)."""
    if not (name.isidentifier() and name.isascii() and not keyword.iskeyword(name)):
        raise ValueError(f"not a safe Python identifier: {name!r}")
    return name


def _name(name: str, ctx: ast.expr_context = _LOAD) -> ast.Name:
    return ast.Name(_ident(name), ctx)


def _lit(value) -> ast.expr:
    """A value from a spec (number, string, bool, None; lists, tuples and dicts of them) as a literal."""
    if isinstance(value, (list, tuple)):
        elts = [_lit(v) if type(v) not in _NUMBERS else ast.Constant(v) for v in value]
        return ast.List(elts, _LOAD) if isinstance(value, list) else ast.Tuple(elts, _LOAD)
    if isinstance(value, dict):
        return ast.Dict([_lit(k) for k in value], [_lit(v) for v in value.values()])
    if value is None or isinstance(value, (bool, int, float, str)):
        return ast.Constant(value)
    raise TypeError(f"no Python literal for a {type(value).__name__}")


@functools.lru_cache(maxsize=None)
def _template(text: str, mode: str) -> ast.AST:
    """One of our templates, parsed once (a model of 49,000 layers fills the same few templates again)."""
    return ast.parse(text, mode=mode)


def _fill(node, subs: dict[str, ast.AST]):
    """A copy of a template's tree with its placeholder names replaced by nodes (the cached tree is kept)."""
    if isinstance(node, ast.Name) and node.id in subs:
        return subs[node.id]
    if isinstance(node, list):
        return [_fill(n, subs) for n in node]
    if not isinstance(node, ast.AST):
        return node
    return type(node)(**{f: _fill(v, subs) for f, v in ast.iter_fields(node)})


def _expr(template: str, **subs: ast.AST) -> ast.expr:
    """An expression from our own template text, its upper-case placeholders replaced by nodes."""
    return _fill(_template(template, "eval").body, subs)


def _stmts(template: str, **subs: ast.AST) -> list[ast.stmt]:
    """Statements from our own template text (a placeholder statement `DOC` becomes a docstring)."""
    subs = {k: ast.Constant(v) if isinstance(v, str) else v for k, v in subs.items()}
    return _fill(_template(template, "exec").body, subs)


def _call(func: ast.expr, args: list[ast.expr], kwargs: dict[str, ast.expr] | None = None) -> ast.Call:
    return ast.Call(func, list(args), [ast.keyword(_ident(k), v) for k, v in (kwargs or {}).items()])


def _function(name: str, params: list[str], body: list[ast.stmt], returns: str | None = None,
              annotation: str | None = None) -> ast.FunctionDef:
    """A method `name(self, *params)`, each parameter annotated with `annotation`."""
    args = [ast.arg("self")] + [ast.arg(_ident(p), annotation and _expr(annotation)) for p in params]
    fields = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    return ast.FunctionDef(_ident(name), ast.arguments([], args, None, [], [], None, []), body, [],
                           returns and _expr(returns), None, **fields)


def _class(name: str, body: list[ast.stmt]) -> ast.ClassDef:
    fields = {"type_params": []} if "type_params" in ast.ClassDef._fields else {}
    return ast.ClassDef(_ident(name), [_expr("nn.Module")], [], body, [], **fields)


def _doc(text: str) -> ast.Expr:
    """A docstring: spec text inside is an escaped literal; printable() keeps it on its lines."""
    return ast.Expr(ast.Constant("\n".join(printable(line) for line in text.split("\n"))))


def _attr_ok(part: str) -> bool:
    """Whether `module.part` reaches the child: an identifier that is no nn.Module attribute."""
    return part.isidentifier() and part.isascii() and not keyword.iskeyword(part) and not hasattr(nn.Module, part)


def _path(parts: list[str]) -> ast.expr:
    """The expression that reaches a submodule: self.layer1, getattr(self, '0').conv1."""
    out: ast.expr = _name("self")
    for part in parts:
        out = ast.Attribute(out, part, _LOAD) if _attr_ok(part) else _call(_name("getattr"), [out, ast.Constant(part)])
    return out


def _ctor(spec: backend.ModuleSpec) -> ast.Call:
    """The constructor call of a leaf: nn.X(...) for torch's classes, X(...) for standalone.py's."""
    func = _name(spec.cls) if spec.cls in CUSTOM_MODULES else ast.Attribute(_name("nn"), _ident(spec.cls), _LOAD)
    return _call(func, [_lit(a) for a in spec.args], {k: _lit(v) for k, v in spec.kwargs.items()})


# ---------------------------------------------------------------- merges (functions in forward)

def _fold(node, args: list[ast.expr]) -> ast.expr:
    """add/mul: a left fold, as hand-written code would do; cat: torch.cat([...], dim=d + 1)."""
    if node.op == "cat":
        return _expr("torch.cat(XS, dim=DIM)", XS=ast.List(args, _LOAD), DIM=ast.Constant(node.attrs["dim"] + 1))
    out = args[0]
    for other in args[1:]:
        out = _expr(f"{backend.MERGES[node.op].source_name}(A, B)", A=out, B=other)
    return out


def _matmul(node, args: list[ast.expr]) -> ast.expr:
    return _expr("torch.matmul(A, B)", A=args[0], B=args[1])


def _sdpa(node, args: list[ast.expr]) -> ast.expr:
    """F.scaled_dot_product_attention, with heads split off the width and joined back."""
    h = node.attrs["heads"]
    q, k, v = (_expr("T.unflatten(-1, (H, -1)).transpose(-3, -2)", T=t, H=ast.Constant(h)) if h > 1 else t
               for t in args[:3])
    y = _expr("nn.functional.scaled_dot_product_attention(Q, K, V)", Q=q, K=k, V=v)
    if len(args) == 4:
        y.keywords.append(ast.keyword("attn_mask", args[3]))
    y.keywords.append(ast.keyword("scale", _lit(node.attrs["scale"])))
    return _expr("Y.transpose(-3, -2).flatten(-2)", Y=y) if h > 1 else y


def _take(node, args: list[ast.expr]) -> ast.expr:
    return _expr("torch.index_select(T, 1, I.flatten()).unflatten(1, SHAPE)", T=args[0], I=args[1],
                 SHAPE=_lit(tuple(node.attrs["index"])))


# the source of each kind of merge, by its class in compiler/torch.py's MERGES
_MERGES = {backend.Merge: _fold, backend.MatMul: _matmul, backend.Attention: _sdpa, backend.Take: _take}


def _merge(node, shared: set[str], args: list[ast.expr]) -> ast.expr:
    return _MERGES[type(backend.MERGES[node.op])](node, _expand_shared(node, args, shared))


def _expand_shared(node, args: list[ast.expr], shared: set[str]) -> list[ast.expr]:
    """A cat of values shared by the batch (batch axis of 1) and per-sample ones: expand the shared ones."""
    if node.op != "cat" or not shared & set(node.inputs) or set(node.inputs) <= shared:
        return args
    batch = next(a for a, n in zip(args, node.inputs) if n not in shared)
    minus = [ast.Constant(-1)] * len(node.shape)
    return [_call(ast.Attribute(a, "expand", _LOAD), [_expr("B.shape[0]", B=batch), *minus]) if n in shared else a
            for a, n in zip(args, node.inputs)]


# ---------------------------------------------------------------- forward

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


def _steps(p: Plan, c: Container, kinds: dict[str, str], skip: set[str]) -> list[tuple[list, list, object]]:
    """(values read, values written, args -> expression) for each layer or block call of `c`'s forward."""
    steps = []
    shared = shared_values(p.nodes.values())
    for item in c.items:
        rel = c.rel(item).split(".")
        if item in p.containers:
            child = p.containers[item]
            if not (child.outputs and all(v in skip for v in child.outputs)):
                steps.append((list(child.inputs), list(child.outputs), functools.partial(_call, _path(rel))))
            continue
        if item in skip:
            continue
        node = p.nodes[item]
        kind = kinds[item]
        if kind == "function":
            make = functools.partial(_merge, node, shared)
        elif kind in ("parameter", "buffer"):  # with a batch axis of 1, as in to_torch
            path = _path(rel)
            make = (lambda args, path=path: path) if node.attrs.get("batch") else \
                (lambda args, path=path: _expr("P.unsqueeze(0)", P=path))
        else:
            make = functools.partial(_call, _path(rel))
        steps.append((list(node.inputs), [item], make))
    return steps


def _forward(p: Plan, c: Container, kinds: dict[str, str], taps: dict[str, str] | None = None,
             arch: Architecture | None = None) -> tuple[list[str], list[ast.stmt]]:
    """(argument names, body) of container `c`'s forward: one statement per layer or block call.
    arch (the root only): eval mode's forward, without the training outputs and what only they need."""
    steps = _steps(p, c, kinds, arch.training_only() if arch is not None else set())
    outputs = c.outputs if arch is None else [v for v, o in zip(c.outputs, arch.outputs) if not o.training]
    last_use = graph_last_use((reads for reads, _, _ in steps), taps.values() if taps is not None else outputs)
    if c.path == "":
        names = _Names(set(c.inputs) | {"self", "torch", "nn"})
        var = {i: _ident(i) for i in c.inputs}
    else:
        names = _Names({"self", "torch", "nn"})
        var = {i: names.take([]) for i in c.inputs}
    body = []
    for i, (reads, writes, make) in enumerate(steps):
        value = make([_name(var[n]) for n in reads])
        dying = [var[n] for n in dict.fromkeys(reads) if last_use.get(n) == i]
        for v in dying:  # released before taking: the result may reuse an input's variable
            names.release(v)
        if not any(w in last_use for w in writes):  # a dead end (nothing reads it): still run it, as to_torch does
            body.append(ast.Expr(value))
            continue
        for w in writes:
            var[w] = names.take(dying) if w in last_use else "_"
        targets = [_name(var[w], _STORE) for w in writes]
        body.append(ast.Assign([targets[0] if len(targets) == 1 else ast.Tuple(targets, _STORE)], value))
    if taps is not None:
        body.append(ast.Return(ast.Dict([ast.Constant(k) for k in taps], [_name(var[v]) for v in taps.values()])))
    else:
        outs = [_name(var[o]) for o in outputs]
        body.append(ast.Return(outs[0] if len(outs) == 1 else ast.Tuple(outs, _LOAD)))
    return [var[i] for i in c.inputs], body


# ---------------------------------------------------------------- the module tree

def _scope_notes(arch: Architecture) -> dict[str, str]:
    """scope name -> a note naming the block it instantiates and where."""
    return {sc.name: f"{sc.name}: {sc.block or 'group'} ({Path(sc.span.file).name}:{sc.span.line})"
            for sc in arch.scopes}


def _params(kids: tuple[str, ...]) -> list[str]:
    """Constructor argument names for children: the name when it is a plain identifier, else m<name>."""
    out, seen = [], {"self"}
    for kid in kids:
        name = kid if kid.isidentifier() and kid.isascii() and not keyword.iskeyword(kid) else \
            "m" + backend._identifier(kid).lstrip("_")
        while name in seen or keyword.iskeyword(name):
            name += "_"
        seen.add(name)
        out.append(name)
    return out


def _set(name: str, value: ast.expr, how: str = "module") -> ast.stmt:
    """Register a child under `name` on self: how is "module", "parameter", "buffer" or "transient" (a
    buffer left out of the state_dict); a plain tensor attribute would not be a buffer."""
    if how in ("buffer", "transient"):
        kw = {"persistent": ast.Constant(False)} if how == "transient" else {}
        return ast.Expr(_call(_expr("self.register_buffer"), [ast.Constant(name), value], kw))
    if _attr_ok(name):
        return ast.Assign([ast.Attribute(_name("self"), name, _STORE)], value)
    method = "self.register_parameter" if how == "parameter" else "self.add_module"
    return ast.Expr(_call(_expr(method), [ast.Constant(name), value]))


class _Tree:
    """The emitted classes and constructor expressions for a plan, with the notes the writer shows."""

    def __init__(self, arch: Architecture, p: Plan, specs: dict, kinds: dict[str, str], taken: set[str]):
        self.arch, self.p, self.specs, self.kinds = arch, p, specs, kinds
        self.scopes = _scope_notes(arch)
        self.classes: dict[tuple, str] = {}      # (forward, children) -> class name
        self.defs: list[ast.ClassDef] = []       # class definitions, in order of first use
        self.taken = set(taken)
        self.notes: dict[int, str] = {}          # id(node) -> end-of-line comment
        self.broken: set[int] = set()            # ids of calls written one argument per line

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
        args, body = _forward(self.p, c, self.kinds)
        kids = tuple(c.rel(ch) for ch in self.children(c))
        hows = tuple(self.how(ch) for ch in self.children(c))
        key = (tuple(args), tuple(ast.dump(s) for s in body), kids, hows)
        if key not in self.classes:
            base = backend._camel(c.block or "block")
            name, k = base, 2
            while name in self.taken:
                name, k = f"{base}{k}", k + 1
            self.taken.add(name)
            self.classes[key] = name
            params = _params(kids)
            init = _stmts("super().__init__()") + [_set(kid, _name(param), how)
                                                   for kid, param, how in zip(kids, params, hows)]
            doc = [_doc(f"First built for {self.scopes[c.path]}.")] if c.path in self.scopes else []
            self.defs.append(_class(name, doc + [_function("__init__", params, init, "None"),
                                                 _function("forward", args, body, annotation="torch.Tensor")]))
        return self.classes[key]

    def expr(self, path: str) -> ast.expr:
        """An expression that builds the module (or parameter) at `path`."""
        if path not in self.p.containers:
            return _ctor(self.specs[path])
        c = self.p.containers[path]
        kids = self.children(c)
        names = [c.rel(ch) for ch in kids]
        if c.kind == "sequential" and names == [str(i) for i in range(len(names))]:
            head, items = "nn.Sequential", [self.expr(ch) for ch in kids]
        elif c.kind in ("sequential", "passive"):
            head = "_sequential" if c.kind == "sequential" else "Container"
            items = [ast.Tuple([ast.Constant(n), self.expr(ch)] + [ast.Constant(False)] * (self.how(ch) == "transient"),
                               _LOAD) for n, ch in zip(names, kids)]
        else:
            head, items = self.klass(c), [self.expr(ch) for ch in kids]
            for n, item in zip(names, items):  # which constructor argument is which child
                self.notes.setdefault(id(item), n)
        call = _call(_expr(head), items)
        self.broken.add(id(call))
        if path in self.scopes:
            self.notes[id(call)] = self.scopes[path]
        return call


# ---------------------------------------------------------------- layout

class _Writer(ast._Unparser):
    """ast.unparse (its class, ast._Unparser, in the standard library since 3.9) laid out as a person would:
    the calls in `broken` and calls too long for one line are written one argument per line, and `notes`
    become end-of-line comments (control characters removed, so a note cannot end its line). Parsing the
    text gives back the tree (tests/test_pysource.py checks it)."""

    def __init__(self, notes: dict[int, str] | None = None, broken: set[int] | None = None, **kwargs):
        super().__init__(**kwargs)  # ast makes plain inner writers for f-strings: they keep one line
        self.notes, self.broken, self.shown = notes or {}, broken, set()

    def _note(self, node: ast.AST) -> None:
        if id(node) in self.notes and id(node) not in self.shown:
            self.shown.add(id(node))
            self.write(f"  # {printable(self.notes[id(node)])}")

    def get_type_comment(self, node: ast.AST) -> None:
        return None  # the tree has none (and its nodes no line numbers)

    def visit_List(self, node: ast.List) -> None:
        values = [e.value for e in node.elts if isinstance(e, ast.Constant) and type(e.value) in _NUMBERS]
        if len(values) == len(node.elts) and all(math.isfinite(v) for v in values):
            self.write(repr(values))  # what ast.unparse writes, at C speed (weight tables, window masks)
        else:
            super().visit_List(node)

    def visit_Call(self, node: ast.Call) -> None:
        if self.broken is None:
            return super().visit_Call(node)
        column = 0  # of the call's start
        for part in reversed(self._source):
            if "\n" in part:
                column += len(part.rpartition("\n")[2])
                break
            column += len(part)
        if id(node) not in self.broken:
            flat = _Writer().visit(node)
            if len(node.args) + len(node.keywords) < 2 or column + len(flat) <= WIDTH:
                return self.write(flat)
        self.traverse(node.func)
        self.write("(")
        self._note(node)
        self._indent += 1
        for arg in [*node.args, *node.keywords]:
            self.fill()
            self.traverse(arg)
            self.write(",")
            self._note(arg)
        self._indent -= 1
        self.fill(")")

    def visit_Assign(self, node: ast.Assign) -> None:
        super().visit_Assign(node)
        self._note(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        super().visit_Expr(node)
        self._note(node)


def _render(groups: list[list[ast.stmt]], notes: dict[int, str], broken: set[int]) -> str:
    """The file: the top-level statements of a group on consecutive lines, two blank lines between groups."""
    def one(stmt: ast.stmt) -> str:
        return _Writer(notes, broken).visit(ast.Module([stmt], []))
    return "\n\n\n".join("\n".join(one(s) for s in group) for group in groups if group) + "\n"


# ---------------------------------------------------------------- the file

def _reads(nodes: list[ast.AST]) -> Iterator[str]:
    """The names `nodes` read, outside list literals (spec data, or a cat's variables: never a definition)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name):
            yield node.id
        elif not isinstance(node, ast.List):
            todo.extend(ast.iter_child_nodes(node))


def _needed(names: Iterable[str]) -> list[ast.stmt]:
    """The definitions of standalone.py that `names` (those the file reads) name, with those they use, in
    standalone.py's order."""
    defs, todo, seen = _definitions(), list(names), set()
    while todo:
        name = todo.pop()
        if name in defs and name not in seen:
            seen.add(name)
            todo.extend(n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs)
    return [node for name, node in defs.items() if name in seen]


def _init_weights(arch: Architecture, specs) -> ast.FunctionDef | None:
    """_init_weights for the spec's init declarations: each scheme's function on the modules of its ops."""
    by_scheme: dict[str, list[str]] = {}
    for node, spec in specs:
        fn = backend.INIT.get(arch.init.get(node.op, "default"))
        if fn is None:
            continue
        classes = by_scheme.setdefault(fn.__name__, [])
        if spec.cls not in classes and spec.cls not in CUSTOM_MODULES:
            classes.append(spec.cls)
    if not by_scheme:
        return None
    chain: list[ast.stmt] = []
    for fn, classes in reversed(by_scheme.items()):
        kinds = ast.Tuple([ast.Attribute(_name("nn"), _ident(c), _LOAD) for c in classes], _LOAD)
        chain = [ast.If(_expr("isinstance(m, KINDS) and m.weight is not None", KINDS=kinds),
                        [ast.Expr(_call(_name(fn), [_name("m")]))], chain)]
    decl = "; ".join(f'init {k} = "{v}"' for k, v in arch.init.items())
    body = [_doc(f"The spec's declarations: {decl}.")] + _stmts("for m in self.modules(): pass")
    body[1].body = chain
    return _function("_init_weights", [], body, "None")


def _forwards(p: Plan, kinds: dict[str, str], taps: dict[str, str] | None, arch: Architecture) -> list[ast.stmt]:
    """The model's forward; with training outputs, eval mode's forward and _forward_train (every output)."""
    root = p.containers[""]
    args, body = _forward(p, root, kinds, taps)
    ret = ("dict[str, torch.Tensor]" if taps else "torch.Tensor" if len(root.outputs) == 1
           else "tuple[torch.Tensor, ...]")
    if taps is not None or not any(o.training for o in arch.outputs):
        return [_function("forward", args, body, ret, "torch.Tensor")]
    train = _call(_expr("self._forward_train"), [_name(a) for a in args])
    inference = _stmts("if self.training:\n    return TRAIN", TRAIN=train) + _forward(p, root, kinds, None, arch)[1]
    return [_function("forward", args, inference, "torch.Tensor | tuple[torch.Tensor, ...]", "torch.Tensor"),
            _function("_forward_train", args, [_doc("Training mode: every output, the training ones included.")]
                      + body, "tuple[torch.Tensor, ...]", "torch.Tensor")]


def _model(tree: _Tree, taps: dict[str, str] | None, cls: str, init: ast.FunctionDef | None) -> ast.ClassDef:
    """The model class: __init__ builds the tree (a leaf's spec position as its comment), forward runs it."""
    p, arch = tree.p, tree.arch
    root = p.containers[""]
    body = _stmts("super().__init__()")
    for child in tree.children(root):
        stmt = _set(root.rel(child), tree.expr(child), tree.how(child))
        if child not in p.containers:
            span = p.nodes[child].span
            tree.notes[id(stmt)] = f"{Path(span.file).name}:{span.line}"
        body.append(stmt)
    methods = [_function("__init__", [], body + (_stmts("self._init_weights()") if init else []), "None")]
    methods += ([init] if init else []) + _forwards(p, tree.kinds, taps, arch)
    return _class(cls, [_doc(f"{arch.title} ({len(arch.nodes)} nodes).")] + methods)


_FOOTER = '''
def build() -> CLS:
    DOC
    _check_memory(WEIGHT_BYTES)
    return CLS()


if __name__ == "__main__":
    model = build().eval()
    inputs = [torch.randn(1, *shape) for shape in INPUT_SHAPES.values()]
    with torch.no_grad():
        y = model(*inputs)
    y = tuple(y.values()) if isinstance(y, dict) else y
    shapes = [tuple(t.shape) for t in (y if isinstance(y, tuple) else (y,))]
    print(TITLE, sum(p.numel() for p in model.parameters()), "parameters, outputs", shapes)
'''


def _header(arch: Architecture, command: str | None, taps: dict | None, uses_math: bool) -> tuple[list, list]:
    """(the module docstring (spec text in it is a literal) and the imports, the input shapes and output names)."""
    params = ", ".join(f"{k}={v!r}" for k, v in arch.params.items())
    doc = (f"{arch.title}: PyTorch model generated by {f'`{command}`' if command else 'archspec'} from "
           f"{arch.source or 'a spec'}.\n\n" + (f"Parameters: {params}.\n" if params else "")
           + "Standalone: needs only torch. The state_dict keys equal those of archspec's to_torch.\n\n"
           + "    model = build()\n"
           + f"    model.load_state_dict(torch.load({arch.title + '.pth'!r}, weights_only=True))\n")
    shapes = ast.Dict([ast.Constant(i.name) for i in arch.inputs], [_lit(tuple(i.shape)) for i in arch.inputs])
    names = tuple(taps) if taps else tuple(o.name for o in arch.outputs if not o.training)
    return [_doc(doc)] + _stmts(("import math\n" if uses_math else "") + "import torch\nfrom torch import nn"), \
        _stmts("INPUT_SHAPES = SHAPES\nOUTPUT_NAMES = NAMES", SHAPES=shapes, NAMES=_lit(names))


def emit_python(arch: Architecture, inplace: bool = True, command: str | None = None,
                outputs: list[str] | None = None) -> str:
    """Readable, standalone PyTorch source (imports only torch) for `arch`. outputs: feature taps
    (layer or scope names): forward returns {name: tensor} and only what they need is built."""
    # A big model's syntax tree is a million small objects without cycles: the cyclic collector's passes over
    # them took half the time of a 49,000-layer file (tests/test_hostile.py bounds compile at 10 s of CPU).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _render(*_file(arch, inplace, command, outputs))
    finally:
        if collecting:
            gc.enable()


def _file(arch: Architecture, inplace: bool, command: str | None, outputs: list[str] | None) \
        -> tuple[list[list[ast.stmt]], dict[int, str], set[int]]:
    """(the file's top-level statements in groups, the notes, the calls broken over lines): see _render."""
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
    if cls in CUSTOM_MODULES or cls == "Container":  # `arch pad` must not redefine the Pad it uses
        cls += "Model"
    used = [(node, spec) for node, spec in leaf if node.name in p.nodes]
    tree = _Tree(arch, p, specs, kinds, {cls, "Container", "Model", *CUSTOM_MODULES})
    init = _init_weights(arch, used)
    model = _model(tree, taps, cls, init)
    defs = _needed(_reads([*tree.defs, model]))
    uses_math = any(isinstance(n, ast.Name) and n.id == "math" for d in defs for n in ast.walk(d))
    header, constants = _header(arch, command, taps, uses_math)
    tree.notes.update({id(constants[0]): "without the batch axis", id(constants[1]): "in eval mode"})
    footer = _stmts(_FOOTER, CLS=_name(cls), DOC=f"A fresh {printable(arch.title)} (MemoryError, before allocating, "
                    "when its weights do not fit).", TITLE=ast.Constant(arch.title + ":"))
    sizes = _stmts("Model = CLS\nWEIGHT_BYTES = N", CLS=_name(cls), N=ast.Constant(analyze(arch).params * 4))
    tree.notes[id(sizes[1])] = "float32 parameters"
    groups = [header, constants, *([d] for d in defs), *([c] for c in tree.defs), [model], sizes,
              _needed(["_check_memory"]), *([s] for s in footer)]
    return groups, tree.notes, tree.broken

"""The typed syntax tree: a spec's declarations and statements as small frozen nodes, made once from the
parse (parser.parse builds and caches them), so that the lowering, the formatter and the language server
read named fields instead of unpacking Lark trees by position. Only this module knows the Lark layout.

Each node carries `meta`, the Lark position of the whole construct (line, column, end, offsets), which
`parser.pos_of` reads as it does a tree's; it takes no part in equality, so two parses of one program
compare equal wherever their text sits. Expressions stay the Lark trees the evaluator reads
(expressions.py), as do a call's argument list and a loop's targets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .vendor.lark_parser import Meta, Token, Tree

Expr = Any  # an expression: a Lark tree (or a token) that expressions.ExprEvaluator evaluates


def _meta() -> Any:
    return field(compare=False, repr=False)


# ---------------------------------------------------------------- statements

@dataclass(frozen=True, slots=True)
class Body:
    meta: Meta = _meta()
    stmts: tuple = ()


@dataclass(frozen=True, slots=True)
class LabelExpr:
    """The `{expr}` of an interpolated label."""
    meta: Meta = _meta()
    expr: Expr = None


@dataclass(frozen=True, slots=True)
class Label:
    """`name:` or `layer{i + 1}-{j}:`: its text pieces (tokens) and interpolations, in order."""
    meta: Meta = _meta()
    parts: tuple[Token | LabelExpr, ...] = ()


@dataclass(frozen=True, slots=True)
class Labeled:
    rule: ClassVar[str] = "labeled"
    meta: Meta = _meta()
    label: Label = None
    stmt: Any = None


@dataclass(frozen=True, slots=True)
class Assign:
    rule: ClassVar[str] = "assign"
    meta: Meta = _meta()
    name: Token = None
    value: Expr = None


@dataclass(frozen=True, slots=True)
class Parts:
    """`as a, b`: the names of the tensors an op that cuts its input makes."""
    meta: Meta = _meta()
    names: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    rule: ClassVar[str] = "call_stmt"
    meta: Meta = _meta()
    name: Token = None
    args: Tree | None = None   # the Lark `args` tree the evaluator reads; None for `f()`
    parts: Parts | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    rule: ClassVar[str] = "repeat_stmt"
    meta: Meta = _meta()
    count: Expr = None
    var: Token | None = None
    body: Body = None


@dataclass(frozen=True, slots=True)
class For:
    rule: ClassVar[str] = "for_stmt"
    meta: Meta = _meta()
    targets: Tree = None       # the Lark `targets` tree (names and nested groups), as comprehensions have
    iterable: Expr = None
    body: Body = None


@dataclass(frozen=True, slots=True)
class If:
    rule: ClassVar[str] = "if_stmt"
    meta: Meta = _meta()
    cond: Expr = None
    then: Body = None
    other: "Body | If | None" = None


@dataclass(frozen=True, slots=True)
class Shortcut:
    meta: Meta = _meta()
    cond: Expr | None = None
    body: Body = None


@dataclass(frozen=True, slots=True)
class Residual:
    rule: ClassVar[str] = "residual_stmt"
    meta: Meta = _meta()
    cond: Expr | None = None
    body: Body = None
    shortcut: Shortcut | None = None


@dataclass(frozen=True, slots=True)
class Dense:
    rule: ClassVar[str] = "dense_stmt"
    meta: Meta = _meta()
    body: Body = None


@dataclass(frozen=True, slots=True)
class Gate:
    rule: ClassVar[str] = "gate_stmt"
    meta: Meta = _meta()
    body: Body = None


@dataclass(frozen=True, slots=True)
class Branch:
    rule: ClassVar[str] = "branch_stmt"
    meta: Meta = _meta()
    how: Token = None
    body: Body = None


@dataclass(frozen=True, slots=True)
class Group:
    rule: ClassVar[str] = "group_stmt"
    meta: Meta = _meta()
    body: Body = None


@dataclass(frozen=True, slots=True)
class Save:
    rule: ClassVar[str] = "save_stmt"
    meta: Meta = _meta()
    name: Token = None


@dataclass(frozen=True, slots=True)
class From:
    rule: ClassVar[str] = "from_stmt"
    meta: Meta = _meta()
    name: Token = None
    body: Body = None


@dataclass(frozen=True, slots=True)
class Output:
    rule: ClassVar[str] = "output_stmt"
    meta: Meta = _meta()
    training: Token | None = None
    names: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    rule: ClassVar[str] = "order_stmt"
    meta: Meta = _meta()
    names: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Budget:
    """`budget params <= 25M`: a statement, or a declaration at the top level."""
    rule: ClassVar[str] = "budget_stmt"
    meta: Meta = _meta()
    metric: Token = None
    comp: Token = None
    limit: Expr = None


# ---------------------------------------------------------------- declarations

@dataclass(frozen=True, slots=True)
class ArchDecl:
    meta: Meta = _meta()
    name: Token = None


@dataclass(frozen=True, slots=True)
class ParamDecl:
    meta: Meta = _meta()
    name: Token = None
    value: Expr = None


@dataclass(frozen=True, slots=True)
class InputDecl:
    meta: Meta = _meta()
    name: Token = None
    shape: Expr = None


@dataclass(frozen=True, slots=True)
class VariantDecl:
    meta: Meta = _meta()
    name: Token = None
    assigns: tuple[Assign, ...] = ()


@dataclass(frozen=True, slots=True)
class BlockParam:
    meta: Meta = _meta()
    name: Token = None
    default: Expr | None = None


@dataclass(frozen=True, slots=True)
class BlockDecl:
    meta: Meta = _meta()
    name: Token = None
    params: tuple[BlockParam, ...] = ()
    params_meta: Meta | None = field(default=None, compare=False, repr=False)  # the parameter list as written
    body: Body = None


@dataclass(frozen=True, slots=True)
class NetworkDecl:
    meta: Meta = _meta()
    body: Body = None


@dataclass(frozen=True, slots=True)
class UseDecl:
    meta: Meta = _meta()
    path: Token = None   # the STRING token, quotes included


@dataclass(frozen=True, slots=True)
class InitDecl:
    meta: Meta = _meta()
    op: Token = None
    scheme: Expr = None


@dataclass(frozen=True, slots=True)
class Spec:
    """A whole spec file: its declarations in order."""
    items: tuple = ()


# ---------------------------------------------------------------- from the Lark parse

def build(tree: Tree) -> Spec:
    """The typed tree of a parse (the `start` tree)."""
    return Spec(tuple(_DECLS[item.data](item) for item in tree.children))


def _body(t: Tree) -> Body:
    return Body(t.meta, tuple(_stmt(s) for s in t.children))


def _stmt(t: Tree):
    return _STMTS[t.data](t)


def _label(t: Tree) -> Label:
    parts = []
    for c in t.children:
        if isinstance(c, Token):
            parts.append(c)
        elif c.data == "label_text":
            parts.append(c.children[0])
        else:
            parts.append(LabelExpr(c.meta, c.children[0]))
    return Label(t.meta, tuple(parts))


def _call(t: Tree) -> Call:
    name, args, parts = t.children
    return Call(t.meta, name, args, Parts(parts.meta, tuple(parts.children)) if parts is not None else None)


def _if(t: Tree) -> If:
    cond, then, other = t.children
    if other is not None:
        other = _if(other) if other.data == "if_stmt" else _body(other)
    return If(t.meta, cond, _body(then), other)


def _residual(t: Tree) -> Residual:
    cond, body, shortcut = t.children
    if shortcut is not None:
        scond, sbody = shortcut.children
        shortcut = Shortcut(shortcut.meta, scond.children[0] if scond is not None else None, _body(sbody))
    return Residual(t.meta, cond.children[0] if cond is not None else None, _body(body), shortcut)


def _block(t: Tree) -> BlockDecl:
    name, params, body = t.children
    plist = tuple(BlockParam(p.meta, *p.children) for p in (params.children if params is not None else ())
                  if p is not None)
    return BlockDecl(t.meta, name, plist, params.meta if params is not None else None, _body(body))


_STMTS = {
    "labeled": lambda t: Labeled(t.meta, _label(t.children[0]), _stmt(t.children[1])),
    "assign": lambda t: Assign(t.meta, *t.children),
    "call_stmt": _call,
    "repeat_stmt": lambda t: Repeat(t.meta, t.children[0], t.children[1], _body(t.children[2])),
    "for_stmt": lambda t: For(t.meta, t.children[0], t.children[1], _body(t.children[2])),
    "if_stmt": _if,
    "residual_stmt": _residual,
    "dense_stmt": lambda t: Dense(t.meta, _body(t.children[0])),
    "gate_stmt": lambda t: Gate(t.meta, _body(t.children[0])),
    "branch_stmt": lambda t: Branch(t.meta, t.children[0], _body(t.children[1])),
    "group_stmt": lambda t: Group(t.meta, _body(t.children[0])),
    "save_stmt": lambda t: Save(t.meta, t.children[0]),
    "from_stmt": lambda t: From(t.meta, t.children[0], _body(t.children[1])),
    "output_stmt": lambda t: Output(t.meta, t.children[0], tuple(t.children[1:])),
    "order_stmt": lambda t: Order(t.meta, tuple(t.children)),
    "budget_stmt": lambda t: Budget(t.meta, *t.children),
}

_DECLS = {
    "arch_decl": lambda t: ArchDecl(t.meta, t.children[0]),
    "param_decl": lambda t: ParamDecl(t.meta, *t.children),
    "input_decl": lambda t: InputDecl(t.meta, *t.children),
    "variant_decl": lambda t: VariantDecl(t.meta, t.children[0], tuple(Assign(a.meta, *a.children)
                                                                       for a in t.children[1:])),
    "block_decl": _block,
    "network_decl": lambda t: NetworkDecl(t.meta, _body(t.children[0])),
    "use_decl": lambda t: UseDecl(t.meta, t.children[0]),
    "init_decl": lambda t: InitDecl(t.meta, *t.children),
    "budget_stmt": _STMTS["budget_stmt"],
}


def loop_targets(targets: Tree) -> tuple:
    """What a `for` binds at its top level: name tokens, and the trees of nested (a, b) groups."""
    return tuple(targets.children)


def statements(node):
    """Every statement under a node (a body, a statement), in source order, nested ones too."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _STATEMENTS):
            yield n
        for name in reversed(n.__slots__):
            c = getattr(n, name)
            if isinstance(c, tuple):
                stack.extend(x for x in reversed(c) if isinstance(x, _NESTING))
            elif isinstance(c, _NESTING):
                stack.append(c)


_STATEMENTS = (Labeled, Assign, Call, Repeat, For, If, Residual, Dense, Gate, Branch, Group, Save, From, Output,
               Order, Budget)
_NESTING = _STATEMENTS + (Body, Shortcut)  # what a statement can be nested in

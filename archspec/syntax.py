"""The typed syntax tree: a spec's declarations, statements and expressions as small frozen nodes, made
once from the parse (parser.parse builds and caches them), so that the lowering, the evaluator, the
formatter's check and the language server read named fields instead of unpacking Lark trees by position.
Only this module knows the Lark layout.

Each node carries `meta`, the Lark position of the whole construct (line, column, end, offsets), which
`parser.pos_of` reads as it does a tree's; it takes no part in equality, so two parses of one program
compare equal wherever their text sits. An expression node's `rule` names the evaluator's method for it
(expressions.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .vendor.lark_parser import Meta, Token, Tree

Expr = Any  # an expression node (below), which expressions.ExprEvaluator evaluates


def _meta() -> Any:
    return field(compare=False, repr=False)


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True, slots=True)
class Literal:
    """A number, a string (quotes included in the token), true or false (no token)."""
    meta: Meta = _meta()
    rule: str = "number"
    token: Token | None = None


@dataclass(frozen=True, slots=True)
class Var:
    rule: ClassVar[str] = "var"
    meta: Meta = _meta()
    name: Token = None


@dataclass(frozen=True, slots=True)
class InputRef:
    """`in`: the incoming tensor."""
    rule: ClassVar[str] = "input_ref"
    meta: Meta = _meta()


@dataclass(frozen=True, slots=True)
class Sequence:
    """A list `[a, b]` or a tuple `(a, b)`, by its rule."""
    meta: Meta = _meta()
    rule: str = "list"
    items: tuple = ()


@dataclass(frozen=True, slots=True)
class Targets:
    """What a loop binds: names, and nested (a, b) groups."""
    meta: Meta = _meta()
    items: tuple = ()


@dataclass(frozen=True, slots=True)
class ListComp:
    rule: ClassVar[str] = "listcomp"
    meta: Meta = _meta()
    expr: Expr = None
    targets: Targets = None
    iterable: Expr = None
    cond: Expr | None = None


@dataclass(frozen=True, slots=True)
class Attr:
    rule: ClassVar[str] = "attr"
    meta: Meta = _meta()
    base: Expr = None
    name: Token = None


@dataclass(frozen=True, slots=True)
class Slice:
    meta: Meta = _meta()
    lo: Expr | None = None
    hi: Expr | None = None


@dataclass(frozen=True, slots=True)
class Index:
    rule: ClassVar[str] = "index"
    meta: Meta = _meta()
    base: Expr = None
    sub: Expr = None   # an expression, or a Slice


@dataclass(frozen=True, slots=True)
class Kwarg:
    meta: Meta = _meta()
    name: Token = None
    value: Expr = None


@dataclass(frozen=True, slots=True)
class Args:
    """A call's arguments, in order: expressions (positional) and Kwargs."""
    meta: Meta = _meta()
    items: tuple = ()


@dataclass(frozen=True, slots=True)
class CallExpr:
    rule: ClassVar[str] = "call"
    meta: Meta = _meta()
    fn: Expr = None
    args: Args | None = None


@dataclass(frozen=True, slots=True)
class Binary:
    """`a + b` ... `a ** b`, `a and b`, `a or b`: the rule names the operator (add, and_, ...)."""
    meta: Meta = _meta()
    rule: str = "add"
    left: Expr = None
    right: Expr = None


@dataclass(frozen=True, slots=True)
class Unary:
    """`-a`, `+a`, `not a`: rule neg, pos or not_."""
    meta: Meta = _meta()
    rule: str = "neg"
    operand: Expr = None


@dataclass(frozen=True, slots=True)
class Compare:
    rule: ClassVar[str] = "compare"
    meta: Meta = _meta()
    left: Expr = None
    op: Token = None
    right: Expr = None


@dataclass(frozen=True, slots=True)
class IfExp:
    rule: ClassVar[str] = "ifexp"
    meta: Meta = _meta()
    then: Expr = None
    cond: Expr = None
    other: Expr = None


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
    args: Args | None = None   # None for `f()`
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
    targets: Targets = None
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
    """The typed tree of a parse (the `start` tree). Built bottom-up with a stack, not by recursion: an
    else-if chain or a nesting the limits allow may run deeper than Python's stack, and the lowering, not
    the parse, reports that (at the statement where it happens)."""
    made: dict[int, Any] = {}
    stack = [(tree, False)]
    while stack:
        t, ready = stack.pop()
        if ready:
            kids = [made.pop(id(c)) if isinstance(c, Tree) and c.data in _MAKE else c for c in t.children]
            made[id(t)] = _MAKE[t.data](t, kids)
        else:
            stack.append((t, True))
            stack.extend((c, False) for c in t.children if isinstance(c, Tree) and c.data in _MAKE)
    return made[id(tree)]


def _block(t: Tree, kids: list) -> BlockDecl:
    name, params, body = kids  # params: (its Meta, its BlockParams), or None
    meta, plist = params if params is not None else (None, ())
    return BlockDecl(t.meta, name, plist, meta, body)


def _present(kids: list) -> tuple:
    return tuple(k for k in kids if k is not None)  # [x] in the grammar leaves a None where x is absent


def _binary(t: Tree, k: list) -> Binary:
    return Binary(t.meta, t.data, *k)


def _unary(t: Tree, k: list) -> Unary:
    return Unary(t.meta, t.data, *k)


def _literal(t: Tree, k: list) -> Literal:
    return Literal(t.meta, t.data, k[0] if k else None)


# Each rule -> its node, from the Lark tree and its children already made.
_MAKE = {
    **{rule: _literal for rule in ("number", "string", "true", "false")},
    **{rule: _binary for rule in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and_", "or_")},
    **{rule: _unary for rule in ("neg", "pos", "not_")},
    "var": lambda t, k: Var(t.meta, *k),
    "input_ref": lambda t, k: InputRef(t.meta),
    "list": lambda t, k: Sequence(t.meta, "list", _present(k)),
    "tuple": lambda t, k: Sequence(t.meta, "tuple", _present(k)),
    "listcomp": lambda t, k: ListComp(t.meta, *k),
    "targets": lambda t, k: Targets(t.meta, tuple(k)),
    "attr": lambda t, k: Attr(t.meta, *k),
    "index": lambda t, k: Index(t.meta, *k),
    "slice": lambda t, k: Slice(t.meta, *k),
    "call": lambda t, k: CallExpr(t.meta, *k),
    "args": lambda t, k: Args(t.meta, _present(k)),
    "kwarg": lambda t, k: Kwarg(t.meta, *k),
    "compare": lambda t, k: Compare(t.meta, *k),
    "ifexp": lambda t, k: IfExp(t.meta, *k),
    "params": lambda t, k: (t.meta, _present(k)),
    "param": lambda t, k: BlockParam(t.meta, *k),
    "start": lambda t, k: Spec(tuple(k)),
    "body": lambda t, k: Body(t.meta, tuple(k)),
    "labeled": lambda t, k: Labeled(t.meta, *k),
    "label": lambda t, k: Label(t.meta, tuple(k)),
    "label_text": lambda t, k: k[0],
    "label_expr": lambda t, k: LabelExpr(t.meta, k[0]),
    "assign": lambda t, k: Assign(t.meta, *k),
    "call_stmt": lambda t, k: Call(t.meta, *k),
    "parts": lambda t, k: Parts(t.meta, tuple(k)),
    "repeat_stmt": lambda t, k: Repeat(t.meta, *k),
    "for_stmt": lambda t, k: For(t.meta, *k),
    "if_stmt": lambda t, k: If(t.meta, *k),
    "cond": lambda t, k: k[0],
    "residual_stmt": lambda t, k: Residual(t.meta, *k),
    "shortcut": lambda t, k: Shortcut(t.meta, *k),
    "dense_stmt": lambda t, k: Dense(t.meta, *k),
    "gate_stmt": lambda t, k: Gate(t.meta, *k),
    "branch_stmt": lambda t, k: Branch(t.meta, *k),
    "group_stmt": lambda t, k: Group(t.meta, *k),
    "save_stmt": lambda t, k: Save(t.meta, *k),
    "from_stmt": lambda t, k: From(t.meta, *k),
    "output_stmt": lambda t, k: Output(t.meta, k[0], tuple(k[1:])),
    "order_stmt": lambda t, k: Order(t.meta, tuple(k)),
    "budget_stmt": lambda t, k: Budget(t.meta, *k),
    "arch_decl": lambda t, k: ArchDecl(t.meta, *k),
    "param_decl": lambda t, k: ParamDecl(t.meta, *k),
    "input_decl": lambda t, k: InputDecl(t.meta, *k),
    "variant_decl": lambda t, k: VariantDecl(t.meta, k[0], tuple(k[1:])),
    "block_decl": _block,
    "network_decl": lambda t, k: NetworkDecl(t.meta, *k),
    "use_decl": lambda t, k: UseDecl(t.meta, *k),
    "init_decl": lambda t, k: InitDecl(t.meta, *k),
}


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

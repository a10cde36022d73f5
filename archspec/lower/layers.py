"""The lowering's state and its one way to make a layer: errors with their positions, names claimed once,
an op applied to its arguments (validated, shape-inferred, bounded by the limits) into an IR node."""
from __future__ import annotations

from pathlib import Path

from .. import ops as op_table
from ..errors import Diagnostic, Pos, did_you_mean
from ..expressions import EvalError, ExprEvaluator
from ..ir import Budget, Node, Output, Scope, Span
from ..limits import Limits
from ..modules import SpecModule
from ..parser import pos_of
from ..values import BlockValue, Tensor
from .frames import Abort, Frame, Globals


class Layers:
    def __init__(self, module: SpecModule, limits: Limits, errors: list[Diagnostic]):
        self.module, self.limits, self.errors = module, limits, errors
        self.ev = ExprEvaluator(module.file, limits)
        self.nodes: list[Node] = []
        self.names: dict[str, Pos] = {}
        self.scopes: list[Scope] = []
        self.outputs: list[Output] = []
        self.budgets: list[Budget] = []
        self.orders: dict[str, tuple[str, ...]] = {}  # scope -> its children in registration order
        self.order_pos: dict[str, Pos] = {}
        self.call_stack: list[tuple[BlockValue, Pos]] = []   # active block calls, for recursion and notes
        self.seen_errors: set[tuple] = set()
        self.raw_errors = 0       # repeats included: an error inside a loop must not cost a step each time forever
        self.poisoned_nodes = 0   # op calls after an error: no node, but the same work, counted against max_nodes
        self.other_globals: dict[Path, Globals] = {}          # globals of `use`d files
        self.file = module.file                               # the file of the statements being run
        self.globals: Globals = Globals(self, module)

    # ---- errors ----
    def error(self, message: str, where, hint: str | None = None, file: str | None = None) -> None:
        self.raw_errors += 1
        if self.raw_errors > 20 * self.limits.max_errors:  # the same errors again and again: the rest is noise
            raise Abort()
        pos = where if isinstance(where, Pos) or where is None else pos_of(where, file or self.file)
        key = (message, str(pos))
        if key in self.seen_errors:
            return
        self.seen_errors.add(key)
        notes = [f"in block '{b.name}' called at {at}" for b, at in reversed(self.call_stack[-3:])]
        self.errors.append(Diagnostic(message, pos, hint, notes))
        if len(self.errors) >= self.limits.max_errors:
            raise Abort()

    def eval(self, tree, frame: Frame):
        self.file = frame.module.file
        return self.ev.eval(tree, frame)

    def pos(self, item, frame: Frame) -> Pos:
        return pos_of(item, frame.module.file)

    def span(self, pos: Pos) -> Span:
        return Span(file=pos.file, line=pos.line, col=pos.col)

    def claim(self, name: str, pos: Pos, where) -> None:
        if name in self.names:
            raise EvalError(f"the name '{name}' is used twice", where, f"first used at {self.names[name]}; "
                            "give one of them another label")
        self.names[name] = pos

    # ---- graph building ----
    def add_node(self, op: type[op_table.Op], name: str, attrs: dict, inputs: list[Tensor], pos: Pos, where) -> Tensor:
        if any(t.shape is None for t in inputs):
            self.poisoned_nodes += 1
            if self.poisoned_nodes + len(self.nodes) >= self.limits.max_nodes:
                self.error(f"the network has more than {self.limits.max_nodes} nodes", where,
                           "lower the repeat counts, or raise Limits.max_nodes")
                raise Abort()
            return Tensor(name, None, pos)
        shapes = [t.shape for t in inputs]
        try:
            shape = tuple(op.shape(attrs, shapes))
        except op_table.ShapeError as exc:
            notes = [f"input '{t.name}' comes from {t.origin}" for t in inputs if t.origin is not None]
            self.errors_with_notes(f"{op.name}: {exc}", where, exc.hint, notes)
            return Tensor(name, None, pos)
        if len(self.nodes) + self.poisoned_nodes >= self.limits.max_nodes:
            self.error(f"the network has more than {self.limits.max_nodes} nodes", where,
                       "lower the repeat counts, or raise Limits.max_nodes")
            raise Abort()
        self.ev.count_built(len(name), where)  # long nested names cost memory per node
        # One layer past the network's limits (an upsample by 10**9): said here, at the layer.
        if op_table.numel(shape) * 4 > self.limits.max_activation_bytes:
            self.error(f"{op.name}: its output {list(shape)} would take {op_table.numel(shape) * 4:,} bytes, over "
                       f"the limit of {self.limits.max_activation_bytes:,}", where,
                       "check the scale, stride or size arguments, or raise Limits.max_activation_bytes")
            return Tensor(name, None, pos)
        if op.params(attrs, shapes, shape) > self.limits.max_params:
            self.error(f"{op.name}: {op.params(attrs, shapes, shape):,} parameters, over the limit of "
                       f"{self.limits.max_params:,}", where, "check the kernel and channel arguments")
            return Tensor(name, None, pos)
        self.nodes.append(Node(name=name, op=op.name, inputs=tuple(t.name for t in inputs), attrs=attrs,
                               shape=shape, span=self.span(pos)))
        return Tensor(name, shape, pos)

    def errors_with_notes(self, message, where, hint, notes):
        before = len(self.errors)
        self.error(message, where, hint)
        if len(self.errors) > before:
            self.errors[-1].notes = notes + self.errors[-1].notes

    def apply_op(self, op_name: str, args: list, kwargs: dict, cur: Tensor, name: str, pos: Pos, where) -> Tensor:
        op = op_table.REGISTRY[op_name]
        if op.arity is None:  # a merge: its positional arguments are the tensors
            tensors = [a for a in args if isinstance(a, Tensor)]
            if len(tensors) != len(args) or len(tensors) < 2:
                raise EvalError(f"{op_name}() merges two or more named tensors", where,
                                f"save them first: 'save a' ... '{op_name}(a, b)'")
            inputs, args = tensors, []
        elif op.arity == 0:  # a learnable tensor: no input
            inputs = []
        else:
            inputs = [cur]
        if len(args) > len(op.positional):
            raise at_arg(EvalError(f"{op_name}() takes at most {len(op.positional)} positional argument"
                                    f"{'s' if len(op.positional) != 1 else ''}, got {len(args)}", where,
                                    f"its arguments are: {', '.join(op.Args.fields)}" if op.Args.fields
                                    else f"{op_name}() takes no arguments"), len(op.positional))
        values = dict(zip(op.positional, args))
        for k, v in kwargs.items():
            if k in values:
                raise at_arg(EvalError(f"{op_name}(): argument '{k}' given twice", where), k)
            values[k] = v
        for k, v in values.items():
            if isinstance(v, tuple):
                values[k] = list(v)
        try:
            validated = op.Args(**values)
        except op_table.ArgError as exc:
            message, hint = _explain_arg_error(op, exc)
            if exc.arg in kwargs:
                arg = exc.arg
            elif exc.arg in op.positional[:len(args)]:
                arg = op.positional.index(exc.arg)
            else:
                arg = None
            raise at_arg(EvalError(message, where, hint), arg) from None
        if any(t.shape is None for t in inputs):
            return self.add_node(op, name, {}, inputs, pos, where)  # counts the call, returns a poisoned tensor
        for t in inputs:
            if len(t.shape) not in op.ranks:
                raise EvalError(f"{op_name}() cannot take a tensor of shape {list(t.shape)}", where,
                                _rank_hint(op, t.shape))
        try:
            attrs = op.normalize(validated, [t.shape for t in inputs])
        except op_table.ShapeError as exc:
            raise EvalError(f"{op_name}: {exc}", where, exc.hint) from None
        return self.add_node(op, name, attrs, inputs, pos, where)


def _rank_hint(op, shape) -> str:
    if op.ranks == (1,):
        return "flatten() the tensor first"
    if len(shape) == 1:
        return f"{op.name}() works on [C, L], [C, H, W] or [C, D, H, W] tensors; this one is already flat"
    return f"{op.name}() accepts tensors of rank {', '.join(map(str, op.ranks))}"


def at_arg(exc: EvalError, arg: int | str | None) -> EvalError:
    """Tag an error with the argument it is about (a position or a keyword), for s_call_stmt to point at."""
    exc.arg = arg
    return exc


def _explain_arg_error(op, exc) -> tuple[str, str | None]:
    """An op argument refused, in spec terms: the message and a hint."""
    fields = list(op.Args.fields)
    if exc.problem == "unknown":
        return (f"{op.name}() has no argument '{exc.arg}'",
                did_you_mean(exc.arg, fields) or (f"its arguments are: {', '.join(fields)}" if fields
                                                  else f"{op.name}() takes no arguments"))
    if exc.problem == "missing":
        return f"{op.name}() needs the argument '{exc.arg}'", op.doc or None
    return f"{op.name}(): '{exc.arg}' {exc.text}", None

"""Parse tree -> IR. Evaluates parameters, variants, blocks, loops and merges, names every node by
its scope, infers every shape, and collects every error of the spec with its position."""
from __future__ import annotations

from pathlib import Path
from typing import Any


from . import ops as op_table
from .errors import Diagnostic, Pos, did_you_mean
from .expressions import EvalError, ExprEvaluator, WorkLimit, Poisoned, bind_targets
from .ir import INIT_SCHEMES, Architecture, init_problem, Budget, Input, Node, Output, Scope, Span
from .limits import Limits
from .modules import SpecModule
from .names import LABEL, input_problem, label_problem
from .parser import RESERVED as KEYWORDS, Token, Tree, pos_of
from .values import BlockValue, OpValue, ShapeView, Tensor, a_type, type_name

BUDGET_METRICS = ("params", "macs", "flops", "memory", "buffers")


# --------------------------------------------------------------------------- name resolution

class Frame:
    """Local bindings of one block call (or the network body). Loops and ifs share their frame, as in Python."""

    def __init__(self, lowerer: "Lowerer", module: SpecModule, globals_: "Globals", input_tensor: Tensor | None,
                 parent: "Frame | None" = None):
        self.vars: dict[str, Any] = {}
        self.low, self.module, self.globals, self.input = lowerer, module, globals_, input_tensor
        self.parent = parent

    def child(self) -> "Frame":  # a list comprehension's own scope
        f = Frame(self.low, self.module, self.globals, self.input, self)
        return f

    def set(self, name: str, value) -> None:
        self.vars[name] = value

    def lookup(self, tok: Token):
        name = tok.value
        f = self
        while f is not None:
            if name in f.vars:
                value = f.vars[name]
                if value is _POISON:
                    raise Poisoned()
                return value
            f = f.parent
        return self.globals.lookup(tok, self)

    def input_view(self, where):
        if self.input is None:
            raise EvalError("'in' is only available inside a network or block", where)
        if self.input.shape is None:
            raise Poisoned()
        return ShapeView(self.input.shape)

    def names(self):
        f, out = self, set()
        while f is not None:
            out |= set(f.vars)
            f = f.parent
        return out | self.globals.names()


_POISON = object()  # the value of a name whose assignment read an unknown shape (after an earlier error)


class Globals:
    """Module-level names, evaluated lazily so a parameter may depend on others and overrides flow through.
    Precedence: load-time overrides > variant assignments > parameter defaults."""

    def __init__(self, lowerer: "Lowerer", module: SpecModule, variant_assigns=(), overrides: dict | None = None):
        self.low, self.module = lowerer, module
        self.defs: dict[str, tuple[str, Any]] = {n: ("expr", e) for n, (e, _) in module.params.items()}
        for tok, expr in variant_assigns:
            self.defs[tok.value] = ("expr", expr)
        for n, v in (overrides or {}).items():
            self.defs[n] = ("value", v)
        self.values: dict[str, Any] = {}
        self.busy: set[str] = set()

    def lookup(self, tok: Token, frame: Frame | None = None):
        name = tok.value
        if name in self.values:
            return self.values[name]
        if name in self.defs:
            kind, what = self.defs[name]
            if kind == "value":
                value = what
                if isinstance(value, str) and value in self.module.blocks:
                    value = self.module.blocks[value]  # --set unit=bottleneck names a block
            else:
                if name in self.busy:
                    raise EvalError(f"parameter '{name}' is defined in terms of itself", tok)
                self.busy.add(name)
                try:
                    value = self.low.ev.eval(what, Frame(self.low, self.module, self, None))
                finally:
                    self.busy.discard(name)
            self.values[name] = value
            return value
        if name in self.module.blocks:
            return self.module.blocks[name]
        if name in op_table.REGISTRY:
            return OpValue(name)
        if name in self.low.ev.builtins:
            return self.low.ev.builtins[name]
        cands = (frame.names() if frame is not None else self.names())
        raise EvalError(f"unknown name '{name}'", tok, did_you_mean(name, cands) or "define it with a parameter, "
                        "a variant, a block argument or an assignment")

    def names(self):
        return set(self.defs) | set(self.module.blocks) | set(op_table.REGISTRY) | set(self.low.ev.builtins)


# --------------------------------------------------------------------------- scopes of names

class Cursor:
    """Where statements land in the scope tree: a path and the position counter of unlabeled items."""

    __slots__ = ("path", "count")

    def __init__(self, path: str):
        self.path = path
        self.count = 0

    def join(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def next_path(self) -> str:
        name = self.join(str(self.count))
        self.count += 1
        return name

    def take(self, label: str | None) -> str:
        """The path of one layer-producing statement: its label, else its position."""
        if label is None:
            return self.next_path()
        self.count += 1
        return label


class _Abort(Exception):
    """Stop lowering: too many errors, or a limit that makes going on pointless."""


class _TooDeep(Exception):
    """Python's stack ran out under a statement (at `pos`): reported as a spec error."""

    def __init__(self, pos: Pos):
        super().__init__(str(pos))
        self.pos = pos


# --------------------------------------------------------------------------- the lowering

class Lowerer:
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
            raise _Abort()
        pos = where if isinstance(where, Pos) or where is None else pos_of(where, file or self.file)
        key = (message, str(pos))
        if key in self.seen_errors:
            return
        self.seen_errors.add(key)
        notes = [f"in block '{b.name}' called at {at}" for b, at in reversed(self.call_stack[-3:])]
        self.errors.append(Diagnostic(message, pos, hint, notes))
        if len(self.errors) >= self.limits.max_errors:
            raise _Abort()

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
                raise _Abort()
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
            raise _Abort()
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
            raise _at_arg(EvalError(f"{op_name}() takes at most {len(op.positional)} positional argument"
                                    f"{'s' if len(op.positional) != 1 else ''}, got {len(args)}", where,
                                    f"its arguments are: {', '.join(op.Args.fields)}" if op.Args.fields
                                    else f"{op_name}() takes no arguments"), len(op.positional))
        values = dict(zip(op.positional, args))
        for k, v in kwargs.items():
            if k in values:
                raise _at_arg(EvalError(f"{op_name}(): argument '{k}' given twice", where), k)
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
            raise _at_arg(EvalError(message, where, hint), arg) from None
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

    def merge(self, kind: str, inputs: list[Tensor], cursor: Cursor, pos: Pos, where, **attrs) -> Tensor:
        name = cursor.join(kind)
        k = 1
        while name in self.names:
            name = cursor.join(f"{kind}_{k}")
            k += 1
        self.names[name] = pos
        op = op_table.REGISTRY[kind]
        if kind == "cat":
            attrs = {"dim": 0}
        return self.add_node(op, name, attrs, inputs, pos, where)

    # ---- statements ----
    def run_body(self, body: Tree, frame: Frame, cursor: Cursor, cur: Tensor) -> Tensor:
        for stmt in body.children:
            cur = self.run_stmt(stmt, frame, cursor, cur, None)
        return cur

    def run_stmt(self, stmt: Tree, frame: Frame, cursor: Cursor, cur: Tensor, label: str | None) -> Tensor:
        try:
            self.ev.step(stmt)
            if len(self.scopes) >= self.limits.max_nodes:  # block calls and groups add scopes, not nodes
                raise WorkLimit(f"the network has more than {self.limits.max_nodes} scopes (block calls and groups)",
                                stmt, "lower the repeat counts, or raise Limits.max_nodes")
            return getattr(self, "s_" + stmt.data)(stmt, frame, cursor, cur, label)
        except EvalError as exc:
            self.error(str(exc), exc.where if exc.where is not None else stmt, exc.hint, frame.module.file)
            if isinstance(exc, WorkLimit):
                raise _Abort() from None
            return Tensor(cur.name, None, cur.origin)
        except Poisoned:
            return Tensor(cur.name, None, cur.origin)
        except RecursionError:  # nested blocks and groups, or a deeply nested value: an error, not a crash
            raise _TooDeep(self.pos(stmt, frame)) from None

    def s_labeled(self, stmt, frame, cursor, cur, label):
        label_tree, inner = stmt.children
        if label is not None:
            raise EvalError("a statement has one label", label_tree)
        text = self.label_text(label_tree, frame)
        if inner.data in ("assign", "save_stmt", "output_stmt", "budget_stmt", "order_stmt", "labeled"):
            raise EvalError("a label names a layer, a block call or a group", label_tree,
                            f"remove '{text}:' or put it before a layer")
        path = cursor.join(text)
        self.claim(path, self.pos(label_tree, frame), label_tree)
        return self.run_stmt(inner, frame, cursor, cur, path)

    def label_text(self, tree: Tree, frame: Frame) -> str:
        parts = []
        for c in tree.children:
            if isinstance(c, Token):
                parts.append(c.value)
            elif c.data == "label_text":
                parts.append(c.children[0].value)
            else:
                v = self.eval(c.children[0], frame)
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise EvalError(f"a label can hold an integer or a string, got {type_name(v)}", c)
                if isinstance(v, str) and len(v) > self.limits.max_label_chars:
                    raise EvalError(f"a label of over {self.limits.max_label_chars} characters", c,
                                    "labels name modules: keep them short")
                parts.append(str(v))
        text = "".join(parts)
        if len(text) > self.limits.max_label_chars:
            raise EvalError(f"a label of over {self.limits.max_label_chars} characters", tree,
                            "labels name modules: keep them short")
        self.ev.count_built(len(text), tree)  # label bytes count against the work of a load
        if not LABEL.fullmatch(text):  # labels become module paths, state_dict keys and ONNX names
            raise EvalError(f"invalid label {text!r}", tree, "a label is letters, digits, '_' and '-'")
        problem = label_problem(text)
        if problem:
            raise EvalError(problem, tree, "choose another label")
        return text

    def s_assign(self, stmt, frame, cursor, cur, label):
        name, expr = stmt.children
        if name.value in KEYWORDS:
            raise EvalError(f"'{name}' is a keyword", name)
        try:
            value = self.eval(expr, frame)
        except Poisoned:  # after an earlier error: the name exists, and its later uses stay silent too
            frame.set(name.value, _POISON)
            raise
        frame.set(name.value, value)
        return cur

    def s_call_stmt(self, stmt, frame, cursor, cur, label):
        name_tok, args_tree, parts = stmt.children
        try:
            target = frame.lookup(name_tok)
        except EvalError as exc:  # a call names a layer: suggest ops and blocks, not variables and builtins
            if name_tok.value not in frame.names():
                exc.hint = did_you_mean(name_tok.value, set(frame.module.blocks) | set(op_table.REGISTRY)) or (
                    f"'{name_tok}' is neither an op nor a block of this spec: the ops are listed in "
                    f"docs/language.md (\"Ops\"); define a layer of your own with `block {name_tok}(...) {{ ... }}`")
            raise
        args, kwargs = self.ev.eval_args(args_tree, frame)
        pos = self.pos(stmt, frame)
        if isinstance(target, (OpValue, BlockValue)):
            path = cursor.take(label)
            if label is None:
                self.claim(path, pos, stmt)
            try:
                if parts is not None:
                    return self.apply_parts(target, parts, args, kwargs, cur, path, pos, stmt, frame)
                if isinstance(target, OpValue) and op_table.REGISTRY[target.name].arity == 0:
                    return self.source_stmt(target.name, args, kwargs, cur, frame, label, path, pos, stmt)
                if isinstance(target, OpValue):
                    return self.apply_op(target.name, args, kwargs, cur, path, pos, stmt)
                return self.call_block(target, args, kwargs, cur, path, pos, stmt)
            except EvalError as exc:  # an error about one argument points at that argument
                if exc.where is stmt and getattr(exc, "arg", None) is not None:
                    exc.where = _arg_tree(args_tree, exc.arg) or stmt
                raise
        if name_tok.value in op_table.REGISTRY or name_tok.value in frame.module.blocks:
            kind = "op" if name_tok.value in op_table.REGISTRY else "block"
            hint = f"a variable named '{name_tok}' hides the {kind} of that name: rename the variable"
        else:
            hint = did_you_mean(name_tok.value, set(frame.module.blocks) | set(op_table.REGISTRY))
        raise EvalError(f"'{name_tok}' is {a_type(target)}, not a layer or block", name_tok, hint)

    def source_stmt(self, op_name, args, kwargs, cur, frame, label, path, pos, where) -> Tensor:
        """`class_token: learnable([1, 768])`: a tensor with no input, named by its label (its state_dict key)
        and bound to the label's last part as a named tensor; the current tensor goes on unchanged."""
        if label is None:
            raise EvalError(f"{op_name}() needs a label: it names the tensor and its state_dict key", where,
                            f"for example: class_token: {op_name}([1, 768])")
        frame.set(path.rsplit(".", 1)[-1], self.apply_op(op_name, args, kwargs, cur, path, pos, where))
        return cur

    def apply_parts(self, target, parts, args, kwargs, cur: Tensor, path: str, pos: Pos, where, frame) -> Tensor:
        """`chunk(2) as a, b`: one node per part, `<path>.<name>`, each bound to its name; the current
        tensor stays the input (as after `save`)."""
        op = op_table.REGISTRY.get(target.name) if isinstance(target, OpValue) else None
        if op is None or not hasattr(op, "count"):
            cutters = sorted(n for n, o in op_table.REGISTRY.items() if hasattr(o, "count"))
            raise EvalError(f"only an op that cuts its input ({', '.join(cutters)}) names its parts with 'as'", parts,
                            "save the result instead: 'save NAME'")
        if "index" in kwargs:
            raise EvalError(f"{op.name}() as ... makes every part: drop index =", where)
        names = [t.value for t in parts.children]
        if cur.shape is None:  # after an error: bind the names, report nothing more
            for tok in parts.children:
                frame.set(tok.value, Tensor(f"{path}.{tok.value}", None, pos))
            return cur
        try:
            count = op.count(op.Args(**dict(zip(op.positional, args)), **kwargs), cur.shape)
        except (op_table.ArgError, op_table.ShapeError, TypeError):
            count = None  # the first part's apply_op reports the problem at its argument
        if count is not None and count != len(names):
            raise EvalError(f"{op.name}() makes {count} tensors, {len(names)} names are given", parts,
                            f"name every part: as {', '.join(f'x{i}' for i in range(count))}" if count <= 8 else None)
        for i, tok in enumerate(parts.children):
            name = f"{path}.{tok.value}"
            self.claim(name, self.pos(tok, frame), tok)
            frame.set(tok.value, self.apply_op(op.name, args, {**kwargs, "index": i}, cur, name, pos, where))
        return cur

    def call_block(self, block: BlockValue, args, kwargs, cur: Tensor, path: str, pos: Pos, where) -> Tensor:
        if any(b is block for b, _ in self.call_stack):
            raise EvalError(f"block '{block.name}' calls itself", where, "recursion is not allowed: use repeat")
        if len(self.call_stack) >= self.limits.max_call_depth:
            raise EvalError(f"block calls nested deeper than {self.limits.max_call_depth}", where,
                            "flatten the blocks, or raise Limits.max_call_depth")
        names = [n for n, _ in block.params]
        if len(args) > len(names):
            raise _at_arg(EvalError(f"block '{block.name}' takes {len(names)} argument{'s' if len(names) != 1 else ''}"
                                    f", got {len(args)}", where, f"its parameters: {', '.join(names) or 'none'}"),
                          len(names))
        mod = block.module
        globals_ = self.globals if mod is self.module else self.module_globals(mod)
        frame = Frame(self, mod, globals_, cur)
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise _at_arg(EvalError(f"block '{block.name}' has no parameter '{k}'", where,
                                        did_you_mean(k, names) or f"its parameters: {', '.join(names) or 'none'}"), k)
            if k in given:
                raise _at_arg(EvalError(f"block '{block.name}': argument '{k}' given twice", where), k)
            given[k] = v
        for pname, default in block.params:
            if pname in given:
                frame.set(pname, given[pname])
            elif default is not None:
                frame.set(pname, self.eval(default, frame))
            else:
                raise EvalError(f"block '{block.name}' needs an argument '{pname}'", where, f"defined at {block.pos}")
        self.scopes.append(Scope(name=path, block=block.name, span=self.span(pos)))
        self.call_stack.append((block, pos))
        try:
            out = self.run_body(block.body, frame, Cursor(path), cur)
        finally:
            self.call_stack.pop()
            self.file = pos.file
        return out

    def module_globals(self, mod: SpecModule) -> Globals:
        if mod.path not in self.other_globals:
            self.other_globals[mod.path] = Globals(self, mod)
        return self.other_globals[mod.path]

    def s_group_stmt(self, stmt, frame, cursor, cur, label):
        path = cursor.take(label)
        pos = self.pos(stmt, frame)
        if label is None:
            self.claim(path, pos, stmt)
        self.scopes.append(Scope(name=path, span=self.span(pos)))
        return self.run_body(stmt.children[0], frame, Cursor(path), cur)

    def _splice(self, cursor: Cursor, label: str | None, pos: Pos) -> Cursor:
        if label is None:
            return cursor
        self.scopes.append(Scope(name=label, span=self.span(pos)))
        return Cursor(label)

    def s_repeat_stmt(self, stmt, frame, cursor, cur, label):
        count_tree, var, body = stmt.children
        n = self.eval(count_tree, frame)
        if isinstance(n, bool) or not isinstance(n, int):
            raise EvalError(f"a repeat count must be an integer, got {type_name(n)} {n!r}", count_tree,
                            "wrap it in int(), ceil() or round()")
        if n < 0:
            raise EvalError(f"a repeat count cannot be negative ({n})", count_tree)
        if n > self.limits.max_nodes:
            raise EvalError(f"repeat count {n} is over the limit of {self.limits.max_nodes} nodes", count_tree,
                            "lower it, or raise Limits.max_nodes")
        inner = self._splice(cursor, label, self.pos(stmt, frame))
        for i in range(n):
            if var is not None:
                frame.set(var.value, i)
            cur = self.run_body(body, frame, inner, cur)
        return cur

    def s_for_stmt(self, stmt, frame, cursor, cur, label):
        targets, iterable, body = stmt.children
        items = self.eval(iterable, frame)
        if not isinstance(items, (list, tuple)):
            raise EvalError(f"cannot loop over {a_type(items)}", iterable, "loop over a list or range(n)")
        inner = self._splice(cursor, label, self.pos(stmt, frame))
        for item in items:
            bind_targets(targets, item, frame)
            cur = self.run_body(body, frame, inner, cur)
        return cur

    def s_if_stmt(self, stmt, frame, cursor, cur, label):
        cond, then, other = stmt.children
        inner = self._splice(cursor, label, self.pos(stmt, frame))
        if self.truth(cond, frame):
            return self.run_body(then, frame, inner, cur)
        if other is None:
            return cur
        if other.data == "if_stmt":
            return self.run_stmt(other, frame, inner, cur, None)
        return self.run_body(other, frame, inner, cur)

    def truth(self, cond, frame) -> bool:
        v = self.eval(cond, frame)
        if not isinstance(v, (bool, int, float)):
            raise EvalError(f"a condition must be true or false, got {type_name(v)}", cond)
        return bool(v)

    def s_residual_stmt(self, stmt, frame, cursor, cur, label):
        cond, body, shortcut = stmt.children
        pos = self.pos(stmt, frame)
        inner = self._splice(cursor, label, pos)
        if cond is not None and not self.truth(cond.children[0], frame):
            return self.run_body(body, frame, inner, cur)
        x = cur
        y = self.run_body(body, frame, inner, x)
        s = x
        if shortcut is not None:
            scond, sbody = shortcut.children
            if scond is None or self.truth(scond.children[0], frame):
                s = self.run_body(sbody, frame, inner, x)
        return self.merge("add", [y, s], inner, pos, stmt)

    def s_dense_stmt(self, stmt, frame, cursor, cur, label):
        pos = self.pos(stmt, frame)
        inner = self._splice(cursor, label, pos)
        y = self.run_body(stmt.children[0], frame, inner, cur)
        return self.merge("cat", [cur, y], inner, pos, stmt)

    def s_gate_stmt(self, stmt, frame, cursor, cur, label):
        pos = self.pos(stmt, frame)
        path = cursor.take(label)
        if label is None:
            self.claim(path, pos, stmt)
        self.scopes.append(Scope(name=path, span=self.span(pos)))
        inner = Cursor(path)
        y = self.run_body(stmt.children[0], frame, inner, cur)
        return self.merge("mul", [cur, y], inner, pos, stmt)

    def s_branch_stmt(self, stmt, frame, cursor, cur, label):
        how, body = stmt.children
        if how.value not in ("concat", "add"):
            raise EvalError(f"branches are joined by 'concat' or 'add', not '{how}'", how,
                            did_you_mean(how.value, ["concat", "add"]))
        pos = self.pos(stmt, frame)
        inner = self._splice(cursor, label, pos)
        outs = []
        for s in body.children:
            if s.data in ("assign", "budget_stmt", "save_stmt", "order_stmt"):
                self.run_stmt(s, frame, inner, cur, None)
            else:
                outs.append(self.run_stmt(s, frame, inner, cur, None))
        if len(outs) < 2:
            raise EvalError(f"a branch statement needs two or more branches, got {len(outs)}", stmt)
        return self.merge("cat" if how.value == "concat" else "add", outs, inner, pos, stmt)

    def s_save_stmt(self, stmt, frame, cursor, cur, label):
        frame.set(stmt.children[0].value, cur)
        return cur

    def s_from_stmt(self, stmt, frame, cursor, cur, label):
        name, body = stmt.children
        start = frame.lookup(name)
        if not isinstance(start, Tensor):
            raise EvalError(f"'{name}' is {a_type(start)}, not a saved tensor", name, f"save it first: 'save {name}'")
        inner = self._splice(cursor, label, self.pos(stmt, frame))
        return self.run_body(body, frame, inner, start)

    def s_output_stmt(self, stmt, frame, cursor, cur, label):
        training, *names = stmt.children
        if training is None and any(o.training for o in self.outputs):
            raise EvalError("inference outputs come before training outputs", stmt,
                            "declare 'output training ...' last: training mode returns them after the others")
        for tok in names:
            t = frame.lookup(tok)
            if not isinstance(t, Tensor):
                raise EvalError(f"'{tok}' is {a_type(t)}, not a saved tensor", tok, f"save it first: 'save {tok}'")
            if any(o.name == tok.value for o in self.outputs):
                raise EvalError(f"output '{tok}' declared twice", tok)
            self.outputs.append(Output(name=tok.value, node=t.name, training=training is not None))
        return cur

    def s_order_stmt(self, stmt, frame, cursor, cur, label):
        """`order norm1, attn`: the scope's children are registered in this order (torch's state_dict order),
        whatever order the data flows through them (torchvision's post-norm blocks register the norm first)."""
        names = tuple(tok.value for tok in stmt.children)
        if len(set(names)) != len(names):
            raise EvalError("order names a child twice", stmt)
        if cursor.path in self.orders:
            raise EvalError("a scope has one order statement", stmt)
        self.orders[cursor.path] = names
        self.order_pos[cursor.path] = self.pos(stmt, frame)
        return cur

    def s_budget_stmt(self, stmt, frame, cursor, cur, label):
        self.budgets.append(self.budget(stmt, frame, label or cursor.path))
        return cur

    def budget(self, stmt, frame, scope: str) -> Budget:
        metric, comp, expr = stmt.children
        if metric.value not in BUDGET_METRICS:
            raise EvalError(f"unknown budget metric '{metric}'", metric,
                            did_you_mean(metric.value, BUDGET_METRICS) or f"one of {', '.join(BUDGET_METRICS)}")
        limit = self.eval(expr, frame)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise EvalError(f"a budget limit must be a number, got {type_name(limit)}", expr)
        return Budget(metric=metric.value, op=comp.value, limit=limit, scope=scope, span=self.span(self.pos(stmt, frame)))


def _rank_hint(op, shape) -> str:
    if op.ranks == (1,):
        return "flatten() the tensor first"
    if len(shape) == 1:
        return f"{op.name}() works on [C, L], [C, H, W] or [C, D, H, W] tensors; this one is already flat"
    return f"{op.name}() accepts tensors of rank {', '.join(map(str, op.ranks))}"


def _at_arg(exc: EvalError, arg: int | str | None) -> EvalError:
    """Tag an error with the argument it is about (a position or a keyword), for s_call_stmt to point at."""
    exc.arg = arg
    return exc


def _arg_tree(args_tree, arg: int | str):
    """The parse tree of a call's argument: the i-th positional one, or the keyword one named `arg`."""
    if args_tree is None:
        return None
    positional = [a for a in args_tree.children if a is not None and not (isinstance(a, Tree) and a.data == "kwarg")]
    if isinstance(arg, int):
        return positional[arg] if arg < len(positional) else None
    return next((a for a in args_tree.children if isinstance(a, Tree) and a.data == "kwarg"
                 and a.children[0].value == arg), None)


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


# --------------------------------------------------------------------------- the whole spec

def lower(module: SpecModule, variant: str | None, overrides: dict, limits: Limits,
          errors: list[Diagnostic], input_size: tuple[int, ...] | None = None) -> Architecture | None:
    """Evaluate a module at a variant and overrides into an Architecture (or add errors)."""
    low = Lowerer(module, limits, errors)
    assigns = ()
    if module.variants:
        if variant is None:
            if len(module.variants) == 1:
                variant = next(iter(module.variants))
            else:
                errors.append(Diagnostic(
                    f"'{module.file}' holds {len(module.variants)} variants; choose one",
                    next(iter(module.variants.values()))[1],
                    "variants: " + ", ".join(module.variants)))
                return None
        if variant not in module.variants:
            errors.append(Diagnostic(f"unknown variant '{variant}' of {module.file}", None,
                                     (did_you_mean(variant, module.variants) or "") + " variants: "
                                     + ", ".join(module.variants), arg=("variant", variant)))
            return None
        assigns = module.variants[variant][0]
    elif variant is not None and variant != module.arch:
        errors.append(Diagnostic(f"'{module.file}' has no variants, but variant '{variant}' was asked for",
                                 None, "load it without a variant", arg=("variant", variant)))
        return None
    known = set(module.params) | {tok.value for tok, _ in assigns}
    for name, value in overrides.items():
        if name not in known:
            errors.append(Diagnostic(f"unknown parameter '{name}' of {module.file}", None,
                                     did_you_mean(name, known) or ("parameters: " + ", ".join(sorted(known))),
                                     arg=("param", name)))
    if errors:
        return None
    low.globals = Globals(low, module, assigns, overrides)
    try:
        return _lower_network(low, module, variant, overrides, input_size)
    except _Abort:
        return None
    except (_TooDeep, RecursionError) as exc:
        errors.append(Diagnostic("the spec nests blocks, statements or values too deeply to evaluate",
                                 exc.pos if isinstance(exc, _TooDeep) else module.network_pos,
                                 "flatten the nesting; Limits.max_call_depth and max_nesting bound it"))
        return None


def _check_init(tok: Token, expr, scheme: str) -> None:
    """An init scheme the backends can apply to the op: it has weights, of 2+ dims for a fan-based scheme."""
    op = op_table.REGISTRY[tok.value]
    if scheme == "default":
        return
    if op.params.__func__ is op_table.Op.params.__func__:
        weighted = sorted(n for n, o in op_table.REGISTRY.items() if o.params.__func__ is not op_table.Op.params.__func__)
        raise EvalError(f"init for '{tok}', an op without weights", tok, "init applies to ops with weights: "
                        + ", ".join(weighted))
    if scheme.startswith(("kaiming", "xavier")) and op.__module__.endswith(".norm"):
        raise EvalError(f"init scheme {scheme!r} needs a weight of 2 or more dimensions; {tok}'s is one per channel",
                        expr, "use \"ones_zeros\" or \"default\" for a norm")


def _json_value(value):
    """A parameter's value as the IR holds it: JSON types only (tuples become lists; blocks and ops their repr)."""
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value if isinstance(value, (bool, int, float, str)) or value is None else repr(value)


def _check_param_type(name: str, default, value, where: Pos) -> None:
    kinds = {bool: "bool", int: "int", float: "float", str: "string", list: "list"}
    want = next((k for t, k in kinds.items() if isinstance(default, t)), None)
    if want is None:
        return
    ok = {"bool": lambda v: isinstance(v, bool), "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "string": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, (list, tuple))}[want]
    if not ok(value):
        raise EvalError(f"parameter '{name}' is {want} (from its default), but was given {type_name(value)} "
                        f"{op_table.spec_repr(value)}", where)


def _lower_network(low: Lowerer, module: SpecModule, variant, overrides, input_size=None) -> Architecture | None:
    errors = low.errors
    g = low.globals
    params: dict[str, Any] = {}
    for name, (expr, ppos) in module.params.items():
        default = None
        try:
            default = low.eval(expr, Frame(low, module, Globals(low, module), None))
            value = g.lookup(Token("NAME", name, line=ppos.line, column=ppos.col))
            if name in overrides or default is not value:
                _check_param_type(name, default, value, ppos)
            params[name] = _json_value(value)
        except EvalError as exc:
            low.error(str(exc), exc.where if exc.where is not None else ppos, exc.hint)
            if default is not None and name in g.values:  # go on with the default: no follow-on errors
                g.values[name] = default
    if module.network is None:
        errors.append(Diagnostic("the spec has no network", Pos(module.file, 1, 1),
                                 "add 'network { ... }' with the layers"))
        return None
    if not module.inputs:
        errors.append(Diagnostic("the spec declares no input", module.network_pos,
                                 "add 'input image: [3, 224, 224]' before the network"))
        return None
    inputs: list[Input] = []
    frame = Frame(low, module, g, None)
    for tok, expr in module.inputs:
        pos = pos_of(tok, module.file)
        try:
            shape = low.eval(expr, frame)
            if (not isinstance(shape, (list, tuple)) or not shape
                    or any(isinstance(d, bool) or not isinstance(d, int) for d in shape)):
                raise EvalError(f"an input shape is a list of integers, got {shape!r}", expr,
                                "for example: input image: [3, 224, 224]")
            if len(shape) > 4:
                raise EvalError(f"inputs have up to 4 axes without the batch ([C, D, H, W]), got {len(shape)}", expr)
            if input_size is not None and not inputs:  # --input HxW: the first input's spatial size
                if len(input_size) != len(shape) - 1:
                    raise EvalError(f"input '{tok}' has {len(shape) - 1} spatial axes, but {len(input_size)} sizes "
                                    "were given", expr)
                shape = [shape[0], *input_size]
            if any(d < 1 for d in shape):
                raise EvalError(f"input sizes must be positive, got {list(shape)}", expr)
            problem = input_problem(tok.value)
            if problem:
                raise EvalError(problem, tok, "choose another name for the input")
            low.claim(tok.value, pos, tok)
            inputs.append(Input(name=tok.value, shape=tuple(shape), span=low.span(pos)))
        except EvalError as exc:
            low.error(str(exc), exc.where, exc.hint)
    if errors:
        return None
    first = Tensor(inputs[0].name, inputs[0].shape, pos_of(module.inputs[0][0], module.file))
    frame = Frame(low, module, g, first)
    for inp, (tok, _) in zip(inputs[1:], module.inputs[1:]):
        frame.set(inp.name, Tensor(inp.name, inp.shape, pos_of(tok, module.file)))
    for b in module.budgets:
        try:
            low.budgets.append(low.budget(b, frame, ""))
        except EvalError as exc:
            low.error(str(exc), exc.where, exc.hint)
    init: dict[str, str] = {}
    for item in module.inits:
        tok, expr = item.children
        try:
            if tok.value not in op_table.REGISTRY:
                raise EvalError(f"init for an unknown op '{tok}'", tok, did_you_mean(tok.value, op_table.REGISTRY))
            scheme = low.eval(expr, frame)
            if isinstance(scheme, str) and scheme in INIT_SCHEMES:
                _check_init(tok, expr, scheme)  # what the op table knows: weights, and their rank
            problem = init_problem(tok.value, scheme) if isinstance(scheme, str) else "an init scheme is a string"
            if problem:
                raise EvalError(problem, expr, "one of: " + ", ".join(INIT_SCHEMES))
            init[tok.value] = scheme
        except EvalError as exc:
            low.error(str(exc), exc.where, exc.hint)
    last = low.run_body(module.network, frame, Cursor(""), first)
    if errors:
        return None
    if not low.nodes:
        errors.append(Diagnostic("the network has no layers", module.network_pos))
        return None
    if low.outputs and all(o.training for o in low.outputs):
        errors.append(Diagnostic("every output is a training output: inference would compute nothing",
                                 module.network_pos, "declare the inference outputs with 'output NAME' first"))
        return None
    outputs = low.outputs or [Output(name="output", node=last.name)]
    arch = Architecture(name=module.arch or module.path.stem, variant=variant, params=params, inputs=tuple(inputs),
                        nodes=tuple(low.nodes), outputs=tuple(outputs), scopes=tuple(low.scopes),
                        budgets=tuple(low.budgets), init=init, source=module.file, orders=low.orders)
    _check_orders(low, arch)
    _check_limits(low, arch)
    return None if errors else arch


def _check_orders(low: Lowerer, arch: Architecture) -> None:
    """Every name of an `order` statement is a child layer or scope of its scope."""
    children: dict[str, set[str]] = {}
    for name in [n.name for n in arch.nodes] + [s.name for s in arch.scopes]:
        parent, _, child = name.rpartition(".")
        children.setdefault(parent, set()).add(child)
    for scope, names in arch.orders.items():
        missing = [n for n in names if n not in children.get(scope, ())]
        if missing:
            pos = low.order_pos[scope]
            low.error(f"order names '{missing[0]}', which is no layer or scope of '{scope or 'the network'}'", pos,
                      "list the labels of this scope's layers, groups and block calls")


def _check_limits(low: Lowerer, arch: Architecture) -> None:
    for message, hint in size_problems(arch, low.limits, hints=True):
        low.errors.append(Diagnostic(message, low.module.network_pos, hint))


def size_problems(arch: Architecture, limits: Limits, hints: bool = False) -> list:
    """The network's size against the limits, checked before any backend allocates: parameters, and the
    float32 activations of one sample, inputs included. Messages (or (message, hint) pairs)."""
    shapes = arch.shapes()
    params = 0
    act = sum(op_table.numel(i.shape) * 4 for i in arch.inputs)  # inputs are allocated too
    for n in arch.nodes:
        op = op_table.REGISTRY[n.op]
        params += op.params(n.attrs, [shapes[i] for i in n.inputs], n.shape)
        act += op_table.numel(n.shape) * 4
    out = []
    if params > limits.max_params:
        out.append((f"the network has {params:,} parameters, over the limit of {limits.max_params:,}",
                    "raise Limits.max_params if this is intended"))
    if act > limits.max_activation_bytes:
        out.append((f"the network needs {act:,} bytes of activations per sample, over the limit "
                    f"of {limits.max_activation_bytes:,}", "lower the resolution, or raise Limits.max_activation_bytes"))
    return out if hints else [m for m, _ in out]

"""Statements: a body run statement by statement, labels, assignments, layer and block calls, loops and
ifs, and the statements that name tensors, outputs, orders and budgets."""
from __future__ import annotations

from .. import ops as op_table
from ..errors import Pos, did_you_mean
from ..expressions import EvalError, Poisoned, WorkLimit, argument_tree, bind_targets
from ..ir import Budget, Output, Scope
from ..modules import SpecModule
from ..names import LABEL, label_problem
from ..parser import RESERVED as KEYWORDS
from .. import syntax
from ..values import BlockValue, OpValue, Tensor, a_type, type_name
from .frames import POISON, Abort, Cursor, Frame, Globals, TooDeep
from .layers import at_arg

BUDGET_METRICS = ("params", "macs", "flops", "memory", "buffers")


class Statements:
    def run_body(self, body: syntax.Body, frame: Frame, cursor: Cursor, cur: Tensor) -> Tensor:
        for stmt in body.stmts:
            cur = self.run_stmt(stmt, frame, cursor, cur, None)
        return cur

    def run_stmt(self, stmt, frame: Frame, cursor: Cursor, cur: Tensor, label: str | None) -> Tensor:
        try:
            self.ev.step(stmt)
            if len(self.scopes) >= self.limits.max_nodes:  # block calls and groups add scopes, not nodes
                raise WorkLimit(f"the network has more than {self.limits.max_nodes} scopes (block calls and groups)",
                                stmt, "lower the repeat counts, or raise Limits.max_nodes")
            return getattr(self, "s_" + stmt.rule)(stmt, frame, cursor, cur, label)
        except EvalError as exc:
            self.error(str(exc), exc.where if exc.where is not None else stmt, exc.hint, frame.module.file)
            if isinstance(exc, WorkLimit):
                raise Abort() from None
            return Tensor(cur.name, None, cur.origin)
        except Poisoned:
            return Tensor(cur.name, None, cur.origin)
        except RecursionError:  # nested blocks and groups, or a deeply nested value: an error, not a crash
            raise TooDeep(self.pos(stmt, frame)) from None

    def s_labeled(self, stmt, frame, cursor, cur, label):
        label_tree, inner = stmt.label, stmt.stmt
        if label is not None:
            raise EvalError("a statement has one label", label_tree)
        text = self.label_text(label_tree, frame)
        if isinstance(inner, (syntax.Assign, syntax.Save, syntax.Output, syntax.Budget, syntax.Order, syntax.Labeled)):
            raise EvalError("a label names a layer, a block call or a group", label_tree,
                            f"remove '{text}:' or put it before a layer")
        path = cursor.join(text)
        self.claim(path, self.pos(label_tree, frame), label_tree)
        return self.run_stmt(inner, frame, cursor, cur, path)

    def label_text(self, tree: syntax.Label, frame: Frame) -> str:
        parts = []
        for c in tree.parts:
            if not isinstance(c, syntax.LabelExpr):  # a token of the label's text
                parts.append(c.value)
            else:
                v = self.eval(c.expr, frame)
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
        name, expr = stmt.name, stmt.value
        if name.value in KEYWORDS:
            raise EvalError(f"'{name}' is a keyword", name)
        try:
            value = self.eval(expr, frame)
        except Poisoned:  # after an earlier error: the name exists, and its later uses stay silent too
            frame.set(name.value, POISON)
            raise
        frame.set(name.value, value)
        return cur

    def s_call_stmt(self, stmt, frame, cursor, cur, label):
        name_tok, args_tree, parts = stmt.name, stmt.args, stmt.parts
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
                    exc.where = argument_tree(args_tree, exc.arg) or stmt
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
        names = [t.value for t in parts.names]
        if cur.shape is None:  # after an error: bind the names, report nothing more
            for tok in parts.names:
                frame.set(tok.value, Tensor(f"{path}.{tok.value}", None, pos))
            return cur
        try:
            count = op.count(op.Args(**dict(zip(op.positional, args)), **kwargs), cur.shape)
        except (op_table.ArgError, op_table.ShapeError, TypeError):
            count = None  # the first part's apply_op reports the problem at its argument
        if count is not None and count != len(names):
            raise EvalError(f"{op.name}() makes {count} tensors, {len(names)} names are given", parts,
                            f"name every part: as {', '.join(f'x{i}' for i in range(count))}" if count <= 8 else None)
        for i, tok in enumerate(parts.names):
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
            raise at_arg(EvalError(f"block '{block.name}' takes {len(names)} argument{'s' if len(names) != 1 else ''}"
                                    f", got {len(args)}", where, f"its parameters: {', '.join(names) or 'none'}"),
                          len(names))
        mod = block.module
        globals_ = self.globals if mod is self.module else self.module_globals(mod)
        frame = Frame(self, mod, globals_, cur)
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise at_arg(EvalError(f"block '{block.name}' has no parameter '{k}'", where,
                                        did_you_mean(k, names) or f"its parameters: {', '.join(names) or 'none'}"), k)
            if k in given:
                raise at_arg(EvalError(f"block '{block.name}': argument '{k}' given twice", where), k)
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

    def s_repeat_stmt(self, stmt, frame, cursor, cur, label):
        count_tree, var, body = stmt.count, stmt.var, stmt.body
        n = self.eval(count_tree, frame)
        if isinstance(n, bool) or not isinstance(n, int):
            raise EvalError(f"a repeat count must be an integer, got {type_name(n)} {n!r}", count_tree,
                            "wrap it in int(), ceil() or round()")
        if n < 0:
            raise EvalError(f"a repeat count cannot be negative ({n})", count_tree)
        if n > self.limits.max_nodes:
            raise EvalError(f"repeat count {n} is over the limit of {self.limits.max_nodes} nodes", count_tree,
                            "lower it, or raise Limits.max_nodes")
        inner = self.splice(cursor, label, self.pos(stmt, frame))
        for i in range(n):
            if var is not None:
                frame.set(var.value, i)
            cur = self.run_body(body, frame, inner, cur)
        return cur

    def s_for_stmt(self, stmt, frame, cursor, cur, label):
        targets, iterable, body = stmt.targets, stmt.iterable, stmt.body
        items = self.eval(iterable, frame)
        if not isinstance(items, (list, tuple)):
            raise EvalError(f"cannot loop over {a_type(items)}", iterable, "loop over a list or range(n)")
        inner = self.splice(cursor, label, self.pos(stmt, frame))
        for item in items:
            bind_targets(targets, item, frame)
            cur = self.run_body(body, frame, inner, cur)
        return cur

    def s_if_stmt(self, stmt, frame, cursor, cur, label):
        cond, then, other = stmt.cond, stmt.then, stmt.other
        inner = self.splice(cursor, label, self.pos(stmt, frame))
        if self.truth(cond, frame):
            return self.run_body(then, frame, inner, cur)
        if other is None:
            return cur
        if isinstance(other, syntax.If):
            return self.run_stmt(other, frame, inner, cur, None)
        return self.run_body(other, frame, inner, cur)

    def truth(self, cond, frame) -> bool:
        v = self.eval(cond, frame)
        if not isinstance(v, (bool, int, float)):
            raise EvalError(f"a condition must be true or false, got {type_name(v)}", cond)
        return bool(v)

    def s_save_stmt(self, stmt, frame, cursor, cur, label):
        frame.set(stmt.name.value, cur)
        return cur

    def s_from_stmt(self, stmt, frame, cursor, cur, label):
        name, body = stmt.name, stmt.body
        start = frame.lookup(name)
        if not isinstance(start, Tensor):
            raise EvalError(f"'{name}' is {a_type(start)}, not a saved tensor", name, f"save it first: 'save {name}'")
        inner = self.splice(cursor, label, self.pos(stmt, frame))
        return self.run_body(body, frame, inner, start)

    def s_output_stmt(self, stmt, frame, cursor, cur, label):
        training, names = stmt.training, stmt.names
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
        names = tuple(tok.value for tok in stmt.names)
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
        metric, comp, expr = stmt.metric, stmt.comp, stmt.limit
        if metric.value not in BUDGET_METRICS:
            raise EvalError(f"unknown budget metric '{metric}'", metric,
                            did_you_mean(metric.value, BUDGET_METRICS) or f"one of {', '.join(BUDGET_METRICS)}")
        limit = self.eval(expr, frame)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            raise EvalError(f"a budget limit must be a number, got {type_name(limit)}", expr)
        return Budget(metric=metric.value, op=comp.value, limit=limit, scope=scope, span=self.span(self.pos(stmt, frame)))


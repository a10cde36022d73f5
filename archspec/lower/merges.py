"""Merges and scopes: groups, residual, dense, gate and branch statements, each a scope of its own whose
paths join into one add, cat or mul node."""
from __future__ import annotations

from .. import ops as op_table
from .. import syntax
from ..errors import Pos, did_you_mean
from ..expressions import EvalError
from ..ir import Scope
from ..values import Tensor
from .frames import Cursor


class Merges:
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

    def s_group_stmt(self, stmt, frame, cursor, cur, label):
        path = cursor.take(label)
        pos = self.pos(stmt, frame)
        if label is None:
            self.claim(path, pos, stmt)
        self.scopes.append(Scope(name=path, span=self.span(pos)))
        return self.run_body(stmt.body, frame, Cursor(path), cur)

    def splice(self, cursor: Cursor, label: str | None, pos: Pos) -> Cursor:
        if label is None:
            return cursor
        self.scopes.append(Scope(name=label, span=self.span(pos)))
        return Cursor(label)

    def s_residual_stmt(self, stmt, frame, cursor, cur, label):
        cond, body, shortcut = stmt.cond, stmt.body, stmt.shortcut
        pos = self.pos(stmt, frame)
        inner = self.splice(cursor, label, pos)
        if cond is not None and not self.truth(cond, frame):
            return self.run_body(body, frame, inner, cur)
        x = cur
        y = self.run_body(body, frame, inner, x)
        s = x
        if shortcut is not None:
            scond, sbody = shortcut.cond, shortcut.body
            if scond is None or self.truth(scond, frame):
                s = self.run_body(sbody, frame, inner, x)
        return self.merge("add", [y, s], inner, pos, stmt)

    def s_dense_stmt(self, stmt, frame, cursor, cur, label):
        pos = self.pos(stmt, frame)
        inner = self.splice(cursor, label, pos)
        y = self.run_body(stmt.body, frame, inner, cur)
        return self.merge("cat", [cur, y], inner, pos, stmt)

    def s_gate_stmt(self, stmt, frame, cursor, cur, label):
        pos = self.pos(stmt, frame)
        path = cursor.take(label)
        if label is None:
            self.claim(path, pos, stmt)
        self.scopes.append(Scope(name=path, span=self.span(pos)))
        inner = Cursor(path)
        y = self.run_body(stmt.body, frame, inner, cur)
        return self.merge("mul", [cur, y], inner, pos, stmt)

    def s_branch_stmt(self, stmt, frame, cursor, cur, label):
        how, body = stmt.how, stmt.body
        if how.value not in ("concat", "add"):
            raise EvalError(f"branches are joined by 'concat' or 'add', not '{how}'", how,
                            did_you_mean(how.value, ["concat", "add"]))
        pos = self.pos(stmt, frame)
        inner = self.splice(cursor, label, pos)
        outs = []
        for s in body.stmts:
            if isinstance(s, (syntax.Assign, syntax.Budget, syntax.Save, syntax.Order)):
                self.run_stmt(s, frame, inner, cur, None)
            else:
                outs.append(self.run_stmt(s, frame, inner, cur, None))
        if len(outs) < 2:
            raise EvalError(f"a branch statement needs two or more branches, got {len(outs)}", stmt)
        return self.merge("cat" if how.value == "concat" else "add", outs, inner, pos, stmt)

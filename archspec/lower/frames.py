"""Name resolution and where layers land: a block call's Frame, the module-level Globals, the Cursor of a
scope, and the two ways a lowering stops early."""
from __future__ import annotations

from typing import Any, TYPE_CHECKING

from .. import ops as op_table
from ..errors import Pos, did_you_mean
from ..expressions import EvalError, Poisoned
from ..modules import SpecModule
from ..parser import Token
from ..values import OpValue, ShapeView, Tensor

if TYPE_CHECKING:
    from .declarations import Lowerer


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
                if value is POISON:
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


POISON = object()  # the value of a name whose assignment read an unknown shape (after an earlier error)


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


class Abort(Exception):
    """Stop lowering: too many errors, or a limit that makes going on pointless."""


class TooDeep(Exception):
    """Python's stack ran out under a statement (at `pos`): reported as a spec error."""

    def __init__(self, pos: Pos):
        super().__init__(str(pos))
        self.pos = pos

"""Run-time values of the language besides numbers, strings and lists."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import Pos


@dataclass(frozen=True)
class Tensor:
    """A value in the graph being built: the name of the node (or input) that produces it, and its shape.
    `shape` is None after an error, so that later statements do not report consequences of it."""

    name: str
    shape: tuple[int, ...] | None
    origin: Pos | None = None


@dataclass(frozen=True)
class ShapeView:
    """What `in` reads: in.channels, in.height, in.width, in.length, in.shape."""

    shape: tuple[int, ...]

    def attr(self, name: str):
        s = self.shape
        table = {"shape": list(s), "rank": len(s)} | ({"channels": s[0]} if s else {})
        if len(s) == 3:
            table.update(height=s[1], width=s[2])
        if len(s) == 4:
            table.update(depth=s[1], height=s[2], width=s[3])
        if len(s) == 2:
            table.update(length=s[1])
        if len(s) == 1:
            table.update(features=s[0])
        if name not in table:
            raise KeyError(name)
        return table[name]

    def attr_names(self):
        return ["channels", "depth", "height", "width", "length", "features", "shape", "rank"]


@dataclass(frozen=True, eq=False)
class BlockValue:
    """A block definition: a value, so a variant can choose it (`unit = bottleneck`)."""

    name: str
    params: tuple[tuple[str, Any], ...]   # (name, default expression tree or None)
    body: Any                             # the body: a syntax.Body
    module: Any                           # the SpecModule it was defined in
    pos: Pos

    def __repr__(self) -> str:
        return f"<block {self.name}>"


@dataclass(frozen=True)
class OpValue:
    """An op of the table used as a value (`act = hardswish`)."""

    name: str

    def __repr__(self) -> str:
        return f"<op {self.name}>"


@dataclass(frozen=True)
class Builtin:
    name: str
    fn: Callable

    def __repr__(self) -> str:
        return f"<builtin {self.name}>"


_TYPE_NAMES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"), ((list, tuple), "list"),
               (BlockValue, "block"), (OpValue, "op"), (Tensor, "tensor"), (ShapeView, "shape"), (Builtin, "builtin"))


def type_name(v) -> str:
    """The language's name for a value's type (bool before int: True is an int in Python)."""
    for kind, name in _TYPE_NAMES:
        if isinstance(v, kind):
            return name
    return type(v).__name__


def a_type(v) -> str:
    """The type name with its article, for messages: 'an int', 'a list'."""
    name = type_name(v)
    return ("an " if name[0] in "aeiou" else "a ") + name

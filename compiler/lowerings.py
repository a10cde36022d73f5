"""A backend's lowering table: op name -> the function that lowers the op (compiler/torch.py's builders of a
ModuleSpec, compiler/onnx.py's emitters of ONNX nodes). One class, so that both register alike:

    LOWERINGS = Lowerings()
    lowering = LOWERINGS.register

    @lowering("add", "mul")
    def _merge(...): ...
"""
from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["Lowerings"]

F = TypeVar("F", bound=Callable)


class Lowerings(dict):
    """op name -> lowering function; `register(*ops)` is the decorator that fills it."""

    def register(self, *ops: str) -> Callable[[F], F]:
        """Register the decorated function as the lowering of each of `ops`."""
        def wrap(fn: F) -> F:
            for op in ops:
                self[op] = fn
            return fn
        return wrap

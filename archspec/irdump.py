"""IR dumps read back (`archspec analyze --format ir` writes them): the one way in for every reader.

A dump is data from anywhere. Before any pass sees it, it is checked as fully as the front end checks a
spec: the schema (pydantic), then the IR as a whole (archspec.ir.ir_problem: names, attributes, shapes
re-inferred, order, size limits). Spans are kept as text: nothing here or later opens the files they name."""
from __future__ import annotations

from pathlib import Path

from .errors import Diagnostic, SpecError
from .ir import Architecture, ir_problem
from .limits import DEFAULT_LIMITS, Limits
from .loader import read_text_bounded

__all__ = ["MAX_IR_JSON_BYTES", "ir_from_json", "ir_problem", "read_ir"]

MAX_IR_JSON_BYTES = 256 << 20  # an IR dump of a 200k-node network is ~100 MiB
_HINT = "dump one with 'archspec analyze SPEC --format ir'"


def read_ir(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Architecture:
    """An IR dump file, validated (SpecError naming the file and the problem otherwise)."""
    text = read_text_bounded(path, MAX_IR_JSON_BYTES, "IR dump")
    try:
        return ir_from_json(text, limits)
    except SpecError as exc:
        for d in exc.diagnostics:
            d.message = f"{path}: {d.message}"
        raise SpecError(exc.diagnostics) from None


def ir_from_json(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Architecture:
    """Load an IR dumped with `arch.model_dump_json()`, validated fully (see the module docstring)."""
    from pydantic import ValidationError
    try:
        arch = Architecture.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise SpecError(Diagnostic(f"not a valid archspec IR: {first.get('msg')}" + (f" at {where}" if where else "")
                                   + (f" ({exc.error_count()} problems)" if exc.error_count() > 1 else ""), None,
                                   _HINT)) from None
    problem = ir_problem(arch, limits)
    if problem:
        raise SpecError(Diagnostic(f"not a valid archspec IR: {problem}", None, _HINT))
    return arch

"""IR dumps read back (`archspec analyze --format ir` writes them): the one way in for every reader.

A dump is data from anywhere. Before any pass sees it, it is checked as fully as the front end checks a
spec: the schema, every name (the rules of archspec.names, since names reach module paths and generated
code), every op's attributes through the op table's Args, every shape re-inferred and compared, the graph's
order and the size limits. Spans are kept as text: nothing here or later opens the files they name."""
from __future__ import annotations

import math
import re
from pathlib import Path

from . import ops as op_table
from .errors import Diagnostic, SpecError
from .ir import Architecture, init_problem
from .limits import DEFAULT_LIMITS, Limits
from .loader import read_text_bounded
from .names import LABEL, input_problem, label_problem

MAX_IR_JSON_BYTES = 256 << 20  # an IR dump of a 200k-node network is ~100 MiB
_PART = re.compile(r"[A-Za-z0-9_]{1,200}")  # a block name
_TITLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")  # a name and a file name (export writes TITLE.onnx)
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


def _name_problem(name: str, what: str) -> str | None:
    parts = name.split(".")
    for part in parts:
        if len(part) > 200 or not LABEL.fullmatch(part):
            return f"{what} {name[:80]!r} is not a dotted path of labels (letters, digits, '_' and '-')"
        if not part.isdigit():
            problem = label_problem(part)
            if problem:
                return f"{what} {name[:80]!r}: {problem}"
    return None


def ir_problem(arch: Architecture, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """What is wrong with an Architecture that did not come from the front end, or None. Positions in the
    messages are node names: a dump's spans are not trusted to name readable files."""
    for text, what in ((arch.name, "the name"), (arch.variant or "x", "the variant")):
        if not _TITLE.fullmatch(text):
            return f"{what} {text[:80]!r} is not letters, digits, '_', '.', '-'"
    if not arch.inputs or not arch.nodes or not arch.outputs:
        return "it needs inputs, nodes and outputs"
    if len(arch.nodes) > limits.max_nodes or len(arch.scopes) > limits.max_nodes:
        return f"more than {limits.max_nodes:,} nodes or scopes (Limits.max_nodes)"
    shapes: dict[str, tuple[int, ...]] = {}
    for inp in arch.inputs:
        problem = input_problem(inp.name)
        if problem or inp.name in shapes:
            return problem or f"input '{inp.name}' declared twice"
        if not 1 <= len(inp.shape) <= 3 or any(d < 1 or d.bit_length() > 62 for d in inp.shape):
            return f"input '{inp.name}' has shape {list(inp.shape)[:8]}: 1 to 3 positive sizes"
        shapes[inp.name] = inp.shape
    for node in arch.nodes:
        where = f"node '{node.name[:80]}'"
        problem = _name_problem(node.name, "node name")
        if problem:
            return problem
        if node.name in shapes:
            return f"{where} is defined twice"
        op = op_table.REGISTRY.get(node.op)
        if op is None:
            return f"{where} uses unknown op {node.op[:40]!r}"
        missing = [x for x in node.inputs if x not in shapes]
        if missing:
            return f"{where} reads {missing[0][:80]!r} before it is defined (nodes are in topological order)"
        if (len(node.inputs) < 2) if op.arity is None else (len(node.inputs) != op.arity):
            return f"{where} ({node.op}) has {len(node.inputs)} inputs"
        ins = [shapes[i] for i in node.inputs]
        if any(len(s) not in op.ranks for s in ins):
            return f"{where}: {node.op} cannot take inputs of shape {[list(s) for s in ins]}"
        try:
            args = op.Args(**{k: v for k, v in node.attrs.items() if k in op.Args.fields})
            attrs = op.normalize(args, ins)
            if attrs != node.attrs:
                return f"{where}: attributes {_short(node.attrs)} are not what {node.op} makes of them ({_short(attrs)})"
            shape = tuple(op.shape(attrs, ins))
        except op_table.ArgError as exc:
            return f"{where}: {node.op}'s argument '{exc.arg}' is {exc.problem} {exc.text}".rstrip()
        except op_table.ShapeError as exc:
            return f"{where}: {exc}"
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError) as exc:
            return f"{where}: its attributes do not fit {node.op} ({type(exc).__name__}: {str(exc)[:80]})"
        if shape != node.shape:
            return f"{where} has shape {list(node.shape)[:8]}, but {node.op} gives {list(shape)}"
        if not shape or any(d < 1 for d in shape):
            return f"{where} has an empty shape {list(shape)}"
        shapes[node.name] = shape
    outputs = set()
    for out in arch.outputs:
        if out.node not in shapes or out.name in outputs or input_problem(out.name):
            return f"output {out.name[:80]!r} (node {out.node[:80]!r}) names no node, twice, or a reserved name"
        outputs.add(out.name)
    for scope in arch.scopes:
        problem = _name_problem(scope.name, "scope name")
        if problem or (scope.block is not None and not _PART.fullmatch(scope.block)):
            return problem or f"scope '{scope.name}' names block {scope.block[:80]!r}"
    for budget in arch.budgets:
        if not math.isfinite(budget.limit) or (budget.scope and _name_problem(budget.scope, "budget scope")):
            return f"budget {budget.metric} {budget.op} {budget.limit} on {budget.scope[:80]!r} is not valid"
    for op_name, scheme in arch.init.items():
        if op_name not in op_table.REGISTRY or init_problem(op_name, scheme):
            return f"init {op_name[:40]!r} = {scheme[:40]!r} names an unknown op or scheme"
    from .lower import size_problems
    problems = size_problems(arch, limits)
    return problems[0] if problems else None


def _short(attrs: dict) -> str:
    text = repr(attrs)
    return text if len(text) <= 120 else text[:117] + "..."

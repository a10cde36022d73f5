"""The whole spec: the variant and overrides chosen, parameters typed, inputs, budgets and init schemes
declared, then the network body run by the Lowerer (statements, merges and layers together)."""
from __future__ import annotations

from typing import Any

from .. import ops as op_table
from ..errors import Diagnostic, Pos, did_you_mean
from ..expressions import EvalError
from ..ir import INIT_SCHEMES, Architecture, Input, Output, init_problem
from ..limits import Limits
from ..modules import SpecModule
from ..names import input_problem
from ..parser import Token, pos_of
from ..values import Tensor, type_name
from .checks import check_limits, check_orders
from .frames import Abort, Cursor, Frame, Globals, TooDeep
from .layers import Layers
from .merges import Merges
from .statements import Statements


class Lowerer(Statements, Merges, Layers):
    """One lowering of one module: the statements, merges and layer building together."""


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
    except Abort:
        return None
    except (TooDeep, RecursionError) as exc:
        errors.append(Diagnostic("the spec nests blocks, statements or values too deeply to evaluate",
                                 exc.pos if isinstance(exc, TooDeep) else module.network_pos,
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


def _params(low: Lowerer, module: SpecModule, overrides) -> dict[str, Any]:
    """Every parameter's value, as the IR holds it; an override or variant value is checked against the
    type of the parameter's default."""
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
    return params


def _lower_network(low: Lowerer, module: SpecModule, variant, overrides, input_size=None) -> Architecture | None:
    errors = low.errors
    params = _params(low, module, overrides)
    if module.network is None:
        errors.append(Diagnostic("the spec has no network", Pos(module.file, 1, 1),
                                 "add 'network { ... }' with the layers"))
        return None
    if not module.inputs:
        errors.append(Diagnostic("the spec declares no input", module.network_pos,
                                 "add 'input image: [3, 224, 224]' before the network"))
        return None
    inputs = _inputs(low, module, input_size)
    if errors:
        return None
    first = Tensor(inputs[0].name, inputs[0].shape, pos_of(module.inputs[0][0], module.file))
    frame = Frame(low, module, low.globals, first)
    for inp, (tok, _) in zip(inputs[1:], module.inputs[1:]):
        frame.set(inp.name, Tensor(inp.name, inp.shape, pos_of(tok, module.file)))
    for b in module.budgets:
        try:
            low.budgets.append(low.budget(b, frame, ""))
        except EvalError as exc:
            low.error(str(exc), exc.where, exc.hint)
    init = _inits(low, module, frame)
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
    check_orders(low, arch)
    check_limits(low, arch)
    return None if errors else arch


def _inputs(low: Lowerer, module: SpecModule, input_size) -> list[Input]:
    """The declared inputs and their shapes (the first one's spatial size replaced by --input)."""
    inputs: list[Input] = []
    frame = Frame(low, module, low.globals, None)
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
    return inputs


def _inits(low: Lowerer, module: SpecModule, frame: Frame) -> dict[str, str]:
    """The `init` declarations: op name -> scheme, checked against what the op table knows."""
    init: dict[str, str] = {}
    for item in module.inits:
        tok, expr = item.op, item.scheme
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
    return init

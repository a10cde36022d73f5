"""Expression evaluation: a small, closed, Python-like arithmetic. No attribute of a Python object,
no import, no I/O is reachable from a spec: names resolve only to spec values and the builtins below."""
from __future__ import annotations

import math
import operator


from .errors import Pos
from .limits import Limits
from .parser import Token, pos_of
from .syntax import Kwarg, Slice
from .values import Builtin, ShapeView, Tensor, a_type, type_name


class EvalError(Exception):
    """An error at a spec position (the tree or token it came from); the lowering adds the file."""

    def __init__(self, message: str, where=None, hint: str | None = None):
        super().__init__(message)
        self.where = where
        self.hint = hint


class WorkLimit(EvalError):
    """A limit on the total work of a load (steps, items built): reported once, then loading stops."""


_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9}
_SEQ_HINT = "build shorter lists, or raise Limits.max_sequence"


def parse_number(text: str):
    text = text.replace("_", "")
    mult = 1
    if text[-1] in _SUFFIX:
        mult, text = _SUFFIX[text[-1]], text[:-1]
    if any(c in text for c in ".eE"):
        v = float(text) * mult
        return int(v) if mult != 1 and v.is_integer() else v
    return int(text) * mult


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's rule: the nearest multiple of divisor, never below min_value nor 90% of v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} expects a number, got {type_name(v)}")
    return v


# round()'s digits: past these a float or a 256-bit integer is unchanged, and round(5, -10**9) would
# compute 10**(10**9) before answering.
MAX_ROUND_DIGITS = 400


def _round(v, ndigits=None):
    _num(v, "round()")
    if ndigits is None:
        return round(v)
    if isinstance(ndigits, bool) or not isinstance(ndigits, int):
        raise TypeError(f"the digits must be an integer, got {type_name(ndigits)}")
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise ValueError(f"digits {ndigits} out of range (at most {MAX_ROUND_DIGITS} either way)")
    return round(v, ndigits)


def _int(v):
    if isinstance(v, str):
        raise TypeError("int() of a string is not supported")
    return int(_num(v, "int()"))


class ExprEvaluator:
    """Evaluates expression trees against a name lookup. One method per grammar rule."""

    def __init__(self, file: str, limits: Limits):
        self.file = file
        self.limits = limits
        self.steps = 0   # statements run + comprehension items, against limits.max_steps
        self.built = 0   # items of the lists and strings built, against limits.max_built_items
        self._rules = {name[2:]: getattr(self, name) for name in dir(self) if name.startswith("e_")}
        self.builtins = {
            "min": Builtin("min", self._minmax(min)), "max": Builtin("max", self._minmax(max)),
            "abs": Builtin("abs", lambda v: abs(_num(v, "abs()"))),
            "ceil": Builtin("ceil", lambda v: math.ceil(_num(v, "ceil()"))),
            "floor": Builtin("floor", lambda v: math.floor(_num(v, "floor()"))),
            "round": Builtin("round", _round), "int": Builtin("int", _int),
            "float": Builtin("float", lambda v: float(_num(v, "float()"))),
            "len": Builtin("len", self._len), "sum": Builtin("sum", self._sum),
            "range": Builtin("range", self._range), "enumerate": Builtin("enumerate", self._enumerate),
            "zip": Builtin("zip", self._zip), "make_divisible": Builtin("make_divisible", self._make_divisible),
        }

    # ---- entry point ----
    def eval(self, tree, scope, depth: int = 0):
        if depth > self.limits.max_expr_depth:
            raise EvalError(f"expression nested deeper than {self.limits.max_expr_depth} levels", tree,
                            "split it into named parts")
        if isinstance(tree, Token):  # NAME tokens only reach here through `var`
            raise EvalError(f"unexpected {tree.value!r}", tree)
        method = self._rules.get(tree.rule)
        if method is None:
            raise EvalError(f"'{tree.rule}' is not an expression", tree)
        return method(tree, scope, depth + 1)

    def pos(self, item) -> Pos:
        return pos_of(item, self.file)

    # ---- atoms ----
    def e_number(self, t, scope, d):
        v = parse_number(t.token.value)
        if isinstance(v, float) and not math.isfinite(v):
            raise EvalError("number out of range", t)
        return self._check_int(v, t)

    def e_string(self, t, scope, d):
        return t.token.value[1:-1]

    def e_true(self, t, scope, d):
        return True

    def e_false(self, t, scope, d):
        return False

    def e_var(self, t, scope, d):
        return scope.lookup(t.name)

    def e_input_ref(self, t, scope, d):
        return scope.input_view(t)

    def e_list(self, t, scope, d):
        return [self.eval(c, scope, d) for c in t.items]

    def e_tuple(self, t, scope, d):
        return tuple(self.eval(c, scope, d) for c in t.items)

    def e_listcomp(self, t, scope, d):
        expr, targets, iterable, cond = t.expr, t.targets, t.iterable, t.cond
        out = []
        for item in self._iterate(self.eval(iterable, scope, d), iterable):
            self.step(t)
            inner = scope.child()
            bind_targets(targets, item, inner)
            if cond is None or self._truth(self.eval(cond, inner, d), cond):
                out.append(self.eval(expr, inner, d))
                if len(out) > self.limits.max_sequence:
                    raise EvalError(f"list longer than {self.limits.max_sequence} items", t, _SEQ_HINT)
        return out

    # ---- postfix ----
    def e_attr(self, t, scope, d):
        base = self.eval(t.base, scope, d)
        name = t.name.value
        if isinstance(base, Tensor):  # a saved tensor reads like `in`: x.channels
            if base.shape is None:
                raise Poisoned()
            base = ShapeView(base.shape)
        if isinstance(base, ShapeView):
            try:
                return base.attr(name)
            except KeyError:
                from .errors import did_you_mean
                raise EvalError(f"a tensor of shape {list(base.shape)} has no '{name}'", t.name,
                                did_you_mean(name, base.attr_names()) or "use channels, height, width or shape") from None
        raise EvalError(f"{a_type(base)} has no attribute '{name}'", t.name,
                        "only the incoming tensor has attributes: in.channels, in.height, in.width")

    def e_index(self, t, scope, d):
        base = self.eval(t.base, scope, d)
        sub = t.sub
        if isinstance(sub, Slice):
            lo, hi = (None if c is None else self.eval(c, scope, d) for c in (sub.lo, sub.hi))
            for v in (lo, hi):
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise EvalError(f"slice bounds must be integers, got {type_name(v)}", sub)
            if not isinstance(base, (list, tuple, str)):
                raise EvalError(f"cannot slice {a_type(base)}", t)
            return self._check_len(base[lo:hi], t)
        idx = self.eval(sub, scope, d)
        if not isinstance(base, (list, tuple, str)):
            raise EvalError(f"cannot index {a_type(base)}", t)
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise EvalError(f"an index must be an integer, got {type_name(idx)}", sub)
        if not -len(base) <= idx < len(base):
            raise EvalError(f"index {idx} is out of range for a list of {len(base)} items", sub)
        return base[idx]

    def e_call(self, t, scope, d):
        fn = self.eval(t.fn, scope, d)
        args, kwargs = self.eval_args(t.args, scope, d)
        if not isinstance(fn, Builtin):
            raise EvalError(f"{a_type(fn)} cannot be called inside an expression", t,
                            "layers and blocks are statements of their own line")
        try:
            return self._check_int(fn.fn(*args, **kwargs), t)
        except EvalError as exc:
            if exc.where is None:
                exc.where = t
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise EvalError(f"{fn.name}(): {exc}", t) from None

    def eval_args(self, args_tree, scope, d=0):
        args, kwargs = [], {}
        if args_tree is None:
            return args, kwargs
        for a in args_tree.items:
            if isinstance(a, Kwarg):
                key = a.name.value
                if key in kwargs:
                    raise EvalError(f"argument '{key}' given twice", a.name)
                kwargs[key] = self.eval(a.value, scope, d)
            else:
                if kwargs:
                    raise EvalError("a positional argument follows a keyword argument", a)
                args.append(self.eval(a, scope, d))
        return args, kwargs

    # ---- operators ----
    def _binary(self, t, scope, d, fn, sym):
        a = self.eval(t.left, scope, d)
        b = self.eval(t.right, scope, d)
        if sym == "+" and isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return self._check_len(list(a) + list(b), t)
        if sym == "*" and (isinstance(a, (list, str)) or isinstance(b, (list, str))):
            seq, n = (a, b) if isinstance(a, (list, str)) else (b, a)
            if isinstance(n, bool) or not isinstance(n, int):
                raise EvalError(f"cannot multiply {a_type(seq)} by {a_type(n)}", t)
            if len(seq) * max(n, 0) > self.limits.max_sequence:
                raise EvalError(f"list longer than {self.limits.max_sequence} items", t, _SEQ_HINT)
            self.count_built(len(seq) * max(n, 0), t)
            return seq * n
        if sym == "+" and isinstance(a, str) and isinstance(b, str):
            return self._check_len(a + b, t)
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise EvalError(f"unsupported operand for '{sym}': {type_name(a)} and {type_name(b)}", t)
        if sym == "**":
            self._check_pow(a, b, t)
        try:
            out = fn(a, b)
        except ZeroDivisionError:
            raise EvalError("division by zero", t) from None
        except OverflowError:
            raise EvalError("number out of range", t) from None
        if isinstance(out, complex):
            raise EvalError("the result is not a real number", t)
        return self._check_int(out, t)

    def e_add(self, t, s, d):
        return self._binary(t, s, d, operator.add, "+")

    def e_sub(self, t, s, d):
        return self._binary(t, s, d, operator.sub, "-")

    def e_mul(self, t, s, d):
        return self._binary(t, s, d, operator.mul, "*")

    def e_truediv(self, t, s, d):
        return self._binary(t, s, d, operator.truediv, "/")

    def e_floordiv(self, t, s, d):
        return self._binary(t, s, d, operator.floordiv, "//")

    def e_mod(self, t, s, d):
        return self._binary(t, s, d, operator.mod, "%")

    def e_pow(self, t, s, d):
        return self._binary(t, s, d, operator.pow, "**")

    def e_neg(self, t, s, d):
        v = self.eval(t.operand, s, d)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EvalError(f"cannot negate {a_type(v)}", t)
        return -v

    def e_pos(self, t, s, d):
        v = self.eval(t.operand, s, d)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EvalError(f"unary '+' needs a number, got {type_name(v)}", t)
        return v

    def e_compare(self, t, s, d):
        a = self.eval(t.left, s, d)
        b = self.eval(t.right, s, d)
        op = t.op.value
        if op in ("==", "!="):
            eq = a == b and type_name(a) == type_name(b) or (
                isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and not isinstance(b, bool) and a == b)
            return eq if op == "==" else not eq
        ok = (all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
              or (isinstance(a, str) and isinstance(b, str)))
        if not ok:
            raise EvalError(f"cannot compare {type_name(a)} and {type_name(b)} with '{op}'", t)
        return {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}[op](a, b)

    def e_not_(self, t, s, d):
        return not self._truth(self.eval(t.operand, s, d), t)

    def e_and_(self, t, s, d):
        return self._truth(self.eval(t.left, s, d), t) and self._truth(self.eval(t.right, s, d), t)

    def e_or_(self, t, s, d):
        return self._truth(self.eval(t.left, s, d), t) or self._truth(self.eval(t.right, s, d), t)

    def e_ifexp(self, t, s, d):
        then, cond, other = t.then, t.cond, t.other
        return self.eval(then, s, d) if self._truth(self.eval(cond, s, d), cond) else self.eval(other, s, d)

    # ---- helpers ----
    def _truth(self, v, where) -> bool:
        if isinstance(v, (bool, int, float, str, list, tuple)):
            return bool(v)
        raise EvalError(f"{a_type(v)} is neither true nor false", where)

    def _check_int(self, v, where):
        if isinstance(v, float) and not math.isfinite(v):  # 1e308 * 10, 1e308 // 1e-308: no inf/NaN values
            raise EvalError("number out of range", where, "a spec computes finite numbers")
        if (isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > self.limits.max_int_bits
                and abs(v) > 1 << self.limits.max_int_bits):
            raise EvalError(f"integer larger than 2**{self.limits.max_int_bits}", where,
                            "sizes this large cannot describe a network")
        if isinstance(v, (list, tuple, str)):
            self._check_len(v, where)
        return v

    def _check_len(self, v, where):
        if len(v) > self.limits.max_sequence:
            raise EvalError(f"list longer than {self.limits.max_sequence} items", where, _SEQ_HINT)
        self.count_built(len(v), where)
        return v

    def count_built(self, n: int, where) -> None:
        # Lists are built from other lists in loops and comprehensions: bound their sum, not only each one.
        self.built += n
        if self.built > self.limits.max_built_items:
            raise WorkLimit(f"the spec builds more than {self.limits.max_built_items:,} list items in all", where,
                            "build smaller lists, or raise Limits.max_built_items")

    def step(self, where) -> None:
        """Count one statement or comprehension item: loops, however nested, end in bounded time."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise WorkLimit(f"the spec takes more than {self.limits.max_steps:,} evaluation steps", where,
                            "lower the repeat counts and loop lengths, or raise Limits.max_steps")

    def _check_pow(self, a, b, where):
        # Decide from the sizes before computing: 2 ** 10 ** 9 must fail at once, not hang.
        if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
            if b * math.log2(abs(a)) > self.limits.max_int_bits:
                raise EvalError(f"integer larger than 2**{self.limits.max_int_bits}", where,
                                "sizes this large cannot describe a network")
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(b) > 10**6 and abs(a) != 1:
            raise EvalError("exponent out of range", where)

    def _iterate(self, v, where):
        if isinstance(v, (list, tuple, str)):
            return v
        raise EvalError(f"cannot loop over {a_type(v)}", where, "loop over a list, range(n) or enumerate(list)")

    # builtins that need the limits
    def _minmax(self, fn):
        def call(*args):
            items = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
            if not items:
                raise ValueError("needs at least one value")
            for v in items:
                _num(v, "min()/max()")
            return fn(items)
        return call

    def _len(self, v):
        if not isinstance(v, (list, tuple, str)):
            raise TypeError(f"len() of {a_type(v)}")
        return len(v)

    def _sum(self, v):
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"sum() of {a_type(v)}")
        return sum(_num(x, "sum()") for x in v)

    def _range(self, *args):
        for v in args:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"range() expects integers, got {type_name(v)}")
        r = range(*args)
        if len(r) > self.limits.max_sequence:
            raise EvalError(f"range(): range of {len(r)} items is longer than the limit of {self.limits.max_sequence}",
                            None, _SEQ_HINT)
        return list(r)

    def _enumerate(self, v, start=0):
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"enumerate() of {a_type(v)}")
        if isinstance(start, bool) or not isinstance(start, int) or abs(start) > 1 << self.limits.max_int_bits:
            raise TypeError("enumerate()'s start must be an integer within the integer limit")
        self.count_built(len(v), None)
        return [(i + start, x) for i, x in enumerate(v)]

    def _zip(self, *seqs):
        if not all(isinstance(s, (list, tuple)) for s in seqs):
            raise TypeError("zip() expects lists")
        self.count_built(min((len(s) for s in seqs), default=0) * max(len(seqs), 1), None)
        return [tuple(x) for x in zip(*seqs)]

    def _make_divisible(self, v, divisor=8, min_value=None):
        _num(v, "make_divisible()")
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError("the divisor must be a positive integer")
        if min_value is not None:
            _num(min_value, "make_divisible()")
        return make_divisible(v, divisor, min_value)


class Poisoned(Exception):
    """Raised when an expression reads the shape of a tensor whose shape is unknown after an earlier error."""


def bind_targets(targets_tree, value, scope):
    """Bind loop variables: names, or nested (a, b) groups unpacked as in Python."""
    names = targets_tree.items
    if len(names) == 1:
        if isinstance(names[0], Token):
            scope.set(names[0].value, value)
        else:  # for (a, b) in pairs
            bind_targets(names[0], value, scope)
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        n = len(value) if isinstance(value, (list, tuple)) else 1
        raise EvalError(f"cannot unpack {n} value{'s' if n != 1 else ''} into {len(names)} names", targets_tree,
                        "each row of the table must have one value per loop variable")
    for tok, v in zip(names, value):
        if isinstance(tok, Token):
            scope.set(tok.value, v)
        else:
            bind_targets(tok, v, scope)


def argument_tree(args_tree, arg: int | str):
    """The parse tree of a call's argument: the i-th positional one, or the keyword one named `arg`."""
    if args_tree is None:
        return None
    positional = [a for a in args_tree.items if not isinstance(a, Kwarg)]
    if isinstance(arg, int):
        return positional[arg] if arg < len(positional) else None
    return next((a for a in args_tree.items if isinstance(a, Kwarg) and a.name.value == arg), None)

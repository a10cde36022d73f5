"""Fuzz the front end: grammar-aware random specs and mutations of the zoo's specs.

Every case must end in a valid Architecture (whose IR survives a JSON round trip) or an
archspec.SpecError whose diagnostics all point inside the spec, within a time bound. Anything else
(a traceback, a hang, a position outside the text) is a failure: it is minimized and written to
tests/fixtures/fuzz_regressions/ (NAME.arch + NAME.json), which tests/test_fuzz.py replays.

    .venv/bin/python benchmarks/fuzz.py                  # 20,000 cases, seed 1
    .venv/bin/python benchmarks/fuzz.py --seconds 600 --seed 7
    .venv/bin/python benchmarks/fuzz.py -n 5000 --mode mutate --no-save

The engine (generate, mutate, run_case) is shared with tests/test_fuzz.py, which runs a fixed-seed
campaign in CI; here it runs longer and prints cases/second.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import archspec  # noqa: E402
from archspec import Architecture, Limits, SpecError  # noqa: E402
from archspec import ops as op_table  # noqa: E402
from archspec.resources import zoo_dir  # noqa: E402

REGRESSIONS = REPO / "tests" / "fixtures" / "fuzz_regressions"
# Tighter than the defaults so that a mutated repeat count cannot make one case take seconds; the limits
# themselves are tested in tests/test_limits.py.
FUZZ_LIMITS = Limits(max_nodes=5_000, max_steps=200_000, max_built_items=2_000_000, max_sequence=200_000)
TIME_BOUND = 5.0  # CPU seconds a case may take (cases take ~10 ms)
WALL_FACTOR = 10  # and wall seconds, in time bounds: a case blocked (not computing) is a hang too


# ----------------------------------------------------------------------------- choices

class Chooser:
    """Random choices from a random.Random, or from hypothesis (data.draw), so one generator serves both."""

    def __init__(self, rng: random.Random | None = None, data=None):
        self.rng, self.data = rng, data
        if data is not None:
            from hypothesis import strategies as st
            self._st = st

    def int(self, lo: int, hi: int) -> int:
        if self.data is not None:
            return self.data.draw(self._st.integers(lo, hi))
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, percent: int) -> bool:
        return self.int(0, 99) < percent


# ----------------------------------------------------------------------------- grammar-aware generation

OPS = sorted(op_table.REGISTRY)
ACTS = ["relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "identity"]
BUILTINS = ["min", "max", "abs", "ceil", "floor", "round", "int", "float", "len", "sum", "make_divisible"]
METRICS = ["params", "macs", "flops", "memory", "buffers", "parms"]
SCHEMES = ["default", "kaiming_normal_fan_out", "xavier_uniform", "normal_0.01", "ones_zeros", "magic"]


@dataclass
class Scope:
    names: list[str]            # numeric names visible (params, block args, loop variables, locals)
    lists: list[str]            # list-valued names
    blocks: list[str]           # blocks callable here
    saved: list[str]            # saved tensors
    depth: int = 0
    tensor: bool = True         # inside a network or block: `in` exists


class SpecGenerator:
    """Plausible specs: mostly well-formed, often valid, with the language's every construct."""

    def __init__(self, c: Chooser):
        self.c = c
        self.label_n = 0

    def number(self) -> str:
        c = self.c
        return c.choice(["1", "2", "3", "4", "8", "16", "32", "64", "0", "-1", "0.5", "1.5", "2.0", "1K", "1_024",
                         "3", "7", "1e-3", str(c.int(1, 300)), "10**9", "2 ** 40", "0.25"])

    def expr(self, s: Scope, depth: int = 0) -> str:
        c = self.c
        k = c.int(0, 12 if depth < 3 else 3)
        if k <= 2:
            return self.number()
        if k == 3:
            return c.choice(s.names) if s.names else self.number()
        if k == 4 and s.tensor:
            return c.choice(["in.channels", "in.height", "in.width", "in.shape[0]", "in.channels", "in.features"])
        if k == 5:
            op = c.choice(["+", "-", "*", "//", "/", "%", "**"])
            return f"{self.expr(s, depth + 1)} {op} {self.expr(s, depth + 1)}"
        if k == 6:
            return f"({self.expr(s, depth + 1)})"
        if k == 7:
            return f"{self.expr(s, depth + 1)} if {self.cond(s, depth + 1)} else {self.expr(s, depth + 1)}"
        if k == 8:
            fn = c.choice(BUILTINS)
            n = 2 if fn in ("min", "max", "make_divisible") else 1
            if fn in ("len", "sum"):
                return f"{fn}({self.list_expr(s, depth + 1)})"
            return f"{fn}({', '.join(self.expr(s, depth + 1) for _ in range(n))})"
        if k == 9:
            return f"{self.list_expr(s, depth + 1)}[{c.int(-2, 3)}]"
        if k == 10:
            return c.choice(['"a"', "true", "false", "relu", s.blocks[0] if s.blocks else "conv"])
        if k == 11:
            return f"-{self.expr(s, depth + 1)}"
        return c.choice([f"{self.list_expr(s, depth + 1)}[{c.int(-1, 2)}:]", f"({self.expr(s, depth + 1)}, {self.number()})",
                         f"in.shape[{c.int(0, 2)}:]", '"x" + "y"', f"len({self.list_expr(s, depth + 1)})",
                         f"sum([a * b for a, b in zip({self.list_expr(s, depth + 1)}, {self.list_expr(s, depth + 1)})])",
                         f"[i for i, v in enumerate({self.list_expr(s, depth + 1)}) if v > 1]",
                         self.number()])

    def cond(self, s: Scope, depth: int = 0) -> str:
        c = self.c
        k = c.int(0, 4)
        if k == 0:
            return c.choice(["true", "false"])
        if k == 1:
            return f"{self.expr(s, depth + 1)} {c.choice(['==', '!=', '<', '>', '<=', '>='])} {self.expr(s, depth + 1)}"
        if k == 2:
            return f"not {self.cond(s, depth + 1)}"
        if k == 3:
            return f"{self.cond(s, depth + 1)} {c.choice(['and', 'or'])} {self.cond(s, depth + 1)}"
        return self.expr(s, depth + 1)

    def list_expr(self, s: Scope, depth: int = 0) -> str:
        c = self.c
        k = c.int(0, 5)
        if k == 0 and s.lists:
            return c.choice(s.lists)
        if k == 1:
            return f"range({c.int(0, 6)})"
        if k == 2:
            return f"[{self.expr(s, depth + 1)} for q in range({c.int(0, 4)})]"
        if k == 3:
            return f"[{', '.join(self.expr(s, depth + 1) for _ in range(c.int(0, 4)))}]"
        if k == 4:
            return f"[{c.int(1, 4)}] * {c.int(0, 4)}"
        return f"[{', '.join(str(c.int(1, 64)) for _ in range(c.int(1, 4)))}]"

    def op_call(self, s: Scope) -> str:
        c = self.c
        op = c.choice(OPS + ["conv"] * 6 + ["bn", "relu", "maxpool", "linear", "flatten", "gap"] * 2)
        cls = op_table.REGISTRY[op]
        if cls.arity is None:  # merges take saved tensors
            names = [c.choice(s.saved) for _ in range(c.int(1, 3))] if s.saved else ["x"]
            return f"{op}({', '.join(names)})"
        args, kwargs, _ = cls.example
        parts = []
        if op == "conv" and c.chance(70):
            parts = [c.choice(["8", "16", "in.channels", "in.channels * 2", self.expr(s, 2)]),
                     c.choice(["1", "3", "3", "5", "[3, 1]"])]
            if c.chance(50):
                parts.append(f"pad = {c.choice(['1', '0', '2', '(3 - 1) // 2'])}")
            if c.chance(30):
                parts.append(f"stride = {c.choice(['1', '2', '2'])}")
            if c.chance(15):
                parts.append(f"groups = {c.choice(['in.channels', '2', '4'])}")
            if c.chance(20):
                parts.append(f"bias = {c.choice(['false', 'true', '0'])}")
        else:
            for a in args:
                parts.append(self.expr(s, 2) if c.chance(20) else _literal(a))
            for k, v in kwargs.items():
                if c.chance(70):
                    parts.append(f"{k} = {self.expr(s, 2) if c.chance(20) else _literal(v)}")
            if c.chance(5):
                parts.append(f"{c.choice(['strde', 'kernal', 'p', 'dim'])} = 1")
        return f"{op}({', '.join(parts)})"

    def block_call(self, s: Scope) -> str:
        c = self.c
        b = c.choice(s.blocks)
        n = c.int(0, 3)
        args = [self.expr(s, 2) if c.chance(15) else c.choice(['8', '16', '1', '2']) for _ in range(n)]
        if args and c.chance(30):
            args[-1] = f"a{c.int(0, 3)} = {args[-1]}"
        return f"{b}({', '.join(args)})"

    def stmt(self, s: Scope) -> str:
        c = self.c
        deep = s.depth >= 3
        k = c.int(0, 9 if deep else 25)
        if k <= 3:
            return self.op_call(s)
        if k == 4:
            return c.choice(ACTS) + "()"
        if k == 5 and s.blocks:
            return self.block_call(s)
        if k == 6:
            name = c.choice(["k", "w", "n", "hidden"])
            if c.chance(20):
                s.lists.append(name)
                return f"{name} = {self.list_expr(s)}"
            s.names.append(name)
            return f"{name} = {self.expr(s)}"
        if k == 7:
            name = c.choice(["s0", "s1", "skip"])
            s.saved.append(name)
            return f"save {name}"
        if k == 8 and s.saved:
            return f"output {', '.join(c.choice(s.saved) for _ in range(c.int(1, 2)))}"
        if k == 9:
            self.label_n += 1
            label = c.choice([f"l{self.label_n}", "features", "fc", f"layer{{{c.choice(s.names or ['1'])}}}"])
            return f"{label}: {self.stmt(s)}"
        inner = Scope(s.names, s.lists, s.blocks, s.saved, s.depth + 1)
        if k == 10:
            var = c.choice(["i", "j"])
            inner.names = s.names + [var]
            return f"repeat {c.choice(['1', '2', '3', '0', 'n' if 'n' in s.names else '2'])} as {var} {self.body(inner)}"
        if k == 11:
            return f"for t, ch in [[1, 8], [2, 16]] {self.body(Scope(s.names + ['t', 'ch'], s.lists, s.blocks, s.saved, s.depth + 1))}"
        if k == 12:
            other = f" else {self.body(inner)}" if c.chance(50) else ""
            return f"if {self.cond(s)} {self.body(inner)}{other}"
        if k == 13:
            cond = f" if {self.cond(s)}" if c.chance(30) else ""
            sc = f" shortcut {self.body(inner)}" if c.chance(40) else ""
            return f"residual{cond} {self.body(inner)}{sc}"
        if k == 14:
            return f"dense {self.body(inner)}"
        if k == 15:
            return f"gate {{ gap();  conv({c.choice(['4', 'in.channels // 4'])}, 1);  relu();  " \
                   f"conv({c.choice(['in.channels', '8'])}, 1);  sigmoid() }}"
        if k == 16:
            n = c.int(1, 3)
            branches = "\n".join(f"b{i}: {self.body(inner)}" for i in range(n))
            return f"branch {c.choice(['concat', 'add', 'concat', 'sum'])} {{\n{branches}\n}}"
        if k == 17:
            return self.body(inner)
        if k == 18 and s.saved:
            return f"from {c.choice(s.saved)} {self.body(inner)}"
        if k == 19:
            return f"budget {c.choice(METRICS)} {c.choice(['<=', '<', '>='])} {c.choice(['1M', '100', '2G', '1e9'])}"
        if k == 20:  # ops and blocks are values
            v = c.choice(ACTS + s.blocks + ["conv", "k"])
            s.names.append("act")
            return f"act = {v}; act({'8, 1' if v == 'conv' or v in s.blocks else ''})"
        if k == 21:
            a, b = (c.choice(s.saved + ["x", "y"]) for _ in range(2))
            return f"{c.choice(['add', 'cat', 'mul'])}({a}, {b}{', dim = ' + str(c.int(-1, 3)) if c.chance(20) else ''})"
        if k == 22:
            return f"for i, w in enumerate([8, 16]) {self.body(Scope(s.names + ['i', 'w'], s.lists, s.blocks, s.saved, s.depth + 1))}"
        if k == 23:
            return self.tensor_stmt(s)
        if k == 24:  # registration order: labels of the scope (l<n> are the generated ones), or names that are not
            names = [c.choice([f"l{c.int(1, max(1, self.label_n))}", "features", "fc", "attn"]) for _ in range(c.int(1, 3))]
            return f"order {', '.join(names)}"
        if k == 25:
            return cnn_stmt(self, s)
        return self.op_call(s)

    def tensor_stmt(self, s: Scope) -> str:
        """Tensor and token ops (issue 13): layouts with valid and hostile axes and sizes, learnable tensors
        with and without labels, attention with heads that do or do not divide the width."""
        c = self.c
        axis = lambda: c.choice(["0", "1", "2", "-1", "-2", "3", str(c.int(-4, 4))])  # noqa: E731
        k = c.int(0, 11)
        if k == 0:
            return c.choice(["flatten(1);  transpose(0, 1)", "flatten(1)", f"flatten({axis()}, {axis()})"])
        if k == 1:
            dims = c.choice(["[1, 2, 0]", "[2, 0, 1]", "[1, 0]", "[0, 1, 1]", "[0]", f"[{axis()}, {axis()}, {axis()}]"])
            return f"permute({dims})"
        if k == 2:
            return f"transpose({axis()}, {axis()})"
        if k == 3:
            return c.choice(["reshape([-1])", "reshape([in.channels, -1])", "reshape([-1, -1])",
                             "reshape([10 ** 6, 10 ** 6])", f"reshape([{c.int(1, 8)}, -1, {c.int(1, 4)}])",
                             "unflatten(0, [2, -1])", f"unflatten({axis()}, [{c.int(-1, 4)}, -1])"])
        if k == 4:
            return c.choice([f"select({c.int(-2, 3)}, dim = {axis()})", f"slice({c.int(-3, 3)}, {c.int(-2, 9)}, "
                             f"dim = {axis()}, step = {c.int(0, 3)})"])
        if k == 5:
            return c.choice([f"roll([{c.int(-4, 4)}], dims = [{axis()}])", "roll([1, -1], dims = [1, 1])",
                             f"pad([{c.int(0, 2)}, {c.int(-1, 2)}])", "pad([0, 0, 0, 1, 0, 1, 0, 0])"])
        if k == 6:
            return c.choice(["layernorm()", "layernorm(eps = 1e-6, dim = 0)", f"layernorm(dim = {axis()})",
                             f"groupnorm({c.choice(['1', '2', '3', 'in.channels'])})", "linear(8)"])
        if k == 7:
            self.label_n += 1
            shape = c.choice(["[1, 1, 1]", "in.shape", "[in.channels, 1, 1]", "[0]", "[10 ** 9, 10 ** 9]", "[8]"])
            name = c.choice(["t", "token", "scale"])
            s.saved.append(name)
            init = c.choice(["", ", init = \"normal\"", ", init = \"constant\", value = 1e-6", ", init = \"x\"",
                             ", batch = true"])
            return (f"{name}: learnable({shape}{init})" if c.chance(85) else f"learnable({shape})") + \
                f";  {c.choice(['mul', 'add', 'cat'])}({name}, {c.choice(s.saved)})"
        if k == 8:
            return f"multihead_attention({c.choice(['1', '2', '3', '4', 'in.shape[-1]', '0'])})"
        if k == 9:
            q, kk, v = (c.choice(s.saved + ["x"]) for _ in range(3))
            return f"sdpa({q}, {kk}, {v}, heads = {c.choice(['1', '2', '3'])})"
        if k == 10:
            a, b = (c.choice(s.saved + ["x"]) for _ in range(2))
            return f"matmul({a}, {b})"
        return "flatten(1);  transpose(0, 1);  save tok;  multihead_attention(2);  layernorm()"

    def body(self, s: Scope) -> str:
        n = self.c.int(0 if s.depth else 1, 4 if s.depth < 2 else 2)
        stmts = [self.stmt(s) for _ in range(n)]
        sep = self.c.choice(["\n", "; ", "\n"])
        if self.c.chance(50) or s.depth == 0:
            ind = "    " * (s.depth + 1)
            return "{\n" + "".join(f"{ind}{t}\n" for t in stmts) + "    " * s.depth + "}"
        return "{ " + sep.join(stmts) + " }"

    def spec(self) -> str:
        c = self.c
        lines = [f"arch gen{c.int(0, 9)}"]
        params = []
        for i in range(c.int(0, 3)):
            value = self.expr(Scope(params, [], [], [], tensor=False)) if c.chance(25) else str(c.int(1, 64))
            params.append(f"p{i}")
            lines.append(f"param p{i} = {value}")
        shape = c.choice(["[3, 32, 32]", "[3, 16, 16]", "[8, 20]", "[16]", "[3, 8, 8]", "[1, 28, 28]", "[3, 32, 32]",
                          "[3, p0 + 8, p0 + 8]" if params else "[3, 24, 24]", "[3, 64, 64]", "[3, 224, 224]"]
                         + (["[3, 1, 1]", "[0, 4, 4]"] if c.chance(10) else []))
        lines.append(f"input x: {shape}")
        if c.chance(20):
            lines.append(f"input y: {c.choice(['[3, 32, 32]', '[4]'])}")
        variants = [f"v{i}" for i in range(c.int(0, 2))]
        for v in variants:
            lines.append(f"variant {v} {{ {'; '.join(f'{p} = {c.int(1, 40)}' for p in params) or 'q = 1'}"
                         f"{'; unit = blk0' if c.chance(30) else ''} }}")
        if c.chance(30):
            lines.append(f'init {c.choice(["conv", "bn", "linear", "cnv"])} = "{c.choice(SCHEMES)}"')
        if c.chance(4):  # the case's folder holds only case.arch: every use is an error of some kind
            lines.append(f'use "{c.choice(["case.arch", "lib.arch", "../x.arch", "/etc/passwd", "", "a/../case.arch"])}"')
        if c.chance(20):
            lines.append(f"budget {c.choice(METRICS)} <= {c.choice(['1M', '10G', '5'])}")
        blocks: list[str] = []
        for i in range(c.int(0, 3)):
            args = [f"a{j}" for j in range(c.int(0, 3))]
            first_default = c.int(0, len(args)) if not c.chance(5) else 0
            decl = ", ".join(a if j < first_default or (j and c.chance(3)) else f"{a} = {c.int(1, 16)}"
                             for j, a in enumerate(args))
            body = self.body(Scope(params + args, [], list(blocks) + ([f"blk{i}"] if c.chance(5) else []), [], 1))
            lines.append(f"block blk{i}({decl}) {body}")
            blocks.append(f"blk{i}")
        net = self.body(Scope(list(params), [], blocks, [], 0))
        if c.chance(70):  # most networks start with a layer, as real ones do
            net = "{\n    conv(" + c.choice(["8", "16", "in.channels"]) + ", 3, pad = 1)" + net[1:]
        lines.append("network " + net)
        text = "\n".join(lines) + "\n"
        return text, (c.choice(variants) if variants and c.chance(90) else None)


def cnn_stmt(gen: SpecGenerator, s: Scope) -> str:
    """Issue 14's constructs: parts named with `as`, channel shuffle, dashed labels, training-only outputs,
    resampling and 3-D ops, often with hostile arguments (huge scales, parts, groups)."""
    c = gen.c
    k = c.int(0, 9)
    if k == 0:
        names = [f"p{gen.label_n}_{i}" for i in range(c.int(1, 3))]
        gen.label_n += 1
        s.saved.extend(names)
        cut = c.choice([f"chunk({c.choice(['2', '3', '1', '10 ** 9', str(len(names))])})",
                        f"split({c.choice(['[4, 4]', '2', '[1, in.channels - 1]', '10 ** 9', '[0, 8]'])})",
                        f"chunk({len(names)}, dim = {c.int(-1, 3)})", "relu()"])
        return f"{cut} as {', '.join(names)}"
    if k == 1:
        return f"channel_shuffle({c.choice(['2', '4', '3', 'in.channels', '10 ** 9', '0'])})"
    if k == 2:
        gen.label_n += 1
        label = c.choice([f"block{gen.label_n}-0", f"{gen.label_n}", f"b{{{c.choice(s.names or ['1'])}}}-{{1}}",
                          f"x{gen.label_n}-{{-1}}"])
        return f"{label}: {gen.op_call(s)}"
    if k == 3:
        return f"{c.choice(['chunk', 'split'])}({gen.expr(s, 2)}, index = {c.choice(['0', '1', '-1', gen.expr(s, 2)])})"
    if k == 4 and s.saved:
        return f"output training {', '.join(c.choice(s.saved) for _ in range(c.int(1, 2)))}"
    if k == 5:
        return f"channel_affine({c.choice(['0.5', '[1.0, 2.0, 3.0]', '1e308 * 10', gen.expr(s, 2)])}, " \
               f"{c.choice(['0', '[0.1] * in.channels', '[1, 2]', gen.expr(s, 2)])})"
    if k == 6:
        mode = c.choice(['', ', mode = "bilinear"', ', mode = "linear", align_corners = true', ', mode = "cubic"'])
        return c.choice([f"upsample({c.choice(['2', '[2, 1]', '10 ** 9', '0', gen.expr(s, 2)])}{mode})",
                         f"interpolate({c.choice(['in.shape[1:]', '[7, 9]', '3', '10 ** 9', gen.expr(s, 2)])}{mode})"])
    if k == 7:
        return f"conv_transpose({c.choice(['8', 'in.channels', '10 ** 9'])}, {c.choice(['2', '3', '[2, 1]', '10 ** 6'])}, " \
               f"stride = {c.choice(['2', '1', '10 ** 6'])}, pad = {c.choice(['0', '1', '5'])}, " \
               f"output_pad = {c.choice(['0', '1', '3'])})"
    if k == 8:
        return c.choice([f"center_crop({c.choice(['2', 'in.height - 2', '[1, 1]', '10 ** 9', '0'])})",
                         f"pixel_shuffle({c.choice(['2', '1', '10 ** 9', '3'])})"])
    return gen.op_call(s)


def _literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    return repr(v)


def generate(c: Chooser) -> tuple[str, str | None]:
    """A random plausible spec and the variant to load (or None)."""
    return SpecGenerator(c).spec()


# ----------------------------------------------------------------------------- mutation of the zoo

_TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?[KMG]?|[A-Za-z_]\w*'
                    r'|\*\*|//|[=!<>]=|.', re.S)
_NUMBER = re.compile(r"\d")
VOCAB = ["{", "}", "(", ")", "[", "]", ",", ";", ":", "=", ".", "+", "-", "*", "/", "**", "//", "%", "==", "<=",
         "if", "else", "for", "in", "repeat", "as", "residual", "shortcut", "dense", "gate", "branch", "save", "from",
         "output", "use", "block", "network", "param", "variant", "input", "arch", "init", "budget", "true", "false",
         "not", "and", "or", "\n", "conv", "bn", "relu", "linear", "maxpool", "flatten", "gap", "cat", "add", "mul",
         "x", "in.channels", '"a"', '"../x.arch"', "'s'", "#", "\\", "\t", "$", "é", "\x00", "\r", "0", "1K"]
NUMBERS = ["0", "-1", "1", "2", "2.5", "0.5", "-3", "10 ** 9", "1e400", "1e-400", "99999999999999999999999999",
           "65536", "1_000", "3K", "1G", "0.0", "-0", "2 ** 300", "1e308", "7", "1000", "100000", "0x1", "1.5.5", "1e"]


def mutate(text: str, c: Chooser) -> str:
    """One to three random edits: token deletion/swap/duplication/replacement, number changes, line edits,
    truncation, stray characters."""
    for _ in range(c.int(1, 3)):
        toks = _TOKEN.findall(text)
        solid = [i for i, t in enumerate(toks) if not t.isspace()]
        if not solid:
            break
        k = c.int(0, 9)
        i = c.choice(solid)
        if k == 0 and c.chance(30):                  # glue two tokens: delete the space between them
            spaces = [j for j, t in enumerate(toks) if t.isspace() and "\n" not in t]
            if spaces:
                toks[c.choice(spaces)] = ""
        elif k == 0:                                 # delete a token
            toks[i] = ""
        elif k == 1:                                 # swap with the next token
            j = solid[min(solid.index(i) + 1, len(solid) - 1)]
            toks[i], toks[j] = toks[j], toks[i]
        elif k == 2:                                 # duplicate
            toks[i] = toks[i] + c.choice(["", " "]) + toks[i]
        elif k == 3:                                 # replace with a vocabulary token
            toks[i] = c.choice(VOCAB)
        elif k in (4, 5):                            # change a number
            nums = [j for j in solid if _NUMBER.match(toks[j])]
            if nums:
                toks[c.choice(nums)] = c.choice(NUMBERS + [str(c.int(-5, 5000))])
        elif k == 6:                                 # truncate
            text = text[:c.int(0, len(text))]
            continue
        elif k == 7:                                 # delete, duplicate or swap lines
            lines = text.split("\n")
            a, b = c.int(0, len(lines) - 1), c.int(0, len(lines) - 1)
            op = c.int(0, 2)
            if op == 0:
                del lines[a]
            elif op == 1:
                lines.insert(a, lines[b])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
            continue
        elif k == 8 and c.chance(50):                # overwrite a character with any printable one
            at = c.int(0, max(0, len(text) - 1))
            text = text[:at] + chr(c.int(32, 126)) + text[at + 1:]
            continue
        elif k == 8:                                 # insert a stray character
            toks[i] = toks[i] + c.choice(VOCAB[:20] + ["\n", "'", '"', "#", "\\", "é", "\x00", "\ufeff"])
        else:                                        # replace a name with another name of the spec
            names = [j for j in solid if toks[j][0].isalpha() or toks[j][0] == "_"]
            if names:
                toks[c.choice(names)] = toks[c.choice(names)]
        text = "".join(toks)
    return text


_VARIANT = re.compile(r"^[ \t]*variant[ \t]+([A-Za-z_]\w*)", re.M)


def zoo_sources() -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(zoo_dir().glob("*.arch"))]


def mutated_case(sources, c: Chooser) -> tuple[str, str | None]:
    _, text = c.choice(sources)
    original = _VARIANT.findall(text)
    text = mutate(text, c)
    variants = _VARIANT.findall(text) or original
    return text, (c.choice(variants) if variants and c.chance(95) else None)


# ----------------------------------------------------------------------------- running one case

class _Hang(BaseException):
    """Raised by the alarm when a case runs past the time bound (BaseException: no handler swallows it)."""


@dataclass
class Outcome:
    kind: str          # "ok" (an Architecture), "error" (a SpecError), or a failure: "crash", "position", "hang", "ir"
    detail: str = ""
    signature: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.kind not in ("ok", "error")


def _signature(exc: BaseException) -> str:
    """Type and innermost archspec frame: one regression fixture per distinct bug."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "archspec" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


def check_positions(exc: SpecError, texts: dict[str, str]) -> str | None:
    """A problem with the diagnostics' positions, or None. Every diagnostic of a spec text has a position
    inside that text (a line of it, a column of that line, or just past its end); one about a load argument
    (Diagnostic.arg: the variant asked for) names that argument instead."""
    for d in exc.diagnostics:
        if not d.message:
            return "empty message"
        if d.arg is not None:  # a mistake in a load argument (variant, parameter): not in the text, no position
            continue
        if d.pos is None:
            return f"no position: {d.message}"
        text = texts.get(d.pos.file)
        if text is None:
            continue  # another file (a used one): checked when it is the case itself
        lines = text.split("\n")
        if not 1 <= d.pos.line <= len(lines):
            return f"line {d.pos.line} outside 1..{len(lines)}: {d.message}"
        if not 1 <= d.pos.col <= len(lines[d.pos.line - 1]) + 1:
            return f"column {d.pos.col} outside line {d.pos.line} ({len(lines[d.pos.line - 1])} chars): {d.message}"
    exc.render()
    return None


def check_ir(arch: Architecture) -> str | None:
    """A problem with a returned Architecture, or None."""
    seen = {i.name for i in arch.inputs}
    for n in arch.nodes:
        if n.name in seen:
            return f"node name {n.name} used twice"
        if any(i not in seen for i in n.inputs):
            return f"node {n.name} reads {n.inputs} before they exist"
        if not n.shape or any(not isinstance(d, int) or d < 1 for d in n.shape):
            return f"node {n.name} has shape {n.shape}"
        seen.add(n.name)
    if not arch.outputs or any(o.node not in seen for o in arch.outputs):
        return f"outputs {arch.outputs} name unknown nodes"
    if Architecture.model_validate_json(arch.model_dump_json()) != arch:
        return "the IR does not survive a JSON round trip"
    if hasattr(archspec, "analyze"):  # the analyzer reads any valid IR (a crash there is a bug too)
        archspec.analyze(arch).to_json()
    return None


def run_case(text: str, variant: str | None, folder: Path, limits: Limits = FUZZ_LIMITS,
             time_bound: float = TIME_BOUND) -> Outcome:
    """Load one spec text (written to folder/case.arch) and classify what happened."""
    path = folder / "case.arch"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if alarm:  # CPU time (ITIMER_PROF): a loaded machine does not make a case hang; wall time catches a blocked read
        def on_alarm(signum, frame):
            raise _Hang()
        old = {sig: signal.signal(sig, on_alarm) for sig in (signal.SIGPROF, signal.SIGALRM)}
        signal.setitimer(signal.ITIMER_PROF, time_bound * 2)
        signal.setitimer(signal.ITIMER_REAL, time_bound * WALL_FACTOR)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        try:
            arch = archspec.load(path, variant=variant, limits=limits)
            problem = check_ir(arch)  # under the alarm too: the analyzer must be bounded as well
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.setitimer(signal.ITIMER_REAL, 0)
                for sig, handler in old.items():
                    signal.signal(sig, handler)
        out = Outcome("ok")
        if problem:
            out = Outcome("ir", problem, "ir:" + " ".join(problem.split()[:3]))
    except SpecError as exc:
        texts = {d.pos.file: text for d in exc.diagnostics if d.pos is not None and Path(d.pos.file).name == "case.arch"}
        problem = check_positions(exc, texts)
        out = Outcome("position", problem, "position:" + (exc.first.message.split("'")[0][:40])) if problem else \
            Outcome("error", exc.first.message)
    except _Hang:
        out = Outcome("hang", f"over {time_bound * 2:.0f} s of CPU or {time_bound * WALL_FACTOR:.0f} s", "hang")
    except RecursionError as exc:
        out = Outcome("crash", "RecursionError", _signature(exc))
    except Exception as exc:  # noqa: BLE001 - any other exception is the bug we look for
        out = Outcome("crash", "".join(traceback.format_exception(exc)[-3:]), _signature(exc))
    cpu = time.process_time() - c0
    out.seconds = time.perf_counter() - t0
    if not out.failed and cpu > time_bound:
        out = Outcome("hang", f"took {cpu:.1f} s of CPU ({out.seconds:.1f} s)", "slow", out.seconds)
    return out


# ----------------------------------------------------------------------------- hostile surfaces (issue 16)
# Beyond the front end: generated Python imported under an audit hook, IR dumps mutated and read back,
# file names with control characters. Each case returns an Outcome, like run_case.

HOSTILE_STRINGS = ['"""', "'''", "\\", '\\"""', '"""; __import__("os").system("touch PWNED") #', "\n", "\r\n",
                   "\x1b[2J", "\x1b]8;;https:evil\x1b\\", "[link=https:evil]x", "# Heading", "`", "|", "\u2028",
                   "\x00", "</details>", "```", "${x}", "{}", "%s"]
HOSTILE_NAMES = ["None", "True", "class", "self", "torch", "nn", "math", "forward", "meta", "graph", "_code",
                 "recompile", "training", "x", "_get", "build", "Model", "INPUT_SHAPES", "__init__", "code", "to"]
SMALL_VALID = "arch small\ninput x: [3, 8, 8]\nnetwork {\n    conv(4, 3)\n    stage: { bn();  relu() }\n}\n"
FILE_NAME_CHARS = ["a", "b", "_", "-", " ", "\t", "\x1b", "\x7f", "\u202e", "'", '"""', "\\", "\n", "[", "]", "`"]


def _hostile_text(c: Chooser) -> str:
    return "".join(c.choice(HOSTILE_STRINGS) for _ in range(c.int(1, 4)))


def hostile_spec(c: Chooser) -> tuple[str, str | None, str]:
    """A generated spec with hostile names and strings spliced in, and a hostile file name for it."""
    text, variant = generate(c) if c.chance(60) else (SMALL_VALID, None)
    lines = text.split("\n")
    for _ in range(c.int(1, 4)):
        k = c.int(0, 7) % 5 if c.chance(50) else 0
        if k == 0:    # a string parameter: its value goes into the generated module's docstring
            quote = c.choice(["'", '"'])
            value = _hostile_text(c).replace(quote, "").replace("\n", "").replace("\r", "").replace("\x00", "")
            lines.insert(1, f"param h{c.int(0, 9)} = {quote}{value}{quote}")
        elif k == 1:  # the arch's name
            lines = [f"arch {c.choice(HOSTILE_NAMES)}" if ln.startswith("arch ") else ln for ln in lines]
        elif k == 2:  # an input's name
            lines = [ln.replace("input x:", f"input {c.choice(HOSTILE_NAMES)}:", 1) for ln in lines]
        else:         # a label
            at = next((i for i, ln in enumerate(lines) if ln.startswith("network")), None)
            if at is not None:
                lines.insert(at + 1, f"    {c.choice(HOSTILE_NAMES)}: relu()")
    name = "".join(c.choice(FILE_NAME_CHARS) for _ in range(c.int(1, 8))) + ".arch"
    return "\n".join(lines), variant, name


_AUDITED_IMPORTER = r"""
import importlib.util, os, sys, traceback
here = os.path.realpath(sys.argv[1])
def hook(event, args):
    if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn", "os.kill"):
        raise SystemExit(f"AUDIT {event}")
    if event == "open" and isinstance(args[0], str) and args[1] and any(ch in str(args[1]) for ch in "wax+"):
        path = os.path.realpath(args[0])
        if not path.startswith(here + os.sep) and not path.startswith("/dev/"):
            raise SystemExit(f"AUDIT write {path}")
import torch  # before the hook: torch's own start-up is not the generated code
sys.addaudithook(hook)
for line in sys.stdin:
    path = line.strip()
    try:
        spec = importlib.util.spec_from_file_location("generated", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build()
        print("ok", flush=True)
    except BaseException as exc:  # reported to the campaign
        print("FAIL " + " ".join(traceback.format_exception_only(exc)[-1].split())[:300], flush=True)
"""


class AuditedImporter:
    """One long-lived interpreter that imports generated modules under an audit hook (no process may start,
    no file outside the folder may be written) and calls their build()."""

    def __init__(self, folder: Path):
        import os
        import subprocess
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-c", _AUDITED_IMPORTER, str(folder)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=folder,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})

    def check(self, source: str) -> str | None:
        """None when the module imported and built without an audit event, else what happened."""
        path = self.folder / "generated_model.py"
        path.write_text(source, encoding="utf-8")
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        return None if answer == "ok" else (answer or "the importer died")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _printable_problem(text: str) -> str | None:
    bad = sorted({ch for ch in text if not ch.isprintable() and ch != "\n"})
    return f"control characters {bad!r} reach the output" if bad else None


def _write_case(folder: Path, name: str, text: str) -> Path | None:
    path = folder / name
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except (OSError, UnicodeError):
        return None
    return path


def run_python_case(c: Chooser, folder: Path, importer: AuditedImporter) -> Outcome:
    """A hostile spec under a hostile file name -> archspec.load -> emit_python -> an audited import."""
    text, variant, name = hostile_spec(c)
    sub = folder / "py"
    sub.mkdir(exist_ok=True)
    path = _write_case(sub, name, text)
    if path is None:
        return Outcome("error", "file name refused by the system")
    t0 = time.perf_counter()
    try:
        try:
            arch = archspec.load(path, variant=variant, limits=FUZZ_LIMITS)
        except SpecError as exc:
            problem = _printable_problem(exc.render())
            return Outcome("position", problem, "render:control") if problem else Outcome("error", exc.first.message)
        from archspec_compiler.pysource import emit_python
        try:
            source = emit_python(arch, command=f"archspec compile {name}")
        except SpecError as exc:
            return Outcome("error", exc.first.message)
        problem = importer.check(source)
        if problem and problem.startswith("FAIL MemoryError:"):  # build() refused weights this machine lacks
            return Outcome("error", problem)
        if problem:
            return Outcome("crash", f"{problem}\n{text}", "python:" + " ".join(problem.split()[:3]))
        return Outcome("ok", seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - the bug we look for
        return Outcome("crash", "".join(traceback.format_exception(exc)[-3:]), _signature(exc))
    finally:
        path.unlink(missing_ok=True)


def mutate_ir(data: dict, c: Chooser) -> dict:
    """One to three edits of an IR dump's JSON: fields removed, retyped or replaced by hostile values."""
    hostile = [None, -1, 0, 2 ** 70, 1e308, float("nan"), "", "/etc/passwd", "/dev/zero", [], {}, [[1]], True,
               "x" * 300] + HOSTILE_STRINGS[:8] + HOSTILE_NAMES[:8]
    for _ in range(c.int(1, 3)):
        section = c.choice(["nodes", "nodes", "nodes", "inputs", "outputs", "scopes", "top"])
        items = data.get(section) if section != "top" else [data]
        if not isinstance(items, list) or not items:
            continue
        item = c.choice(items)
        if not isinstance(item, dict) or not item:
            continue
        key = c.choice(sorted(item))
        k = c.int(0, 5)
        if k == 0:
            del item[key]
        elif k == 1 and isinstance(item[key], dict) and item[key]:
            sub = c.choice(sorted(item[key]))
            item[key][sub] = c.choice(hostile + [item[key][sub], str(item[key][sub])])
        elif k == 2 and isinstance(item[key], list) and item[key]:
            item[key][c.int(0, len(item[key]) - 1)] = c.choice(hostile + [1, 3, 7])
        elif k == 3 and section == "nodes":
            item[key] = c.choice(items).get(key, item[key])
        else:
            item[key] = c.choice(hostile)
    return data


_IR_SEEDS: list = []


def run_ir_case(c: Chooser) -> Outcome:
    """A valid IR (of a zoo model), mutated: archspec.ir_from_json gives an Architecture that every pass reads,
    or a SpecError; never a traceback, a hang, an opened span or control characters in the output."""
    if not _IR_SEEDS:
        _IR_SEEDS.extend(json.loads(archspec.load(n).model_dump_json()) for n in ("lenet5", "resnet18", "googlenet"))
    data = json.loads(json.dumps(c.choice(_IR_SEEDS)))
    if c.chance(30):  # a valid dump whose spans name files that must never be opened
        for node in data["nodes"]:
            node["span"]["file"] = c.choice(["/etc/passwd", "/dev/zero", "/proc/self/mem", "\x1b[2J.arch", ".."])
    text = json.dumps(mutate_ir(data, c) if c.chance(80) else data)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        arch = archspec.ir_from_json(text)
        problem = check_ir(arch)
        if not problem:
            from archspec.commands.analyze import markdown
            problem = _printable_problem(markdown(archspec.analyze(arch), 0))
        out = Outcome("ir", problem + "\n" + text[:2000], "ir-dump:" + " ".join(problem.split()[:3])) if problem \
            else Outcome("ok")
    except SpecError as exc:
        problem = _printable_problem(exc.render())
        out = Outcome("position", problem, "ir-dump:render") if problem else Outcome("error", exc.first.message)
    except Exception as exc:  # noqa: BLE001 - the bug we look for
        out = Outcome("crash", "".join(traceback.format_exception(exc)[-3:]) + "\n" + text[:2000], _signature(exc))
    out.seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if cpu > TIME_BOUND:
        out = Outcome("hang", f"took {cpu:.1f} s of CPU", "ir-dump:slow", out.seconds)
    return out


def run_filename_case(c: Chooser, folder: Path) -> Outcome:
    """A hostile spec saved under a file name with control characters: every message about it must reach the
    terminal without them."""
    text, variant, name = hostile_spec(c)
    sub = folder / "names"
    sub.mkdir(exist_ok=True)
    path = _write_case(sub, name, text)
    if path is None:
        return Outcome("error", "file name refused by the system")
    try:
        archspec.load(path, variant=variant, limits=FUZZ_LIMITS)
        return Outcome("ok")
    except SpecError as exc:
        problem = _printable_problem(exc.render())
        return Outcome("position", problem, "filename:render") if problem else Outcome("error", exc.first.message)
    except Exception as exc:  # noqa: BLE001 - the bug we look for
        return Outcome("crash", "".join(traceback.format_exception(exc)[-3:]), _signature(exc))
    finally:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- regressions

def minimize(text: str, variant: str | None, signature: str, folder: Path, budget: int = 300) -> str:
    """Drop lines, then characters, while the failure keeps its signature (bounded tries)."""
    def same(t: str) -> bool:
        o = run_case(t, variant, folder)
        return o.failed and o.signature == signature
    tries = 0
    for unit in ("\n", None):
        parts = text.split("\n") if unit else list(text)
        chunk = max(1, len(parts) // 2)
        while chunk >= 1 and tries < budget:
            i, changed = 0, False
            while i < len(parts) and tries < budget:
                trial = parts[:i] + parts[i + chunk:]
                tries += 1
                if trial and same(("\n" if unit else "").join(trial)):
                    parts, changed = trial, True
                else:
                    i += chunk
            if not changed:
                chunk //= 2
        text = ("\n" if unit else "").join(parts)
    return text


def save_regression(text: str, variant: str | None, outcome: Outcome, origin: str) -> Path:
    """tests/fixtures/fuzz_regressions/<hash>.arch and .json (variant, what went wrong, where from)."""
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(f"{variant}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()[:12]
    path = REGRESSIONS / f"{name}.arch"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    meta = {"variant": variant, "kind": outcome.kind, "signature": outcome.signature,
            "detail": outcome.detail[-2000:], "origin": origin}
    (REGRESSIONS / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return path


def regression_cases() -> list[tuple[Path, str | None, str | None]]:
    """(file, variant, open): `open` names a bug outside the front end that is reported but not fixed yet."""
    out = []
    for path in sorted(REGRESSIONS.glob("*.arch")):
        meta = path.with_suffix(".json")
        info = json.loads(meta.read_text()) if meta.exists() else {}
        out.append((path, info.get("variant"), info.get("open")))
    return out


# ----------------------------------------------------------------------------- the campaign

def campaign(n: int | None, seconds: float | None, seed: int, mode: str, save: bool, verbose: bool) -> int:
    rng = random.Random(seed)
    c = Chooser(rng)
    sources = zoo_sources()
    counts: dict[str, int] = {}
    failures: dict[str, tuple[str, str | None, Outcome, str]] = {}
    slowest = (0.0, "")
    archspec.load("resnet18")  # build the parser before timing
    t0 = time.perf_counter()
    i = 0
    kinds = {"both": ["mutate", "generate"], "all": ["mutate", "generate", "ir", "filename", "mutate", "generate",
                                                     "ir", "python"]}.get(mode, [mode])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        importer = AuditedImporter(folder) if "python" in kinds else None
        while (n is None or i < n) and (seconds is None or time.perf_counter() - t0 < seconds):
            kind = kinds[i % len(kinds)]
            text, variant = "", None
            if kind == "python":
                out = run_python_case(c, folder, importer)
                if importer.proc.poll() is not None:  # an audit exit or a crash: start a fresh importer
                    importer = AuditedImporter(folder)
            elif kind == "ir":
                out = run_ir_case(c)
            elif kind == "filename":
                out = run_filename_case(c, folder)
            else:
                text, variant = generate(c) if kind == "generate" else mutated_case(sources, c)
                out = run_case(text, variant, folder)
            counts[out.kind] = counts.get(out.kind, 0) + 1
            if out.seconds > slowest[0]:
                slowest = (out.seconds, f"case {i} ({kind})")
            if out.failed and out.signature not in failures:
                failures[out.signature] = (text, variant, out, f"{kind}, seed {seed}, case {i}")
                if verbose:
                    print(f"case {i}: {out.kind} {out.signature}\n{out.detail}", file=sys.stderr)
            i += 1
        elapsed = time.perf_counter() - t0
        print(f"fuzz: {i} cases in {elapsed:.1f} s = {i / elapsed:.0f} cases/s (seed {seed}, mode {mode})")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"slowest case: {slowest[0] * 1000:.0f} ms ({slowest[1]})")
        if importer is not None:
            importer.close()
        print(f"distinct failures: {len(failures)}")
        for sig, (text, variant, out, origin) in failures.items():
            line = f"  {out.kind}: {sig}  [{origin}]"
            if not text:  # a hostile surface: the detail holds the case
                print(line + f"\n    {out.detail[:1500]!r}")
                continue
            if save:
                small = minimize(text, variant, sig, folder)
                line += f" -> {save_regression(small, variant, out, origin).relative_to(REPO)}"
            print(line)
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--cases", type=int, default=None, help="number of cases (default 20,000 without --seconds)")
    p.add_argument("--seconds", type=float, default=None, help="run for this long instead")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mode", choices=("all", "both", "generate", "mutate", "ir", "filename", "python"), default="all",
                   help="all (default): spec generation and mutation, IR dumps, file names, generated Python")
    p.add_argument("--no-save", action="store_true", help="do not write failing inputs to tests/fixtures/fuzz_regressions")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    n = a.cases if a.cases is not None or a.seconds is not None else 20_000
    return campaign(n, a.seconds, a.seed, a.mode, not a.no_save, a.verbose)


if __name__ == "__main__":
    sys.exit(main())

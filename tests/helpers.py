"""Helpers the test files share (imported as `from helpers import ...`, as refdata is): the repository root,
specs written from text, and the op table's example cases."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

import archspec
from archspec.ir import Architecture, Input, Node, Output, Span
from archspec.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def write_spec(folder: Path, text: str, name: str = "net.arch", *, dedent: bool = True) -> Path:
    """Write a spec's text (dedented unless told otherwise) to folder/name; returns the path."""
    path = folder / name
    path.write_text(textwrap.dedent(text) if dedent else text)
    return path


def load_spec(folder: Path, text: str, name: str = "net.arch", **overrides):
    """Write a spec's text (dedented) to folder/name and load it with the given parameter overrides."""
    return archspec.load(write_spec(folder, text, name), **overrides)


def network_spec(folder: Path, body: str, input_shape=(3, 16, 16), head: str = "", **overrides):
    """Load `arch t` with one input x of `input_shape`, the declarations `head` and `network { body }`."""
    return load_spec(folder, f"arch t\ninput x: {list(input_shape)}\n{textwrap.dedent(head)}\nnetwork {{\n"
                             f"{textwrap.dedent(body)}\n}}\n", **overrides)


def fill_weights(module):
    """Random weights in place, positive where 1-d (batch-norm variances; a fresh batch norm is the identity)."""
    import torch  # here: most test files need no torch
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.dtype.is_floating_point:
                value.copy_(torch.rand(value.shape) * 0.5 + 0.5 if value.ndim == 1 else torch.randn(value.shape) * 0.3)
    return module


def op_cases():
    """(op, attrs, input shapes, output shape) for each op's example, on every rank it accepts."""
    return [pytest.param(name, a, ins, out, id=f"{name}-{'x'.join(map(str, ins[0] if ins else out))}")
            for name, op in sorted(REGISTRY.items()) for a, ins, out in op.example_cases()]


def op_arch(name: str, attrs: dict, ins: list[tuple], out: tuple, title: str | None = None) -> Architecture:
    """A one-node Architecture running op `name` on inputs x0, x1, ..., named `title` (default: the op's name)."""
    span = Span(file="<example>", line=1, col=1)
    inputs = tuple(Input(name=f"x{i}", shape=s, span=span) for i, s in enumerate(ins))
    nodes = (Node(name="op", op=name, inputs=tuple(i.name for i in inputs), attrs=attrs, shape=out, span=span),)
    if name == "take":  # the index is a buffer (integers, batch 1): read one by a table of enough rows
        inputs = (Input(name="x0", shape=(max(9, ins[0][0]), *ins[0][1:]), span=span),)  # indices 0..8
        nodes = (Node(name="index", op="buffer", inputs=(), shape=(4, 4), span=span,
                      attrs={"rule": "relative_position_index", "window": [2, 2], "shape": [4, 4]}),
                 Node(name="op", op=name, inputs=("x0", "index"), attrs={"index": [4, 4]},
                      shape=(4, 4, *ins[0][1:]), span=span))
    elif name == "buffer":  # integers: read through take, by a batched table
        inputs = (Input(name="x0", shape=(max(9, math.prod(out)), 3), span=span),)
        nodes += (Node(name="sum", op="take", inputs=("x0", "op"), attrs={"index": list(out)}, shape=(*out, 3),
                       span=span),)
    elif not ins:  # a learnable tensor (batch 1): added to an input, which gives the output its batch
        inputs = (Input(name="x0", shape=out, span=span),)
        nodes += (Node(name="sum", op="add", inputs=("x0", "op"), attrs={}, shape=out, span=span),)
    return Architecture(name=title or name, inputs=inputs, nodes=nodes,
                        outputs=(Output(name="y", node=nodes[-1].name),))

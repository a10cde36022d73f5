"""Helpers the test files share (imported as `from helpers import ...`, as refdata is): the repository root,
specs written from text, and the op table's example cases."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import archspec
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


def op_cases():
    """(op, attrs, input shapes, output shape) for each op's example, on every rank it accepts."""
    return [pytest.param(name, a, ins, out, id=f"{name}-{'x'.join(map(str, ins[0] if ins else out))}")
            for name, op in sorted(REGISTRY.items()) for a, ins, out in op.example_cases()]

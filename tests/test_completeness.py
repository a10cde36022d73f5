"""Completeness over the op table: each op's example (Op.example_cases, on every rank it accepts) runs through
every backend. tests/test_torch.py checks the torch lowering of each example (shapes, counts, gradients) and
tests/test_onnx.py the ONNX export at the default opset (float16, folded batch norm, shape inference); here the
example runs through the ONNX lowering at every supported opset, through the standalone source emitter, and
into the diagram, each against to_torch's numbers."""
from __future__ import annotations

import pytest
import torch

from archspec.diagram import _COLOURS, _KIND, build, to_dot, to_mermaid
from archspec.ops import REGISTRY
from archspec_compiler import emit_python, to_onnx, to_torch
from archspec_compiler.onnx import MAX_OPSET, MIN_OPSET
from archspec_compiler.runtime import Session
from helpers import fill_weights, op_arch, op_cases

OPSETS = range(MIN_OPSET, MAX_OPSET + 1)


def reference(arch, batch: int = 2):
    """to_torch's module with random weights, its inputs and its outputs."""
    torch.manual_seed(0)
    module = fill_weights(to_torch(arch).eval())
    xs = [torch.randn(batch, *i.shape) for i in arch.inputs]
    with torch.no_grad():
        want = module(*xs)
    return module, xs, list(want) if isinstance(want, tuple) else [want]


def close(got: torch.Tensor, want: torch.Tensor, tol: float) -> bool:
    """Equal shapes and values within tol of the output's scale."""
    scale = max(1.0, float(want.abs().max()))
    return tuple(got.shape) == tuple(want.shape) and float((got - want).abs().max()) <= tol * scale


@pytest.mark.parametrize("name, a, ins, out", op_cases())
def test_onnx_lowering_at_every_opset(name, a, ins, out):
    arch = op_arch(name, a, ins, out)
    module, xs, want = reference(arch)
    for opset in OPSETS:
        got = Session(to_onnx(arch, module=module, opset=opset), providers="cpu").run(*[x.numpy() for x in xs])
        assert len(got) == len(want)
        assert all(close(torch.from_numpy(g), w, 1e-4) for g, w in zip(got, want)), f"opset {opset}"


@pytest.mark.parametrize("name, a, ins, out", op_cases())
def test_source_emitter(name, a, ins, out):
    arch = op_arch(name, a, ins, out, "example")  # not the op's name: a model class may not share a layer's
    module, xs, want = reference(arch)
    namespace: dict = {}
    exec(compile(emit_python(arch), f"{name}.py", "exec"), namespace)
    emitted = namespace["build"]()
    emitted.load_state_dict(module.state_dict())
    assert list(emitted.state_dict()) == list(module.state_dict())
    with torch.no_grad():
        got = emitted.eval()(*xs)
    got = list(got) if isinstance(got, tuple) else [got]
    assert len(got) == len(want) and all(close(g, w, 1e-6) for g, w in zip(got, want))


@pytest.mark.parametrize("name, a, ins, out", op_cases())
def test_diagram_draws_the_op(name, a, ins, out):
    arch = op_arch(name, a, ins, out)
    d, node = build(arch), arch.node("op")
    box = d.box("op")
    assert box.kind in _COLOURS and box.shape == node.shape
    assert box.params == REGISTRY[name].params(node.attrs, [arch.shapes()[i] for i in node.inputs], node.shape)
    drawn = next(line for line in to_dot(d).splitlines() if line.lstrip().startswith('"op" ['))
    assert f'fillcolor="{_COLOURS[box.kind]}"' in drawn and f":::{box.kind}" in to_mermaid(d)


def test_diagram_kinds_name_registered_ops_and_colours():
    assert set(_KIND) <= set(REGISTRY), f"diagram kinds of unknown ops: {sorted(set(_KIND) - set(REGISTRY))}"
    assert set(_KIND.values()) <= set(_COLOURS)

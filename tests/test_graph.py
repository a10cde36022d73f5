"""archspec.graph: the graph facts computed once per Architecture, and the rewrite passes built on them."""
from __future__ import annotations

import copy
import pickle

import pytest

import archspec
from archspec.graph import foldable_bn, graph, inplace_adds, inplace_nodes, last_use
from archspec.ir import Architecture

SPEC = """
arch g
input x: [3, 8, 8]
network {
    c: conv(4, 3, pad = 1);  b: bn();  r: relu();  save t
    m: mul(t, t)
    d: conv(4, 1);  s: relu();  save u
    y: add(u, t)
}
"""


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> Architecture:
    path = tmp_path_factory.mktemp("graph") / "g.arch"
    path.write_text(SPEC)
    return archspec.load(path)


def test_index_is_computed_once_and_kept(arch):
    g = graph(arch)
    assert graph(arch) is g and g.node is g.node
    assert arch.node("c").op == "conv" and g.node["y"].inputs == ("s", "r")
    with pytest.raises(KeyError):
        arch.node("nope")


def test_readers_count_each_node_once_uses_count_every_input(arch):
    g = graph(arch)
    assert g.readers["r"] == ["m", "y"]
    assert g.uses["r"] == 3  # mul(r, r) and add(s, r)
    assert g.readers["x"] == ["c"] and "y" not in g.readers


def test_last_use(arch):
    g = graph(arch)
    steps = [n.name for n in arch.nodes]
    assert g.last_use["r"] == steps.index("y") and g.last_use["c"] == steps.index("b")
    assert g.last_use["y"] == len(steps)  # returned: alive to the end
    assert last_use([["a"], ["a", "b"], []], keep=["c"]) == {"a": 1, "b": 1, "c": 3}
    assert last_use([], keep=["a"]) == {"a": 0}


def test_ancestors(arch):
    assert graph(arch).ancestors(["d"]) == {"d", "m", "r", "b", "c", "x"}


def test_passes(arch):
    assert foldable_bn(arch) == {"b": "c"}
    assert inplace_nodes(arch, {"relu"}, set()) == {"r", "s"}  # b and d: each read by one input
    assert inplace_nodes(arch, {"relu"}, {"bn"}) == {"s"}  # r would write into what a bn returned
    assert inplace_nodes(arch, {"mul"}, set()) == set()  # r is read by three inputs
    assert inplace_adds(arch) == frozenset()  # y's first input is a relu's, not a batch norm's


def test_the_cache_is_no_part_of_the_value(arch):
    graph(arch)
    text = arch.model_dump_json()
    assert "_graph" not in text and Architecture.model_validate_json(text) == arch
    for twin in (pickle.loads(pickle.dumps(arch)), copy.deepcopy(arch), arch.model_copy()):
        assert twin == arch and twin.model_dump_json() == text
        assert graph(twin) is not graph(arch)


def test_span_to_error_position():
    from archspec.errors import Pos
    from archspec.ir import Span
    span = Span(file="a.arch", line=3, col=5)
    assert span.pos() == Pos("a.arch", 3, 5)
    assert span.pos(6) == Pos("a.arch", 3, 5, 3, 11)  # a budget underlines its keyword


def test_one_lowering_registry_for_both_backends():
    from archspec_compiler.lowerings import Lowerings
    table = Lowerings()

    @table.register("a", "b")
    def fn():
        return 1

    assert table == {"a": fn, "b": fn}
    from archspec_compiler import onnx as onnx_backend
    from archspec_compiler import torch as torch_backend
    assert type(onnx_backend.LOWERINGS) is type(torch_backend.LOWERINGS) is Lowerings
    assert onnx_backend.lowering.__func__ is torch_backend.lowering.__func__ is Lowerings.register


def test_to_numpy_takes_torch_and_numpy_alike():
    import numpy as np
    import torch

    from archspec_compiler.runtime import to_numpy
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3).t()  # not contiguous, a type numpy lacks
    a = to_numpy(t)
    assert a.dtype == np.float32 and a.flags.c_contiguous and a.tolist() == [[0, 3], [1, 4], [2, 5]]
    assert to_numpy(torch.ones(2, requires_grad=True), "float64").dtype == np.float64
    assert to_numpy([1.5, 2.5], np.float16).dtype == np.float16


def test_nodes_are_hashable_and_their_attributes_read_only(arch):
    import dataclasses

    from archspec.ir import Attrs
    conv = arch.node("c")
    assert isinstance(conv.attrs, Attrs) and conv.attrs == dict(conv.attrs)
    assert len(set(arch.nodes)) == len(arch.nodes) and hash(conv) == hash(dataclasses.replace(conv))
    with pytest.raises(TypeError, match="read-only"):
        conv.attrs["out"] = 8
    with pytest.raises(TypeError, match="read-only"):
        conv.attrs.update(out=8)
    wider = dataclasses.replace(conv, attrs={**conv.attrs, "out": 8})
    assert isinstance(wider.attrs, Attrs) and wider != conv and conv.attrs["out"] == 4
    assert pickle.loads(pickle.dumps(conv)) == conv and copy.deepcopy(conv.attrs) == conv.attrs

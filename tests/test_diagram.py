"""archspec diagram: collapsing by depth, merges, labels; SVG/PNG through Graphviz, Mermaid and DOT text.

Graphviz's `dot` is installed by scripts/setup.sh; the SVG and PNG tests fail (they do not skip) without it."""
from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import pytest

import archspec
from archspec import SpecError
from archspec.cli import main
from archspec.diagram import build, render, render_bytes, to_dot, to_mermaid
from archspec.ops import REGISTRY

SVG = "{http://www.w3.org/2000/svg}"
XS: dict[str, float] = {}  # x of each node's label in the last SVG read: branches are drawn left to right

INCEPTION = """\
arch mini_inception
input image: [3, 32, 32]
block inception(c1, c3r, c3, c5r, c5, pp) {
    branch concat {
        branch1: conv(c1, 1)
        branch2: { conv(c3r, 1);  relu();  conv(c3, 3, pad = 1) }
        branch3: { conv(c5r, 1);  relu();  conv(c5, 5, pad = 2) }
        branch4: { maxpool(3, stride = 1, pad = 1);  conv(pp, 1) }
    }
}
network {
    stem: conv(16, 3, pad = 1)
    mix: inception(8, 4, 16, 2, 4, 4)
    gap();  flatten();  fc: linear(10)
}
"""


def svg_graph(data: bytes):
    """(nodes: title -> text lines, edges: set of (a, b), clusters: titles) of a Graphviz SVG."""
    root = ET.fromstring(data)
    nodes, edges, clusters = {}, set(), set()
    for g in root.iter(SVG + "g"):
        title = g.find(SVG + "title")
        if title is None:
            continue
        kind = g.get("class")
        if kind == "node":
            nodes[title.text] = [t.text for t in g.iter(SVG + "text")]
            XS[title.text] = float(next(g.iter(SVG + "text")).get("x"))
        elif kind == "edge":
            a, b = title.text.split("->")
            edges.add((a, b))
        elif kind == "cluster":
            clusters.add(title.text)
    return nodes, edges, clusters


def params_of(arch, prefix):
    shapes = arch.shapes()
    return sum(REGISTRY[n.op].params(n.attrs, [shapes[i] for i in n.inputs], n.shape)
               for n in arch.nodes if not prefix or n.name == prefix or n.name.startswith(prefix + "."))


def check_inception(nodes, edges, scope, before, channels):
    branches = [f"{scope}.branch{k}" for k in (1, 2, 3, 4)]
    cat = f"{scope}.cat"
    for b in branches:
        assert b in nodes, f"{b} missing from {sorted(nodes)}"
        assert (before, b) in edges, f"{before} -> {b}"
        assert (b, cat) in edges, f"{b} -> {cat}"
    text = " ".join(nodes[cat])
    assert "concat" in text and f"[{channels}," in text
    # exactly four paths into the concat, drawn in the spec's order
    assert sorted(a for a, b in edges if b == cat) == branches
    assert [XS[b] for b in branches] == sorted(XS[b] for b in branches)


def test_inception_like_svg_structure(tmp_path):
    spec = tmp_path / "mini.arch"
    spec.write_text(INCEPTION)
    arch = archspec.load(spec)
    out = render(arch, tmp_path / "mini.svg", depth=2)
    nodes, edges, clusters = svg_graph(out.read_bytes())
    check_inception(nodes, edges, "mix", "stem", 8 + 16 + 4 + 4)
    assert "cluster_mix" in clusters
    # each box is labelled with its output shape and its parameters
    assert any("[16, 32, 32]" in line and f"{16 * 3 * 9 + 16}" in line for line in nodes["stem"])
    branch2 = params_of(arch, "mix.branch2")
    assert branch2 == 4 * 16 + 4 + 16 * 4 * 9 + 16
    assert any(f"{branch2} params" in line for line in nodes["mix.branch2"])


def test_googlenet_svg_has_every_inception_block_with_four_branches_and_a_concat(tmp_path):
    arch = archspec.load("googlenet")
    out = render(arch, tmp_path / "googlenet.svg", depth=2)
    nodes, edges, _ = svg_graph(out.read_bytes())
    shapes = arch.shapes()
    blocks = sorted({n.name.split(".")[0] for n in arch.nodes if n.name.startswith("inception")})
    assert len(blocks) == 9  # 3a 3b 4a-4e 5a 5b
    for scope in blocks:
        cat = arch.node(f"{scope}.cat")
        first = next(n for n in arch.nodes if n.name.startswith(scope + ".branch1."))
        before = ".".join(first.inputs[0].split(".")[:2])  # as collapsed at depth 2
        # the concat's width is the sum of its four branches' outputs, read from the IR
        assert cat.shape[0] == sum(shapes[i][0] for i in cat.inputs)
        check_inception(nodes, edges, scope, before, cat.shape[0])
    assert "[256, 28, 28]" in " ".join(nodes["inception3a.cat"])  # torchvision: 64 + 128 + 32 + 32


def test_png_of_resnet18(tmp_path):
    assert main(["diagram", "resnet18", "-o", str(tmp_path / "resnet18.png")]) == 0
    data = (tmp_path / "resnet18.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    # every layer of resnet18 is a box: the picture is tall
    assert width > 200 and height > 20 * len(archspec.load("resnet18").nodes)
    assert len(data) > 20_000


def test_missing_graphviz_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("archspec.diagram.shutil.which", lambda name: None)
    with pytest.raises(SpecError, match="Graphviz"):
        render(archspec.load("resnet18"), tmp_path / "x.svg")
    assert main(["diagram", "resnet18", "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "Traceback" not in err
    # text formats need no program
    assert main(["diagram", "resnet18", "-o", str(tmp_path / "x.mmd")]) == 0


# ---------------------------------------------------------------- the model, over the zoo

@pytest.mark.parametrize("name", archspec.list_models())
@pytest.mark.parametrize("depth", [None, 1, 2])
def test_boxes_cover_every_layer_once(name, depth):
    arch = archspec.load(name)
    d = build(arch, depth)
    ids = {b.id for b in d.boxes}
    assert len(ids) == len(d.boxes)
    assert all(a in ids and b in ids and a != b for a, b in d.edges)
    # the parameters of the boxes add up to the network's, counted from the op table
    assert sum(b.params for b in d.boxes) == params_of(arch, "")
    layers = sum(int(re.search(r"(\d+) layers", b.detail).group(1)) if b.kind == "group" else 1
                 for b in d.boxes if b.kind not in ("input", "output"))
    assert layers == len(arch.nodes)
    if depth:
        assert all(len(b.id.split(".")) <= depth for b in d.boxes if b.kind not in ("input", "output"))
    else:
        assert len([b for b in d.boxes if b.kind == "merge"]) == sum(REGISTRY[n.op].arity is None for n in arch.nodes)
    # every box can be reached from an input or a learnable tensor (a source: ViT's class token)
    reached, frontier = set(), [b.id for b in d.boxes if b.kind in ("input", "param")]
    while frontier:
        x = frontier.pop()
        if x not in reached:
            reached.add(x)
            frontier += [b for a, b in d.edges if a == x]
    assert reached == ids


def test_residual_adds_are_merges_until_collapsed():
    arch = archspec.load("resnet18")
    full = build(arch)
    assert full.box("layer1.0.add").kind == "merge"
    assert ("layer1.0.bn2", "layer1.0.add") in full.edges and ("maxpool", "layer1.0.add") in full.edges
    collapsed = build(arch, 2)
    assert "layer1.0.add" not in {b.id for b in collapsed.boxes}
    assert collapsed.box("layer1.0").detail.startswith("basic")
    assert ("layer1.0", "layer1.1") in collapsed.edges


def test_mermaid_text(tmp_path):
    arch = archspec.load("googlenet")
    text = to_mermaid(build(arch, 2))
    assert text.splitlines()[3] == "flowchart TB"
    assert re.search(r'n\d+\(\("inception3a\.cat<br/>concat<br/>\[256, 28, 28\]"\)\):::merge', text)
    assert 'subgraph c' in text and '["inception3a (inception)"]' in text
    assert text.count(" --> ") == len(build(arch, 2).edges)
    # .md wraps it in a fence that GitHub renders
    assert main(["diagram", "googlenet", "--depth", "2", "-o", str(tmp_path / "g.md")]) == 0
    md = (tmp_path / "g.md").read_text()
    assert md.startswith("```mermaid\n") and md.endswith("```\n") and text in md


def test_dot_text_and_format_option(tmp_path, capsys):
    arch = archspec.load("resnet18")
    dot = to_dot(build(arch, 1))
    assert dot.startswith('digraph "resnet18" {') and '"layer1" -> "layer2";' in dot
    assert render_bytes(arch, "dot", 1).decode() == dot
    assert main(["diagram", "resnet18", "--depth", "1", "--format", "dot", "-o", "-"]) == 0
    assert capsys.readouterr().out == dot


@pytest.mark.parametrize("argv, message", [
    (["-o", "x.txt"], "cannot tell the diagram format"),
    (["-o", "-"], "needs --format"),
    (["-o", "-", "--format", "png"], "not written to standard output"),
    (["-o", "x.svg", "--depth", "-1"], "--depth"),
])
def test_diagram_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "resnet18", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

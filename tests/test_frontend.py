"""The language front end: features, naming, shapes, overrides, packaging guards."""
from __future__ import annotations

import subprocess
import sys

import pytest

import archspec
from archspec import SpecError
from archspec.expressions import make_divisible, parse_number
from helpers import ROOT, load_spec as spec


def names(arch):
    return [n.name for n in arch.nodes]


# ---------------------------------------------------------------- numbers and expressions

@pytest.mark.parametrize("text, value", [
    ("1_000", 1000), ("26M", 26_000_000), ("4.2G", 4_200_000_000), ("3K", 3000), ("0.5", 0.5), ("1e-3", 0.001),
])
def test_number_literals(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("v, d, expected", [
    (16, 8, 16), (32 * 0.5, 8, 16), (24 * 1.4, 8, 32), (1280 * 1.4, 8, 1792), (7, 8, 8), (100, 8, 104), (3.9, 8, 8),
])
def test_make_divisible_follows_torchvision(v, d, expected):
    # Hand-computed: nearest multiple of d, at least d, never below 90% of v.
    assert make_divisible(v, d) == expected


EXPRESSIONS = [
    ("7 // 2", 3), ("7 % 4", 3), ("2 ** 10", 1024), ("-3 + 5 * 2", 7), ("1 / 4", 0.25),
    ("3 if 2 > 1 else 4", 3), ("not (1 == 1) or true", True), ("[1, 2, 3][1:]", [2, 3]),
    ("[x * 2 for x in range(4) if x != 2]", [0, 2, 6]), ("sum([1, 2, 3])", 6), ("len([0] * 5)", 5),
    ("max(3, 9, 4)", 9), ("min([5, 2])", 2), ("ceil(2.1)", 3), ("floor(2.9)", 2), ("round(2.5)", 2),
    ("int(7.9)", 7), ("abs(-4)", 4), ("[i for i, c in enumerate([5, 6])]", [0, 1]),
    ("[a + b for a, b in zip([1, 2], [10, 20])]", [11, 22]), ("make_divisible(20, 8)", 24), ("(1, 2)[0]", 1),
]


@pytest.mark.parametrize("expr, value", EXPRESSIONS)
def test_expressions(tmp_path, expr, value):
    arch = spec(tmp_path, f"""
        arch t
        param v = {expr}
        input x: [3, 8, 8]
        network {{ relu() }}
    """)
    assert arch.params["v"] == value


# ---------------------------------------------------------------- naming

def test_unlabeled_statements_are_numbered_like_sequential(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [3, 32, 32]
        block cbr(c) { conv(c, 3, pad = 1, bias = false); bn(); relu() }
        network {
            features: {
                conv(8, 3, pad = 1);  relu()
                for c in [16, 32] { cbr(c) }
                pool: maxpool(2)
            }
            flatten();  head: linear(10)
        }
    """)
    assert names(arch) == ["features.0", "features.1", "features.2.0", "features.2.1", "features.2.2",
                           "features.3.0", "features.3.1", "features.3.2", "features.pool", "1", "head"]


def test_label_interpolation_and_repeat(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [4, 8, 8]
        network {
            for i in range(2) { stage{i + 1}: repeat 2 as j { conv(4, 1) } }
        }
    """)
    assert names(arch) == ["stage1.0", "stage1.1", "stage2.0", "stage2.1"]


def test_duplicate_labels_are_an_error(tmp_path):
    with pytest.raises(SpecError) as e:
        spec(tmp_path, """
            arch t
            input x: [4, 8, 8]
            network { a: relu(); a: relu() }
        """)
    d = e.value.first
    assert "used twice" in d.message and (d.pos.line, d.pos.col) == (4, 22)


# ---------------------------------------------------------------- merges and named tensors

def test_residual_with_and_without_projection(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [8, 16, 16]
        block unit(c, stride = 1) {
            residual { conv(c, 3, stride = stride, pad = 1) } shortcut if stride != 1 or in.channels != c {
                proj: conv(c, 1, stride = stride)
            }
        }
        network { a: unit(8); b: unit(16, stride = 2) }
    """)
    by = {n.name: n for n in arch.nodes}
    assert by["a.add"].inputs == ("a.0", "x")            # identity shortcut
    assert by["b.add"].inputs == ("b.0", "b.proj")       # projection shortcut
    assert by["b.add"].shape == (16, 8, 8)


def test_conditional_residual_off_means_no_add(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [8, 16, 16]
        network { residual if in.channels == 16 { conv(8, 1) } }
    """)
    assert [n.op for n in arch.nodes] == ["conv"]


def test_dense_gate_and_branches(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [8, 16, 16]
        network {
            dense { conv(4, 3, pad = 1) }
            se: gate { gap(); conv(3, 1); relu(); conv(12, 1); sigmoid() }
            inc: { branch concat {
                b1: conv(2, 1)
                b2: { conv(2, 1); conv(3, 3, pad = 1) }
                b3: { maxpool(3, stride = 1, pad = 1); conv(1, 1) }
            } }
            branch add { conv(6, 1); conv(6, 3, pad = 1) }
        }
    """)
    by = {n.name: n for n in arch.nodes}
    assert by["cat"].shape == (12, 16, 16)
    assert by["se.mul"].inputs == ("cat", "se.4") and by["se.mul"].shape == (12, 16, 16)
    assert by["inc.cat"].shape == (6, 16, 16) and len(by["inc.cat"].inputs) == 3
    assert by["add"].shape == (6, 16, 16)


def test_named_tensors_and_several_outputs(tmp_path):
    arch = spec(tmp_path, """
        arch t
        param aux = true
        input x: [3, 32, 32]
        network {
            c1: conv(8, 3, stride = 2, pad = 1);  save s1
            c2: conv(16, 3, stride = 2, pad = 1);  save s2
            if aux { side: from s1 { gap(); flatten(); fc: linear(5) };  save a }
            top: from s2 { conv(8, 1) }
            save t
            up: from s1 { maxpool(2) };  save s1d
            merged: cat(t, s1d)
            gap();  flatten();  fc: linear(10);  save logits
            output logits, a
        }
    """)
    assert [(o.name, o.node) for o in arch.outputs] == [("logits", "fc"), ("a", "side.fc")]
    assert arch.node("merged").inputs == ("top.0", "up.0") and arch.node("merged").shape == (16, 8, 8)


def test_channel_mismatch_in_add_names_both_shapes(tmp_path):
    with pytest.raises(SpecError) as e:
        spec(tmp_path, """
            arch t
            input x: [8, 16, 16]
            network { residual { conv(4, 1) } }
        """)
    d = e.value.first
    assert "[4, 16, 16]" in d.message and "[8, 16, 16]" in d.message
    assert d.pos.line == 4 and d.hint


# ---------------------------------------------------------------- parameters, variants, blocks as values

FAMILY = """
    arch fam
    param width = 1.0
    param classes = 10
    input x: [3, 32, 32]
    variant small { unit = plain; depth = 1 }
    variant big   { unit = doubled; depth = 3; width = 2.0 }
    block plain(c) { conv(c, 3, pad = 1) }
    block doubled(c) { conv(c, 3, pad = 1); conv(c, 3, pad = 1) }
    network {
        repeat depth { unit(int(8 * width)) }
        gap();  flatten();  fc: linear(classes)
    }
"""


def test_variants_choose_blocks_and_set_params(tmp_path):
    small = spec(tmp_path, FAMILY, variant="small")
    big = spec(tmp_path, FAMILY, variant="big")
    assert [n.op for n in small.nodes].count("conv") == 1
    assert [n.op for n in big.nodes].count("conv") == 6
    assert big.node("0.0").shape[0] == 16


def test_family_without_variant_lists_them(tmp_path):
    with pytest.raises(SpecError) as e:
        spec(tmp_path, FAMILY)
    assert "small" in e.value.first.hint and "big" in e.value.first.hint


def test_overrides_are_typed_and_checked(tmp_path):
    arch = spec(tmp_path, FAMILY, variant="small", classes=3, width=2)
    assert arch.node("fc").shape == (3,) and arch.params["width"] == 2
    with pytest.raises(SpecError, match="unknown parameter 'clases'.*"):
        spec(tmp_path, FAMILY, variant="small", clases=3)
    with pytest.raises(SpecError, match="parameter 'classes' is int"):
        spec(tmp_path, FAMILY, variant="small", classes=2.5)


def test_recursion_is_an_error(tmp_path):
    with pytest.raises(SpecError, match="calls itself"):
        spec(tmp_path, """
            arch t
            input x: [3, 8, 8]
            block a() { b() }
            block b() { a() }
            network { a() }
        """)


def test_use_shares_blocks(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.arch").write_text("block cbr(c) { conv(c, 3, pad = 1); bn(); relu() }\n")
    arch = spec(tmp_path, """
        use "lib/common.arch"
        arch t
        input x: [3, 8, 8]
        network { stem: cbr(4) }
    """)
    assert names(arch) == ["stem.0", "stem.1", "stem.2"]
    assert any(s.name == "stem" and s.block == "cbr" for s in arch.scopes)


def test_every_node_keeps_its_position(tmp_path):
    arch = spec(tmp_path, """
        arch t
        input x: [3, 8, 8]
        network {
            conv(4, 3)
              relu()
        }
    """)
    assert [(n.span.line, n.span.col) for n in arch.nodes] == [(5, 5), (6, 7)]
    assert arch.nodes[0].span.file.endswith("net.arch")


# ---------------------------------------------------------------- shapes of the first zoo models (hand computed)

@pytest.mark.parametrize("model, checkpoints", [
    # 224 -> conv 7x7/2 -> 112 -> maxpool 3/2 -> 56; each later stage halves the size.
    ("resnet50", {"relu": (64, 112, 112), "maxpool": (64, 56, 56), "layer1.2.add": (256, 56, 56),
                  "layer2.0.add": (512, 28, 28), "layer3.5.add": (1024, 14, 14), "layer4.2.add": (2048, 7, 7),
                  "fc": (1000,)}),
    ("resnet18", {"layer1.1.add": (64, 56, 56), "layer4.1.add": (512, 7, 7), "avgpool": (512, 1, 1)}),
    ("resnext50_32x4d", {"layer1.0.conv2": (128, 56, 56), "layer4.0.conv2": (1024, 7, 7)}),
    ("wide_resnet50_2", {"layer1.0.conv1": (128, 56, 56), "layer4.2.conv3": (2048, 7, 7)}),
])
def test_resnet_shapes(model, checkpoints):
    arch = archspec.load(model)
    shapes = arch.shapes()
    for name, shape in checkpoints.items():
        assert shapes[name] == shape, name


def test_input_size_override():
    arch = archspec.load("resnet18", input_size=(64, 64))
    assert arch.inputs[0].shape == (3, 64, 64) and arch.node("layer4.1.add").shape == (512, 2, 2)


# ---------------------------------------------------------------- guards

def test_language_package_never_imports_torch_or_onnx():
    code = ("import archspec, sys; archspec.load('resnet50'); import archspec.cli; archspec.cli.build_parser(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'numpy')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_analyze_imports_neither_pydantic_nor_lark():
    """Start-up is most of `archspec analyze`'s time: loading and analyzing a spec must not import pydantic
    (only IR validation and the schema use it) or the lark package (the parser is vendor/lark_parser.py)."""
    code = ("import sys, archspec.cli; archspec.cli.main(['analyze', 'resnet50', '--format', 'json']); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core', 'lark')]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"params": 25557032' in r.stdout


def test_ir_validation_is_pydantics():
    """The IR's dataclasses are checked by pydantic with extra fields forbidden and types enforced."""
    from pydantic import ValidationError
    data = archspec.load("resnet18").model_dump()
    data["nodes"][0]["colour"] = "red"
    with pytest.raises(ValidationError, match="colour"):
        archspec.Architecture.model_validate(data)
    data = archspec.load("resnet18").model_dump()
    data["budgets"] = [{"metric": "speed", "op": "<=", "limit": 1, "span": data["nodes"][0]["span"]}]
    with pytest.raises(ValidationError, match="metric"):
        archspec.Architecture.model_validate(data)
    data = archspec.load("resnet18").model_dump()
    data["nodes"][0]["shape"] = "big"
    with pytest.raises(ValidationError, match="shape"):
        archspec.Architecture.model_validate(data)


def test_public_api_is_stable():
    for name in ("load", "SpecError", "Architecture", "Limits", "list_models", "__version__"):
        assert name in archspec.__all__ and hasattr(archspec, name)


def test_ir_schema_is_published_and_ir_round_trips():
    schema = archspec.Architecture.model_json_schema()
    assert schema["additionalProperties"] is False and "nodes" in schema["properties"]
    arch = archspec.load("resnet18")
    again = archspec.Architecture.model_validate_json(arch.model_dump_json())
    assert again == arch


def test_ir_is_frozen():
    arch = archspec.load("resnet18")
    with pytest.raises(Exception):
        arch.nodes[0].name = "x"  # type: ignore[misc]


def test_vendored_parser_is_current_and_equivalent():
    """archspec/vendor/lark_parser.py was made from the grammar as it is, by the pinned Lark, and parses every
    zoo file to the same tree as Lark building the grammar itself."""
    import lark
    from lark import Lark

    from archspec.vendor import lark_parser

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_parser
    finally:
        sys.path.pop(0)
    from archspec.parser import _BracketNewlines, _parser
    stale = "the grammar or Lark changed: run `python scripts/gen_parser.py`"
    assert lark_parser.GRAMMAR == gen_parser.GRAMMAR.read_text(encoding="utf-8"), stale
    assert lark_parser.__version__ == lark.__version__, stale
    fresh = Lark(gen_parser.GRAMMAR.read_text(), **gen_parser.LARK_OPTIONS, postlex=_BracketNewlines())
    for path in sorted((ROOT / "specs").glob("*.arch")):
        text = path.read_text()
        assert _parser().parse(text) == fresh.parse(text), path.name


def test_cli_errors_have_no_traceback(tmp_path):
    bad = tmp_path / "bad.arch"
    bad.write_text("arch t\ninput x: [3, 8, 8]\nnetwork { cnv(4, 3) }\n")
    r = subprocess.run([sys.executable, "-m", "archspec", "check", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "bad.arch:3:11" in r.stderr and "did you mean 'conv'" in r.stderr and "^^^" in r.stderr


@pytest.mark.parametrize("model", archspec.list_models())
def test_constructed_ir_passes_the_schema(model):
    # The lowering builds the IR dataclasses without pydantic (from values it checked itself);
    # the schema must still accept every zoo model unchanged.
    arch = archspec.load(model)
    again = archspec.Architecture.model_validate(arch.model_dump())
    assert again == arch
    assert archspec.Architecture.model_validate_json(arch.model_dump_json()) == arch


def test_check_accepts_a_block_library_and_reports_its_syntax_errors(tmp_path, capsys):
    from archspec.cli import main
    (tmp_path / "common.arch").write_text("block cbr(c) { conv(c, 3, pad = 1); bn(); relu() }\n")
    assert main(["check", str(tmp_path / "common.arch")]) == 0
    assert "library of 1 blocks" in capsys.readouterr().out
    (tmp_path / "broken.arch").write_text("block cbr(c { relu() }\n")
    assert main(["check", str(tmp_path)]) == 1
    assert "broken.arch:1:13" in capsys.readouterr().err


def test_op_arguments_are_checked_without_coercion():
    from archspec.ops import REGISTRY, ArgError
    from archspec.ops.base import Attrs
    Conv, BN = REGISTRY["conv"].Args, REGISTRY["bn"].Args
    assert Conv(out=8.0, kernel=[3, 3]).as_dict()["out"] == 8  # an integral float is an int
    assert type(BN(eps=1).eps) is float  # an int is a float
    cases = [(lambda: Conv(out=8, kernel=[3, 0]), "invalid", "must be positive, got 0 in [3, 0]"),
             (lambda: Conv(out=True, kernel=3), "invalid", "expects an integer, got true"),
             (lambda: BN(eps=float("nan")), "invalid", "expects a finite number, got nan"),
             (lambda: BN(momentum=-0.5), "invalid", "must be greater than or equal to 0, got -0.5"),
             (lambda: Conv(kernel=3), "missing", ""),
             (lambda: Conv(out=8, kernel=3, strde=2), "unknown", "")]
    for make, problem, text in cases:
        with pytest.raises(ArgError) as info:
            make()
        assert (info.value.problem, info.value.text) == (problem, text)
    with pytest.raises(AttributeError):
        Conv(out=8, kernel=3).out = 9
    with pytest.raises(TypeError, match="not one of"):
        class Bad(Attrs):  # noqa: F841
            size: "str"

"""The typed syntax tree (archspec/syntax.py) and the keywords written once (archspec/parser.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import archspec
from archspec import SpecError, syntax
from archspec.limits import Limits
from archspec.parser import KEYWORDS, RESERVED, parse, pos_of

ROOT = Path(__file__).resolve().parent.parent

SPEC = """arch t
param width = 8
input x: [3, 8, 8]
variant small { width = 4 }
block unit(c, k = 3) {
    conv(c, k)
    save s
}
network {
    stem: conv(width, 3)
    repeat 2 as i {
        layer{i}: unit(width)
    }
    residual if width > 2 { relu() } shortcut { conv(width, 1) }
    output x
}
"""


def test_declarations_and_statements_are_typed_nodes_with_positions():
    tree = parse(SPEC, "t.arch")
    kinds = [type(item).__name__ for item in tree.items]
    assert kinds == ["ArchDecl", "ParamDecl", "InputDecl", "VariantDecl", "BlockDecl", "NetworkDecl"]
    block = tree.items[4]
    assert block.name == "unit" and [p.name for p in block.params] == ["c", "k"]
    assert block.params[0].default is None and block.params[1].default is not None
    network = tree.items[5].body
    stem, loop, residual, output = network.stmts
    assert isinstance(stem, syntax.Labeled) and isinstance(stem.stmt, syntax.Call) and stem.stmt.name == "conv"
    assert isinstance(loop, syntax.Repeat) and loop.var == "i"
    inner = loop.body.stmts[0]
    assert isinstance(inner.label.parts[1], syntax.LabelExpr)
    assert isinstance(residual, syntax.Residual) and residual.cond is not None and residual.shortcut is not None
    assert isinstance(output, syntax.Output) and output.training is None and output.names == ("x",)
    p = pos_of(loop, "t.arch")
    assert (p.line, p.col, p.end_line) == (11, 5, 13)
    assert [type(s).__name__ for s in syntax.statements(network)] == [
        "Labeled", "Call", "Repeat", "Labeled", "Call", "Residual", "Call", "Call", "Output"]


def test_expressions_are_typed_nodes():
    tree = parse("arch t\nparam p = f(1, k = [2, 3][0:1]) if not a.b else -x ** 2\n", "t.arch")
    value = tree.items[1].value
    assert isinstance(value, syntax.IfExp)
    call = value.then
    assert isinstance(call, syntax.CallExpr) and call.fn == syntax.Var(None, "f")
    one, k = call.args.items
    assert one.rule == "number" and one.token == "1"
    assert isinstance(k, syntax.Kwarg) and k.name == "k" and isinstance(k.value.sub, syntax.Slice)
    assert isinstance(value.cond, syntax.Unary) and value.cond.rule == "not_" and isinstance(value.cond.operand, syntax.Attr)
    assert value.other.rule == "neg" and value.other.operand.rule == "pow"
    p = pos_of(k.value, "t.arch")
    assert (p.line, p.col, p.end_col) == (2, 20, 31)


def test_equality_ignores_positions():
    moved = SPEC.replace("network {", "\n\nnetwork {").replace("    stem:", "        stem:")
    assert parse(moved, "t.arch") == parse(SPEC, "t.arch")
    assert parse(SPEC.replace("width, 3", "width, 5"), "t.arch") != parse(SPEC, "t.arch")


@pytest.mark.parametrize("statement", ["if false { relu() } " + "else if false { relu() } " * 3000 + "else { relu() }",
                                       "{ " * 400 + "relu()" + " }" * 400])
def test_deep_nesting_is_the_lowerings_error_not_a_crash(tmp_path, statement):
    spec = tmp_path / "deep.arch"
    spec.write_text("arch t\ninput x: [3, 8, 8]\nnetwork {\n" + statement + "\n}\n")
    with pytest.raises(SpecError, match="nests blocks, statements or values too deeply"):
        archspec.load(spec, limits=Limits(max_nesting=1000))


def test_keywords_are_the_grammars_quoted_words():
    grammar = (ROOT / "grammar" / "archspec.lark").read_text(encoding="utf-8")
    assert KEYWORDS == set(re.findall(r'"([a-z]+)"', grammar))
    assert RESERVED == KEYWORDS - {"training"}
    from archspec import formatter
    from archspec.lower import KEYWORDS as lowering_keywords
    assert lowering_keywords == RESERVED and formatter.KEYWORDS < KEYWORDS


def test_only_syntax_reads_lark_children():
    """The lowering, the evaluator, the modules and the language server read named fields, not Lark children
    by position."""
    files = [*(ROOT / "archspec" / "lower").glob("*.py"), ROOT / "archspec" / "modules.py",
             ROOT / "archspec" / "expressions.py", *(ROOT / "archspec" / "lsp").glob("*.py")]
    for f in files:
        assert ".children" not in f.read_text(encoding="utf-8"), f

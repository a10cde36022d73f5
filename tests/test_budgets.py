"""Budgets: `budget METRIC OP LIMIT` on the network or a scope, enforced by `archspec check`."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import archspec
from archspec.budgets import check_budgets, evaluate, measure
from archspec.cli import main
from archspec.resources import zoo_dir
from helpers import ROOT, write_spec

# Hand counts for the spec below (input 3x32x32):
#   a: conv 3->8 3x3 pad 1 + relu   params 8*3*9 + 8 = 224, MACs 8*32*32 * 27 = 221,184
#   b: conv 8->16 3x3 pad 1 + relu  params 16*8*9 + 16 = 1,168, MACs 16*32*32 * 72 = 1,179,648
#   head: bn(16) (32 params), gap, flatten, linear 16->10 (170 params, 160 MACs)
A_PARAMS, A_MACS = 8 * 3 * 9 + 8, 8 * 32 * 32 * 27
B_PARAMS, B_MACS = 16 * 8 * 9 + 16, 16 * 32 * 32 * 72
HEAD_PARAMS, HEAD_MACS = 2 * 16 + 16 * 10 + 10, 16 * 10
TOTAL_PARAMS, TOTAL_MACS = A_PARAMS + B_PARAMS + HEAD_PARAMS, A_MACS + B_MACS + HEAD_MACS


def spec(tmp_path, budgets: str = "", unit_budget: str = "", head_budget: str = "", name="net.arch") -> Path:
    text = f"""\
arch small
input x: [3, 32, 32]
{budgets}

block unit(c) {{
    {unit_budget}
    conv(c, 3, pad = 1);  relu()
}}

network {{
    a: unit(8)
    b: unit(16)
    head: {{
        {head_budget}
        bn();  gap();  flatten();  linear(10)
    }}
}}
"""
    return write_spec(tmp_path, text, name, dedent=False)


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_hand_counts_match_the_analysis(tmp_path):
    report = archspec.analyze(archspec.load(spec(tmp_path)))
    assert (report.params, report.macs) == (TOTAL_PARAMS, TOTAL_MACS)
    assert (measure(report, "params", "a"), measure(report, "macs", "b")) == (A_PARAMS, B_MACS)
    assert measure(report, "flops", "head") == 2 * HEAD_MACS
    assert measure(report, "params", "head") == HEAD_PARAMS
    # memory of a scope: its layers' outputs, float32: conv and relu, 8x32x32 each
    assert measure(report, "memory", "a") == 2 * 8 * 32 * 32 * 4
    assert measure(report, "memory") == report.memory.peak


@pytest.mark.parametrize("budget, holds", [
    (f"budget params <= {TOTAL_PARAMS}", True),
    (f"budget params <= {TOTAL_PARAMS - 1}", False),
    (f"budget params < {TOTAL_PARAMS + 1}", True),
    (f"budget params < {TOTAL_PARAMS}", False),
    (f"budget params == {TOTAL_PARAMS}", True),
    (f"budget params != {TOTAL_PARAMS}", False),
    (f"budget params >= {TOTAL_PARAMS}", True),
    (f"budget params > {TOTAL_PARAMS}", False),
    ("budget params <= 2K", TOTAL_PARAMS <= 2000),
    ("budget macs <= 1.5M", TOTAL_MACS <= 1_500_000),
    ("budget macs <= 1.4M", TOTAL_MACS <= 1_400_000),
    (f"budget flops >= {2 * TOTAL_MACS}", True),
    (f"budget flops > {2 * TOTAL_MACS}", False),
    ("budget buffers <= 100", True),
    ("budget memory <= 1G", True),
    ("budget memory <= 1K", False),
])
def test_network_budget(tmp_path, budget, holds, capsys):
    path = spec(tmp_path, budgets=budget)
    arch = archspec.load(path)
    assert arch.budgets[0].scope == ""
    broken = check_budgets(arch)
    assert (not broken) == holds
    assert main(["check", str(path)]) == (0 if holds else 1)
    out, err = capsys.readouterr()
    if holds:
        assert "1 budget met" in out
    else:
        # the position of the budget that broke, the line and a caret under it
        line = line_of(path, budget)
        assert f"{path}:{line}:1" in err or f"net.arch:{line}:1" in err
        assert f"{line} | {budget}" in err and "^^^^^^" in err
        assert "budget broken" in err and "FAIL" in err and "Traceback" not in err


def test_scope_budget_in_a_group(tmp_path, capsys):
    ok = spec(tmp_path, head_budget=f"budget params <= {HEAD_PARAMS}")
    assert main(["check", str(ok)]) == 0
    bad = spec(tmp_path, head_budget=f"budget params <= {HEAD_PARAMS - 1}", name="bad.arch")
    arch = archspec.load(bad)
    assert [b.scope for b in arch.budgets] == ["head"]
    (d,) = check_budgets(arch)
    assert d.pos.line == line_of(bad, "budget params") and d.pos.col == 9
    assert f"scope 'head' is {HEAD_PARAMS:,}" in d.message
    assert main(["check", str(bad)]) == 1
    assert f"bad.arch:{d.pos.line}:9" in capsys.readouterr().err


def test_budget_in_a_block_applies_to_every_call(tmp_path, capsys):
    # a: 224 params, b: 1,168 params: a limit of 1,000 holds for a and breaks for b
    path = spec(tmp_path, unit_budget="budget params <= 1000")
    arch = archspec.load(path)
    assert [b.scope for b in arch.budgets] == ["a", "b"]
    results = evaluate(arch)
    assert [(r.budget.scope, r.value, r.ok) for r in results] == [("a", A_PARAMS, True), ("b", B_PARAMS, False)]
    (d,) = check_budgets(arch)
    assert "scope 'b'" in d.message and d.pos.line == line_of(path, "budget params <= 1000")
    assert main(["check", str(path)]) == 1
    assert re.search(r"1 of 2 budgets broken", capsys.readouterr().err)


def test_every_broken_budget_is_reported(tmp_path, capsys):
    path = spec(tmp_path, budgets="budget params <= 10\nbudget macs <= 10", unit_budget="budget params <= 1",
                head_budget="budget flops <= 1")
    assert len(check_budgets(archspec.load(path))) == 5
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err.count("error: budget broken") == 5


def test_budget_on_a_scope_without_layers(tmp_path):
    path = tmp_path / "e.arch"
    path.write_text(textwrap.dedent("""\
        arch e
        input x: [3, 8, 8]
        block nothing() { budget params <= 1 }
        network { conv(4, 1);  empty: nothing() }
        """))
    (d,) = check_budgets(archspec.load(path))
    assert "holds no layers" in d.message


@pytest.mark.parametrize("text, message", [
    ("budget weights <= 1M", "unknown budget metric 'weights'"),
    ('budget params <= "big"', "a budget limit must be a number"),
])
def test_bad_budgets_are_spec_errors(tmp_path, text, message, capsys):
    path = spec(tmp_path, budgets=text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and f":{line_of(path, text)}:" in err


def test_zoo_budgets_hold():
    """Every budget the zoo declares holds (and `archspec check specs/` passes)."""
    for name in archspec.list_models():
        assert check_budgets(archspec.load(name)) == [], name


def test_pre_commit_hook_definition():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    hooks = [block for block in text.split("\n- ")[1:]]
    check = next(h for h in hooks if h.startswith("id: archspec-check"))
    assert re.search(r"^\s*entry: archspec check\s*$", check, re.M)
    assert re.search(r"^\s*files: \\\.arch\$\s*$", check, re.M)
    assert re.search(r"^\s*language: python\s*$", check, re.M)
    fmt = next(h for h in hooks if h.startswith("id: archspec-fmt"))
    assert "entry: archspec fmt --check" in fmt
    # the hooks' commands exist
    from archspec.commands import discover
    assert {"check", "fmt"} <= set(discover())
    assert zoo_dir().is_dir()

"""archspec diff: per-scope deltas between two specs, checked against independent counts."""
from __future__ import annotations

import json
import math

import pytest

import archspec
from archspec.cli import main
from archspec.diff import diff, to_json, to_markdown, to_table
from helpers import ROOT
from refdata import layouts


def bottleneck_params(cin: int, planes: int) -> int:
    """A torchvision Bottleneck without downsample: 1x1, 3x3, 1x1 convs (no bias) and three BNs."""
    out = planes * 4
    return cin * planes + 2 * planes + planes * planes * 9 + 2 * planes + planes * out + 2 * out


def reference_params(model: str, prefix: str = "") -> int:
    """Parameters under a state_dict prefix, from torchvision's layout (BN running stats excluded)."""
    return sum(math.prod(shape) for key, shape in layouts()[model]["state_dict"]
               if key.startswith(prefix) and not key.endswith(("running_mean", "running_var", "num_batches_tracked")))


@pytest.fixture(scope="module")
def r50_r101():
    return diff(archspec.load("resnet50"), archspec.load("resnet101"))


def test_resnet50_to_resnet101_markdown(capsys):
    assert main(["diff", "resnet50", "resnet101", "--format", "md"]) == 0
    md = capsys.readouterr().out
    # layer3 gains 17 bottlenecks of 1024 -> 256 -> 1024 channels
    delta = 17 * bottleneck_params(1024, 256)
    assert delta == 18_992_128
    # the same number from torchvision's state_dict layouts
    assert reference_params("resnet101", "layer3.") - reference_params("resnet50", "layer3.") == delta
    assert reference_params("resnet101") - reference_params("resnet50") == delta
    rows = [line for line in md.splitlines() if line.startswith("| `layer3`")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert "6 → 23" in cells
    assert f"+{delta:,} (+" in rows[0]
    # the totals: 25,557,032 -> 44,549,160 (torchvision's counts)
    params = next(line for line in md.splitlines() if line.startswith("| params |"))
    assert "25,557,032" in params and "44,549,160" in params and f"+{delta:,}" in params
    assert f"{delta / 25_557_032 * 100:+.1f}%" in params
    assert md.startswith("### archspec diff: `resnet50` → `resnet101`")
    # the other scopes are folded into one line
    assert "<details><summary>10 unchanged scopes</summary>" in md


def test_only_layer3_changes(r50_r101):
    assert [r.name for r in r50_r101.changed] == ["layer3"]
    row = r50_r101.row("layer3")
    assert (row.a.blocks, row.b.blocks) == (6, 23)
    assert row.delta("params") == r50_r101.total.params_delta == 17 * bottleneck_params(1024, 256)
    # MACs: each extra block runs on 14x14 maps; a conv's MACs are its weights times the map area
    per_block = (1024 * 256 + 256 * 256 * 9 + 256 * 1024) * 14 * 14
    assert row.delta("macs") == 17 * per_block
    assert row.a.shape == row.b.shape == (1024, 14, 14)
    # receptive field: each extra block adds one 3x3 conv at stride 16
    assert int(row.b.rf) - int(row.a.rf) == 17 * 2 * 16


def test_depth2_lists_the_added_blocks(r50_r101):
    d = diff(archspec.load("resnet50"), archspec.load("resnet101"), depth=2)
    added = [r.name for r in d.rows if r.status == "added"]
    assert added == [f"layer3.{i}" for i in range(6, 23)]
    assert all(r.status == "unchanged" for r in d.rows if r.name.startswith(("layer1", "layer2", "layer4")))
    assert sum(r.delta("params") for r in d.rows) == r50_r101.total.params_delta
    # the rows keep network order: the new blocks sit between layer3.5 and layer4.0
    names = [r.name for r in d.rows]
    assert names.index("layer3.5") < names.index("layer3.6") < names.index("layer3.22") < names.index("layer4.0")


@pytest.mark.parametrize("a, b", [
    ("resnet18", "resnet34"), ("vgg11", "vgg11_bn"), ("densenet121", "densenet169"),
    ("efficientnet_b0", "efficientnet_b1"), ("mobilenet_v2", "mobilenet_v3_large"), ("googlenet", "googlenet_original"),
    ("alexnet", "alexnet_original"),
])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_scope_deltas_add_up_to_the_totals(a, b, depth):
    d = diff(archspec.load(a), archspec.load(b), depth=depth)
    ra, rb = archspec.analyze(archspec.load(a)), archspec.analyze(archspec.load(b))
    assert d.total.params == (ra.params, rb.params)
    for metric in ("params", "macs", "memory", "layers"):
        total = {"params": rb.params - ra.params, "macs": rb.macs - ra.macs,
                 "memory": rb.memory.outputs - ra.memory.outputs,
                 "layers": len(rb.layers) - len(ra.layers)}[metric]
        assert sum(r.delta(metric) for r in d.rows) == total, metric
    data = json.loads(to_json(d))
    assert data["total"]["params"]["delta"] == rb.params - ra.params
    assert len(data["scopes"]) == len(d.rows)


def test_a_spec_against_itself_has_no_change():
    arch = archspec.load("densenet121")
    d = diff(arch, archspec.load("densenet121"), depth=3)
    assert d.changed == [] and d.total.params_delta == 0
    assert "0 changed scopes" in to_markdown(d) and "No scope changed." in to_markdown(d)


def test_a_parameter_override_on_one_side(capsys):
    assert main(["diff", "resnet50", "--set-b", "num_classes=10", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    changed = [s for s in data["scopes"] if s["status"] != "unchanged"]
    assert [s["name"] for s in changed] == ["fc"]
    assert changed[0]["delta"]["params"] == (10 - 1000) * (2048 + 1)
    assert changed[0]["b"]["shape"] == [10]
    assert data["b"] == "resnet50 num_classes=10"


def test_two_variants_of_one_file(capsys):
    spec = str(ROOT / "specs" / "resnet.arch")
    assert main(["diff", spec, "--variant-a", "resnet18", "--variant-b", "resnet34"]) == 0
    out = capsys.readouterr().out
    assert "11,689,512" in out and "21,797,672" in out  # torchvision's counts
    assert {line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["changed"]} == \
           {"layer1", "layer2", "layer3", "layer4"}


def test_changed_attributes_are_detected_even_with_equal_counts(tmp_path):
    spec = """\
        arch t
        param k = 3
        input x: [3, 16, 16]
        network {
            a: conv(8, k, pad = k // 2)
            b: { conv(8, 1);  relu() }
        }
        """
    import textwrap
    p = tmp_path / "t.arch"
    p.write_text(textwrap.dedent(spec))
    # a dilated 3x3 has the params and MACs of a 3x3 but another receptive field
    d = diff(archspec.load(p), archspec.load(p, k=3))
    assert d.changed == []
    p2 = tmp_path / "u.arch"
    p2.write_text(textwrap.dedent(spec).replace("pad = k // 2)", "pad = 2, dilation = 2)"))
    d = diff(archspec.load(p), archspec.load(p2))
    assert [r.name for r in d.changed] == ["a"]
    row = d.row("a")
    assert row.delta("params") == 0 and (row.a.rf, row.b.rf) == ("3", "5")
    assert "3 → 5" in to_table(d)


def test_removed_scopes(tmp_path):
    import textwrap
    p = tmp_path / "t.arch"
    p.write_text(textwrap.dedent("""\
        arch t
        param extra = true
        input x: [3, 16, 16]
        network {
            a: conv(8, 3)
            if extra { b: conv(8, 3) }
            gap();  flatten();  fc: linear(2)
        }
        """))
    d = diff(archspec.load(p), archspec.load(p, extra=False))
    statuses = {r.name: r.status for r in d.rows}
    assert statuses["b"] == "removed"
    assert d.row("b").delta("params") == -(8 * 8 * 9 + 8)
    assert "8x12x12 → —" in to_table(d)
    # unlabeled layers are numbered by position: gap() and flatten() move from 2, 3 to 1, 2
    assert statuses["3"] == "removed" and statuses["1"] == "added"


def test_diff_errors(capsys):
    assert main(["diff", "resnet50", "nosuchnet"]) == 1
    err = capsys.readouterr().err
    assert "nosuchnet" in err and "Traceback" not in err
    assert main(["diff", "resnet50", "resnet101", "--depth", "0"]) == 1


def test_an_ir_dump_as_the_base(tmp_path, capsys):
    """A build kept from the base branch (`archspec analyze --format ir`) diffs like the spec itself."""
    assert main(["analyze", "resnet50", "--format", "ir"]) == 0
    dump = tmp_path / "base.json"
    dump.write_text(capsys.readouterr().out)
    assert main(["diff", str(dump), "resnet101", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["params"]["delta"] == 17 * bottleneck_params(1024, 256)
    assert main(["diff", str(dump), "resnet101", "--set-a", "num_classes=10"]) == 1
    assert "IR dump" in capsys.readouterr().err

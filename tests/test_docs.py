"""The documentation is tested: every ```arch example in docs/language.md and docs/tutorial.md loads (or
parses, or fails, as it says), is in canonical form, and every op, builtin, keyword, limit, command and
option is documented. The tutorial's commands run."""
from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import archspec
from archspec import SpecError
from archspec.commands import discover
from archspec.formatter import format_text
from archspec.lower import KEYWORDS
from archspec.ops import REGISTRY
from archspec.parser import parse
from helpers import ROOT

DOCS = ROOT / "docs"
LANGUAGE = DOCS / "language.md"
TUTORIAL = DOCS / "tutorial.md"
CLI = DOCS / "cli.md"


@dataclass
class Example:
    doc: str
    line: int
    kind: str          # "spec", "fragment" or "error"
    file: str | None   # `arch file=NAME`: saved under NAME for later examples to `use`
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def examples(path: Path) -> list[Example]:
    out = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```arch\b(.*)$", lines[i])
        if m:
            info = m.group(1).split()
            start = i + 1
            j = start
            while lines[j] != "```":
                j += 1
            kind = "fragment" if "fragment" in info else "error" if "error" in info else "spec"
            file = next((x.split("=", 1)[1] for x in info if x.startswith("file=")), None)
            out.append(Example(path.name, start, kind, file, "\n".join(lines[start:j]) + "\n"))
            i = j
        i += 1
    return out


ALL = examples(LANGUAGE) + examples(TUTORIAL)


def write_library(tmp_path: Path, doc: str) -> None:
    """Examples marked `file=NAME` are files that other examples of the same page `use`."""
    for ex in ALL:
        if ex.file and ex.doc == doc:
            (tmp_path / ex.file).write_text(ex.text)


def wrapped(text: str) -> str:
    return "network {\n" + textwrap.indent(text, "    ") + "}\n"


def test_there_are_examples():
    kinds = [e.kind for e in examples(LANGUAGE)]
    assert kinds.count("spec") >= 20 and "fragment" in kinds and "error" in kinds
    assert examples(TUTORIAL)


@pytest.mark.parametrize("ex", ALL, ids=str)
def test_example(ex: Example, tmp_path):
    write_library(tmp_path, ex.doc)
    if ex.kind == "fragment":
        # declarations parse as they are; statements parse inside a body
        try:
            parse(ex.text, str(ex))
            canonical = format_text(ex.text)
            assert canonical == ex.text, f"{ex}: not in canonical form (run archspec fmt):\n{canonical}"
        except SpecError:
            parse(wrapped(ex.text), str(ex))
            assert format_text(wrapped(ex.text)) == wrapped(ex.text), f"{ex}: not in canonical form"
        return
    assert format_text(ex.text) == ex.text, f"{ex}: not in canonical form:\n{format_text(ex.text)}"
    path = tmp_path / (ex.file or "example.arch")
    path.write_text(ex.text)
    if ex.kind == "error":
        with pytest.raises(SpecError) as exc:
            arch = archspec.load(path)
            from archspec.budgets import check_budgets
            broken = check_budgets(arch)
            if broken:
                raise SpecError(broken)
        d = exc.value.first
        assert d.pos is not None and d.pos.line >= 1, f"{ex}: error without a position"
        return
    if "network" not in ex.text:  # a library file
        parse(ex.text, str(ex))
        return
    variants = re.findall(r"^variant\s+(\w+)", ex.text, re.M) or [None]
    for v in variants:
        arch = archspec.load(path, variant=v)
        assert arch.nodes
        from archspec.budgets import check_budgets
        assert check_budgets(arch) == [], f"{ex}: a budget of a complete example breaks"


# ---------------------------------------------------------------- facts stated by the examples' comments

def load_example(doc: Path, first_line: str, tmp_path, **kw):
    ex = next(e for e in examples(doc) if e.text.startswith(first_line))
    write_library(tmp_path, ex.doc)
    p = tmp_path / "x.arch"
    p.write_text(ex.text)
    return archspec.load(p, **kw)


def test_language_examples_say_what_they_do(tmp_path):
    # the naming example's comments
    names = [n.name for n in load_example(LANGUAGE, "arch naming", tmp_path).nodes]
    assert names[:6] == ["0", "layer1.0.conv1", "layer1.0.1", "layer1.0.conv2", "layer1.0.add", "layer1.0.3"]
    assert names[-4:] == ["1.0", "1.1", "1.2", "1.mul"]
    assert [n.name for n in load_example(LANGUAGE, "arch groups", tmp_path).nodes] == \
           ["features.0", "features.1", "features.2", "classifier.0", "classifier.1"]
    assert load_example(LANGUAGE, "arch counter", tmp_path).nodes[-1].shape[0] == 6
    assert load_example(LANGUAGE, "arch inception_module", tmp_path).nodes[-1].shape == (256, 28, 28)
    arch = load_example(LANGUAGE, "arch widths", tmp_path, width=1.5)
    assert arch.nodes[0].attrs["out"] == 48
    ex = load_example(LANGUAGE, "arch builtins", tmp_path)
    assert [n.attrs["out"] for n in ex.nodes] == [48, 20]
    ex = load_example(LANGUAGE, "arch expressions", tmp_path)
    assert [n.attrs["out"] for n in ex.nodes if n.op == "conv"] == [24, 40, 40, 18]
    two = load_example(LANGUAGE, "arch two_heads", tmp_path)
    assert [o.name for o in two.outputs] == ["logits", "aux_logits"]
    budget = next(e for e in examples(LANGUAGE) if e.text.startswith("arch over_budget"))
    assert "9,472" in LANGUAGE.read_text() and 64 * 3 * 49 + 64 == 9472 and budget


# ---------------------------------------------------------------- completeness, over the registries

LANGUAGE_TEXT = LANGUAGE.read_text()


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_every_op_is_documented(op):
    assert f"`{op}`" in LANGUAGE_TEXT
    # with every argument it takes
    row = next(line for line in LANGUAGE_TEXT.splitlines() if line.startswith("| ") and f"`{op}`" in line)
    for arg in REGISTRY[op].Args.fields:
        assert re.search(rf"\b{arg}\b", row), f"{op}: argument '{arg}' is not in its row"


def test_every_op_is_used_in_a_tested_example():
    used = set()
    for ex in examples(LANGUAGE):
        used |= set(re.findall(r"\b([a-z_0-9]+)\(", ex.text))
    assert set(REGISTRY) <= used, sorted(set(REGISTRY) - used)


def test_every_builtin_is_documented_and_used():
    from archspec.expressions import ExprEvaluator
    builtins = ExprEvaluator("x", archspec.Limits()).builtins
    code = "".join(ex.text for ex in examples(LANGUAGE))
    for name in builtins:
        assert f"`{name}(" in LANGUAGE_TEXT, name
        assert f"{name}(" in code, name


def test_every_keyword_limit_and_init_scheme_is_documented():
    from archspec.ir import INIT_SCHEMES
    from dataclasses import fields
    keywords = next(line for line in LANGUAGE_TEXT.split("\n- ") if line.startswith("**Keywords**"))
    for kw in KEYWORDS:
        assert re.search(rf"[` ]{kw}[` ]", keywords), f"keyword '{kw}' is not listed"
    for f in fields(archspec.Limits):
        row = next((line for line in LANGUAGE_TEXT.splitlines() if line.startswith(f"| `{f.name}` |")), None)
        assert row is not None, f"limit {f.name} is not in the table"
        shown = row.split("|")[2].strip().replace(",", "")
        value = int(shown) if shown.isascii() and shown.isdigit() else 2 ** int(shown.translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789"))[1:])
        assert value == f.default, f"{f.name}: the table says {shown}, the default is {f.default:,}"
    for scheme in INIT_SCHEMES:
        assert f"`{scheme}`" in LANGUAGE_TEXT, scheme


def _commands():
    from archspec.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


@pytest.mark.parametrize("name", sorted(discover()))
def test_every_command_and_option_is_in_cli_md(name):
    text = CLI.read_text()
    assert f"## `archspec {name}`" in text, f"docs/cli.md has no section for '{name}'"
    section = text.split(f"## `archspec {name}`", 1)[1].split("\n## ", 1)[0]
    for action in _commands()[name]._actions:
        longs = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        if longs:
            assert any(o in section for o in longs), f"{name}: option {longs[0]} is not documented"


# ---------------------------------------------------------------- the tutorial runs

def tutorial_steps() -> list[tuple[str, str, list[str]]]:
    """The tutorial's runnable steps in order: ("command", "$ archspec ..." line, the output shown after it,
    up to a "..." line) and ("python", code, [])."""
    steps = []
    for lang, body in re.findall(r"```(console|python)\n(.*?)```", TUTORIAL.read_text(), re.S):
        if lang == "python":
            steps.append(("python", body, []))
            continue
        for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
            lines = chunk.splitlines()
            if lines and lines[0].startswith("$ archspec "):
                shown = []
                for line in lines[1:]:
                    if line.strip() == "...":
                        break
                    shown.append(line.rstrip())
                steps.append(("command", lines[0][2:], shown))
    return steps


@pytest.mark.slow
def test_tutorial_runs(tmp_path, monkeypatch, capsys):
    """Every command of the tutorial runs with the status it shows, prints the lines it shows, and every
    Python snippet runs, in order, in a fresh folder holding the tutorial's spec files."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import contextlib
    import io
    import logging

    from archspec.cli import main
    monkeypatch.chdir(tmp_path)
    for ex in examples(TUTORIAL):
        if ex.file:
            (tmp_path / ex.file).write_text(ex.text)
    steps = tutorial_steps()
    assert {s[1].split()[1] for s in steps if s[0] == "command"} >= \
        {"check", "analyze", "diff", "fmt", "diagram", "compile", "export", "bench"}
    for kind, text, shown in steps:
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(text, "tutorial.md", "exec"), {"__name__": "__tutorial__"})
            for comment in re.findall(r"print\(.*\)\s+# (.*)", text):  # `print(x)  # value` shows the value
                assert comment.strip() in out.getvalue(), (text, out.getvalue())
            continue
        argv = shlex.split(text, comments=True)[1:]
        if argv[0] == "bench":
            argv += ["--iters", "3", "--warmup", "1"]
        status = main(argv)
        captured = capsys.readouterr()
        output = captured.out + captured.err
        assert status == (1 if "# fails" in text else 0), f"{text}\n{output}"
        for line in shown:
            assert line in output.splitlines() or line.strip() in output, f"{text}: not printed: {line!r}\n{output}"
    logging.shutdown()
    assert (tmp_path / "my_net.onnx").stat().st_size > 10_000
    assert (tmp_path / "my_net.svg").read_bytes().lstrip().startswith((b"<?xml", b"<svg"))

"""archspec fmt: canonical form, idempotence, comments kept, same IR after formatting, CLI."""
from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

import archspec
from archspec import SpecError
from archspec.cli import main
from archspec.formatter import format_text
from archspec.resources import zoo_dir
from archspec.zoo import entries

ZOO_FILES = sorted(zoo_dir().glob("*.arch"))
HEAD = "arch t\nparam a = 1\ninput x: [3, 8, 8]\n"


def body(line: str) -> str:
    """A complete spec around one line of a network body (indented as the formatter would)."""
    return HEAD + "network {\n    " + line + "\n}\n"


# One case per line: a body line as written -> its canonical form.
@pytest.mark.parametrize("written, canonical", [
    ("conv(8,3,pad=1,bias=false)", "conv(8, 3, pad = 1, bias = false)"),
    ("conv( 8 , 3 )", "conv(8, 3)"),
    ("y=a*2+-1", "y = a * 2 + -1"),
    ("y = a**2//3 % 2", "y = a ** 2 // 3 % 2"),
    ("y = -(a+1)", "y = -(a + 1)"),
    ("y = [i*2 for i in range( 3 ) if i>0][ 1: ]", "y = [i * 2 for i in range(3) if i > 0][1:]"),
    ("y = [1,2,3][ : 2]", "y = [1, 2, 3][:2]"),
    ("y = a if a>0 else -a", "y = a if a > 0 else -a"),
    ("y = not(a==1) and a!=2 or a<=3", "y = not (a == 1) and a != 2 or a <= 3"),
    ("y = in.channels*2", "y = in.channels * 2"),
    ("y = in . channels", "y = in.channels"),
    ("stem : conv(8, 3)", "stem: conv(8, 3)"),
    ("layer{ a+1 } : conv(8, 3)", "layer{a + 1}: conv(8, 3)"),
    ("repeat 2 as i {relu()}", "repeat 2 as i { relu() }"),
    ("if a==1{relu()}else{identity()}", "if a == 1 { relu() } else { identity() }"),
    ("relu();;relu();", "relu(); relu()"),
    ("{ ; relu() ; }", "{ relu() }"),
    ("relu()  ;  relu()", "relu();  relu()"),           # two spaces after ';' are kept (the zoo's style)
    ("relu();     relu()", "relu();  relu()"),
    ("conv(8,  3)", "conv(8, 3)"),                       # a run of spaces that aligns nothing goes
    ("relu() # why", "relu()  # why"),                  # two spaces before a trailing comment
    ("relu()      # aligned", "relu()      # aligned"),
    ("residual{conv(3,3,pad=1)}shortcut{identity()}", "residual { conv(3, 3, pad = 1) } shortcut { identity() }"),
    ("y = [ ]", "y = []"),
    ("y = ( 1 , )", "y = (1,)"),
    ("y = 26M+1_000", "y = 26M + 1_000"),
    ("y = 'a'", "y = 'a'"),
    # the lexer reads a keyword label's head and its {expr} as a label, spaced or not
    ("block {3}: conv(8, 3)", "block{3}: conv(8, 3)"),
    ("for i in [1] { for j in [2] { block{ i } - {j}: relu() } }",
     "for i in [1] { for j in [2] { block{i}-{j}: relu() } }"),
    ("block1-0 : conv(8, 3)", "block1-0: conv(8, 3)"),
    ("0 : conv(8, 3)", "0: conv(8, 3)"),
    # a dashed label after the two spaces of the zoo's style
    ("relu();    b1-0: relu()", "relu();  b1-0: relu()"),
])
def test_canonical_spacing(written, canonical):
    assert format_text(body(written)) == body(canonical)


@pytest.mark.parametrize("written, canonical", [
    # indentation follows the braces, whatever it was
    (HEAD + "network {\n  relu()\n        relu()\n}\n", HEAD + "network {\n    relu()\n    relu()\n}\n"),
    (HEAD + "block b() {\nrepeat 2 {\nrelu()\n}\n}\nnetwork { b() }\n",
     HEAD + "block b() {\n    repeat 2 {\n        relu()\n    }\n}\nnetwork { b() }\n"),
    # a continuation line keeps its alignment after the open bracket
    (HEAD + "network {\n  y = [[1, 2],\n       [3, 4]]\n  relu()\n}\n",
     HEAD + "network {\n    y = [[1, 2],\n         [3, 4]]\n    relu()\n}\n"),
    # or its offset from the statement's first line
    (HEAD + "network {\n  y = [\n      1,\n  ]\n  relu()\n}\n", HEAD + "network {\n    y = [\n        1,\n    ]\n    relu()\n}\n"),
    # blank lines: at most two at the top, one in a body, none just inside braces; none at the ends
    ("\n\n" + HEAD + "\n\n\n\nnetwork {\n\n    relu()\n\n\n    relu()\n\n}\n\n\n",
     HEAD + "\n\nnetwork {\n    relu()\n\n    relu()\n}\n"),
    # full-line comments are indented with their body; trailing whitespace goes
    (HEAD + "network {\n# first   \n  relu()   \n        # second\n}\n",
     HEAD + "network {\n    # first\n    relu()\n    # second\n}\n"),
    # CRLF line ends become LF; a missing final newline is added
    (HEAD.replace("\n", "\r\n") + "network { relu() }", HEAD + "network { relu() }\n"),
    # runs of spaces that line tokens up with the line above or below are kept: tables stay tables
    (HEAD + "variant a   { x = 1;    y = [1,  2] }\nvariant bbb { x = 22;   y = [10, 2] }\nnetwork { relu() }\n",
     HEAD + "variant a   { x = 1;    y = [1,  2] }\nvariant bbb { x = 22;   y = [10, 2] }\nnetwork { relu() }\n"),
    (HEAD + "variant a   { x = 1 }\n\nvariant bbb { x = 22 }\nnetwork { relu() }\n",
     HEAD + "variant a { x = 1 }\n\nvariant bbb { x = 22 }\nnetwork { relu() }\n"),
    # top-level spacing
    ("arch   t\nparam a=1\ninput x :[3,8,8]\nbudget params<=26M\nvariant v{a=2;}\nnetwork{relu()}\n",
     "arch t\nparam a = 1\ninput x: [3, 8, 8]\nbudget params <= 26M\nvariant v { a = 2 }\nnetwork { relu() }\n"),
])
def test_canonical_layout(written, canonical):
    assert format_text(written) == canonical


def test_label_keywords_and_interpolated_labels_keep_their_meaning(tmp_path):
    text = HEAD + "network {\n  block : {conv(8,3)}\n  for i in [1, 2] { stage{i}_x : relu() }\n}\n"
    out = format_text(text)
    assert "    block: { conv(8, 3) }" in out and "stage{i}_x: relu()" in out
    for name, src in (("a.arch", text), ("b.arch", out)):
        (tmp_path / name).write_text(src)
    assert [n.name for n in archspec.load(tmp_path / "a.arch").nodes] == \
           [n.name for n in archspec.load(tmp_path / "b.arch").nodes] == ["block.0", "stage1_x", "stage2_x"]


def test_backslash_continuation_and_tabs():
    text = HEAD + "network {\n\tconv(8,\\\n\t\t3)  # c\n}\n"
    assert format_text(text) == HEAD + "network {\n    conv(8, \\\n        3)  # c\n}\n"


@pytest.mark.parametrize("broken, message", [("network {\n", "does not parse"),
                                             (HEAD + "network { relu() }\n", "changed the meaning")])
def test_a_formatter_bug_leaves_the_file_alone(monkeypatch, broken, message):
    from archspec import formatter
    monkeypatch.setattr(formatter, "_format", lambda text, file, align=True: broken)
    with pytest.raises(SpecError, match=message):
        format_text(HEAD + "network { conv(8, 3) }\n")


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.name)
def test_the_lexer_gives_every_token_and_comment(path):
    """The formatter's only tokenizer is the parser's lexer: between its tokens lie only the blanks, newlines and
    backslash-newlines the grammar ignores, and comments come in order with the rest."""
    from archspec.parser import lex
    text = path.read_text()
    toks = lex(text, str(path))
    pos = 0
    for tok in toks:
        assert tok.start_pos >= pos and not text[pos:tok.start_pos].replace("\\\n", "").strip(" \t\f\n"), tok
        pos = tok.end_pos
    assert not text[pos:].strip()
    assert [t.value.rstrip() for t in toks if t.type == "COMMENT"] == _comments(text)
    assert lex(text, str(path)) is toks  # cached, like trees


def test_syntax_error_is_reported_with_position_and_nothing_is_written(tmp_path, capsys):
    bad = tmp_path / "bad.arch"
    bad.write_text(HEAD + "network {\n    conv(8, 3\n}\n")
    with pytest.raises(SpecError) as exc:
        format_text(bad.read_text(), str(bad))
    assert exc.value.first.pos.line == 5
    before = bad.read_text()
    assert main(["fmt", str(bad)]) == 1
    assert bad.read_text() == before
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "Traceback" not in err


# ---------------------------------------------------------------- the zoo

def _comments(text: str) -> list[str]:
    return [c.rstrip() for c in re.findall(r"#[^\n]*", text)]  # zoo specs hold no '#' inside strings


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.name)
def test_fmt_is_idempotent_and_keeps_comments_on_zoo_specs(path):
    text = path.read_text()
    once = format_text(text, str(path))
    assert format_text(once, str(path)) == once
    assert _comments(once) == _comments(text)
    assert "\t" not in once and not any(ln != ln.rstrip() for ln in once.splitlines())


def _strip_spans(value):
    if isinstance(value, dict):
        return {k: _strip_spans(v) for k, v in value.items() if k not in ("span", "source")}
    if isinstance(value, (list, tuple)):
        return [_strip_spans(v) for v in value]
    return value


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.name)
def test_formatted_zoo_spec_loads_to_the_same_ir(path, tmp_path):
    # Copy the whole zoo so that `use` between its files still resolves, then format one file.
    shutil.copytree(zoo_dir(), tmp_path / "specs")
    copy = tmp_path / "specs" / path.name
    copy.write_text(format_text(path.read_text(), str(path)))
    models = [e for e in entries().values() if e.path == path]
    assert models
    for e in models:
        want = archspec.load(path, variant=e.variant)
        got = archspec.load(copy, variant=e.variant)
        assert _strip_spans(got.model_dump()) == _strip_spans(want.model_dump()), e.name


def test_zoo_is_formatted():
    """`archspec fmt --check specs/`: run `archspec fmt specs/` after editing a spec."""
    assert main(["fmt", "--check", str(zoo_dir())]) == 0


# ---------------------------------------------------------------- the command

def test_fmt_check_reports_and_fmt_rewrites(tmp_path, capsys):
    messy = tmp_path / "sub" / "m.arch"
    messy.parent.mkdir()
    messy.write_text(HEAD + "network{relu( )}\n")
    clean = tmp_path / "c.arch"
    clean.write_text(HEAD + "network { relu() }\n")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert "would reformat" in capsys.readouterr().out and messy.read_text().endswith("network{relu( )}\n")
    assert main(["fmt", "--diff", str(messy)]) == 1
    assert "+network { relu() }" in capsys.readouterr().out
    assert main(["fmt", str(tmp_path)]) == 0
    assert messy.read_text() == clean.read_text()
    assert main(["fmt", "--check", str(tmp_path)]) == 0


def test_fmt_stdin_to_stdout(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(HEAD + "network{relu( )}"))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == HEAD + "network { relu() }\n"


def test_fmt_missing_file(tmp_path, capsys):
    assert main(["fmt", str(tmp_path / "nope.arch")]) == 1
    assert "no such spec file" in capsys.readouterr().err


def test_schema_command_prints_the_ir_schema(capsys):
    import json
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == {**archspec.Architecture.model_json_schema(), "$schema": schema["$schema"]}
    assert {"Node", "Budget", "Span"} <= set(schema["$defs"])
    # A dumped IR validates against it in the one way this project can check without jsonschema:
    # every field of a real dump is a property of the schema, and every required one is present.
    dump = json.loads(archspec.load("resnet18").model_dump_json())
    assert set(dump) <= set(schema["properties"]) and set(schema["required"]) <= set(dump)
    node = schema["$defs"]["Node"]
    assert set(dump["nodes"][0]) <= set(node["properties"]) and set(node["required"]) <= set(dump["nodes"][0])


def test_every_zoo_file_is_listed():
    assert {Path(e.path).name for e in entries().values()} == {p.name for p in ZOO_FILES}


# ---------------------------------------------------------------- robustness

def _perturb(text: str, seed: int) -> str:
    """The same spec with whitespace scrambled: random indentation, spaces between tokens (kept where two
    words would merge), blank lines, and redundant ';' (never inside brackets or before a continuation)."""
    import random

    from archspec.parser import lex
    rng = random.Random(seed)
    by_line: dict[int, list] = {}
    for tok in lex(text, "perturbed.arch"):
        if tok.type != "_NL":
            by_line.setdefault(tok.line, []).append(tok)
    out_lines = []
    depth = 0
    for k, line in enumerate(text.split("\n"), 1):
        toks = by_line.get(k, [])
        parts = [" " * rng.randint(0, 9)]
        prev = None
        for tok in toks:
            if prev is not None:
                word = (prev.value[-1] + tok.value[0]).replace("_", "a").isalnum()  # two words would merge
                parts.append(" " * rng.randint(1 if word or tok.type == "COMMENT" else 0, 3))
            parts.append(tok.value.rstrip() if tok.type == "COMMENT" else tok.value)
            depth += (tok.value in ("(", "[")) - (tok.value in (")", "]"))
            prev = tok
        if line.rstrip().endswith("\\") and not (toks and toks[-1].type == "COMMENT"):
            parts.append(" \\")
        elif toks and depth == 0 and toks[-1].type != "COMMENT" and rng.random() < 0.2:
            parts.append(";")
        out_lines.append("".join(parts))
        if depth == 0 and rng.random() < 0.1 and not line.rstrip().endswith("\\"):
            out_lines.append(" " * rng.randint(0, 4))
    return "\n".join(out_lines)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.name)
def test_fmt_of_scrambled_zoo_specs_is_stable(path, seed):
    """Whatever the whitespace, the formatter keeps the meaning (it checks the parse tree itself) and its
    output is a fixed point."""
    scrambled = _perturb(path.read_text(), seed)
    once = format_text(scrambled, str(path))
    assert format_text(once, str(path)) == once
    assert _comments(once) == _comments(path.read_text())


def test_ir_dump_loads_back():
    arch = archspec.load("googlenet")
    assert archspec.ir_from_json(arch.model_dump_json()) == arch

"""The source emitter writes code from a syntax tree (issue 12): the file parses back to the tree it was written
from, spec values are literals, identifiers are checked, and the definitions come from compiler/standalone.py."""
import ast
import builtins
import math

import pytest

import archspec
from archspec.errors import SpecError

torch = pytest.importorskip("torch")

from archspec_compiler import pysource, standalone  # noqa: E402

MODELS = ["resnet18", "googlenet", "swin_t", "vit_b_16", "shufflenet_v2_x1_0", "unet", "maxvit_t", "squeezenet1_0"]


def small(name: str):
    for size in (32, 64, 96, 128, 160, 224):
        try:
            return archspec.load(name, input_size=(size, size))
        except SpecError:
            continue
    return archspec.load(name)


def written_and_tree(arch, **kw):
    groups, notes, broken = pysource._file(arch, kw.get("inplace", True), kw.get("command"), kw.get("outputs"))
    return pysource._render(groups, notes, broken), ast.Module([s for g in groups for s in g], [])


@pytest.mark.parametrize("name", [n for n in MODELS if n in archspec.list_models()])
def test_the_file_says_what_its_tree_says(name):
    """The layout (line breaks, comments) changes nothing: parsing the file gives back the emitted tree."""
    text, tree = written_and_tree(small(name), command="archspec compile x")
    assert ast.unparse(ast.parse(text)) == ast.unparse(ast.fix_missing_locations(tree))
    assert "inspect" not in text and "getsource" not in text


def test_feature_taps_file_is_its_tree():
    text, tree = written_and_tree(small("resnet18"), outputs=["layer2", "layer3"])
    assert ast.unparse(ast.parse(text)) == ast.unparse(ast.fix_missing_locations(tree))
    assert "-> dict[str, torch.Tensor]" in text


HOSTILE = ['"""; import os; os.system("echo PWNED")  # """', "'''\\'''", "a\\", 'x"', "\x1b[31m\r\nimport os"]


@pytest.mark.parametrize("value", HOSTILE)
def test_spec_text_enters_as_a_literal(value, tmp_path):
    path = tmp_path / "x.arch"
    path.write_text(f"param p = {value!r}\narch x\ninput img: [3, 8, 8]\nnetwork {{ conv(4, 3) }}\n"
                    .replace("\\x1b", "\\u001b"))
    arch = archspec.load(path)
    text, tree = written_and_tree(arch, command=f"archspec compile {value}")
    parsed = ast.parse(text)
    assert ast.unparse(parsed) == ast.unparse(ast.fix_missing_locations(tree))
    doc = ast.get_docstring(parsed)
    assert f"Parameters: p={arch.params['p']!r}." in doc
    # nothing runs at import but definitions and assignments of literals
    kinds = {type(s) for s in parsed.body[1:]}
    assert kinds <= {ast.Import, ast.ImportFrom, ast.Assign, ast.FunctionDef, ast.ClassDef, ast.If}
    namespace = {"__name__": "emitted"}
    exec(compile(text, "emitted.py", "exec"), namespace)
    assert namespace["build"]()(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 6, 6)


@pytest.mark.parametrize("value", [0, -3, 2.5, -0.0, 1e-300, float("inf"), float("-inf"), "a'\"\n", None, True,
                                   [1, (2, -3.5)], {"k": [None]}])
def test_literals_round_trip(value):
    assert eval(ast.unparse(pysource._lit(value))) == value


def test_nan_and_foreign_values():
    assert math.isnan(eval(ast.unparse(pysource._lit(float("nan")))))
    with pytest.raises(TypeError):
        pysource._lit(object())


@pytest.mark.parametrize("name", ["a b", "class", "x;y", "1x", "é", ""])
def test_unsafe_identifiers_are_refused(name):
    with pytest.raises(ValueError, match="identifier"):
        pysource._ident(name)


def test_standalone_definitions_need_only_torch():
    """Each definition the emitter copies reads only torch, nn, math, builtins and the other definitions."""
    defs = pysource._definitions()
    module = ast.parse(open(standalone.__file__).read())
    imported = {a.asname or a.name for n in module.body if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert imported == {"annotations", "math", "torch", "nn"}
    allowed = set(dir(builtins)) | {"torch", "nn", "math"} | set(defs)
    for name, node in defs.items():
        bound = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        bound |= {a.arg for n in ast.walk(node) if isinstance(n, ast.arguments)
                  for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a}
        bound |= {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        free = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound
        assert free <= allowed, (name, free - allowed)
    assert set(standalone.CUSTOM_MODULES) <= set(defs)


def test_to_torch_runs_the_standalone_definitions():
    from archspec_compiler import torch as backend
    assert backend.CUSTOM_MODULES is standalone.CUSTOM_MODULES and backend.Container is standalone.Container
    assert all(fn is None or fn.__module__ == standalone.__name__ for fn in backend.INIT.values())


def test_blocks_say_where_they_were_first_built():
    text = pysource.emit_python(small("resnet18"))
    assert '"""First built for layer1.0: basic (resnet.arch:' in text
    assert "nn.ReLU(inplace=True)  # resnet.arch:" in text


def test_every_merge_and_custom_module_can_be_written():
    """Completeness: each kind of merge in the torch backend has its source here, each custom constructor its
    definition in standalone.py, and each init scheme's function too."""
    from archspec_compiler import torch as backend
    assert {type(m) for m in backend.MERGES.values()} <= set(pysource._MERGES)
    defs = pysource._definitions()
    assert set(backend.CUSTOM_MODULES) <= set(defs)
    assert {fn.__name__ for fn in backend.INIT.values() if fn} <= set(defs)


@pytest.mark.parametrize("custom", sorted(standalone.CUSTOM_MODULES))
def test_a_model_named_like_a_definition_does_not_replace_it(custom, tmp_path):
    """`arch pad` camel-cases to Pad, the class the file defines for pad(): the model class takes another name
    (found by review: the file defined `class Pad` twice and failed in build())."""
    title = "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(custom))
    path = tmp_path / "m.arch"
    path.write_text(f"arch {title}\ninput x: [3, 8, 8]\nnetwork {{ pad([1, 1]);  conv(4, 1);  scale(2.0) }}\n")
    source = pysource.emit_python(archspec.load(path))
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == len(set(classes)), classes
    namespace: dict = {}
    exec(compile(source, "<m>", "exec"), namespace)
    assert namespace["build"]()(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 10)

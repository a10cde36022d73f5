"""Resource limits: every field of archspec.Limits is exercised here, with its message and position, just
over and just at the limit; and with the default limits, hostile specs fail fast and in little memory."""
from __future__ import annotations

import dataclasses
import time
import tracemalloc
from pathlib import Path

import pytest

import archspec
from archspec import Limits, SpecError
from helpers import write_spec

H = "arch t\ninput x: [3, 8, 8]\n"


def _chain_of_uses(tmp: Path, n: int) -> Path:
    """main.arch uses u1.arch uses u2.arch ... uses u<n>.arch."""
    for i in range(1, n + 1):
        nxt = f'use "u{i + 1}.arch"\n' if i < n else ""
        (tmp / f"u{i}.arch").write_text(f"{nxt}block b{i}() {{ relu() }}\n")
    return _spec(tmp, H + 'use "u1.arch"\nnetwork { b1() }\n')


def _chain_of_blocks(n: int, groups: int = 0) -> str:
    """b0 calls b1 ... calls b<n-1>; each call inside `groups` nested groups."""
    blocks = "".join(f"block b{i}() {{ {'{ ' * groups}{f'b{i + 1}()' if i + 1 < n else 'relu()'}{' }' * groups} }}\n"
                     for i in range(n))
    return H + blocks + "network { b0() }\n"


def _spec(tmp: Path, text: str, name: str = "main.arch") -> Path:
    return write_spec(tmp, text, name, dedent=False)


# field -> (limit value, spec over the limit, expected message, (line, col), spec exactly at the limit or None)
CASES = {
    "max_file_bytes": (200, H + "# padding\n" * 20 + "network { relu() }\n",
                       "spec file is 245 bytes, over the limit of 200", (1, 1),
                       H + "# padding\n" * 15 + "network { relu() }\n"),
    "max_use_depth": (2, "uses:4", "use chain deeper than 2 files", ("u2.arch", 1, 5), "uses:2"),
    "max_nodes": (10, H + "network { repeat 6 { relu();  relu() } }\n", "the network has more than 10 nodes",
                  (3, 22), H + "network { repeat 5 { relu();  relu() } }\n"),
    "max_call_depth": (3, _chain_of_blocks(5), "block calls nested deeper than 3", (5, 14), _chain_of_blocks(3)),
    "max_expr_depth": (10, H + "param k = " + "-" * 11 + "1\nnetwork { relu() }\n",
                       "expression nested deeper than 10 levels", (3, 22),
                       H + "param k = " + "-" * 10 + "1\nnetwork { relu() }\n"),
    "max_nesting": (5, H + "param k = ((((((1))))))\nnetwork { relu() }\n", "brackets nested deeper than 5 levels",
                    (3, 16), H + "param k = (((((1)))))\nnetwork { relu() }\n"),
    "max_int_bits": (16, H + "param k = 65537\nnetwork { relu() }\n", "integer larger than 2**16", (3, 11),
                     H + "param k = -65536\nnetwork { relu() }\n"),
    "max_sequence": (10, H + "param k = range(11)\nnetwork { relu() }\n",
                     "range(): range of 11 items is longer than the limit of 10", (3, 11),
                     H + "param k = range(10)\nnetwork { relu() }\n"),
    "max_built_items": (100, H + "network {\n    repeat 11 { k = range(10) }\n    relu()\n}\n",
                        "the spec builds more than 100 list items in all", (4, 21),
                        H + "network {\n    repeat 9 { k = range(10) }\n    relu()\n}\n"),
    "max_steps": (50, H + "network {\n    repeat 49 { k = 1 }\n    relu()\n}\n",
                  "the spec takes more than 50 evaluation steps", (5, 5),
                  H + "network {\n    repeat 48 { k = 1 }\n    relu()\n}\n"),
    "max_params": (100, H + "network { conv(8, 1);  conv(8, 1) }\n", "the network has 104 parameters, over the limit of 100",
                   (3, 1), H + "network { conv(4, 1);  conv(4, 1) }\n"),
    "max_activation_bytes": (1600, H + "network { relu();  conv(4, 1, bias = false) }\n",  # the input counts too
                             "the network needs 2,560 bytes of activations per sample, over the limit of 1,600",
                             (3, 1), H + "network { maxpool(2);  relu();  relu();  relu() }\n"),
    "max_label_chars": (5, H + 'network {\n    a{"bcdef"}: relu()\n}\n', "a label of over 5 characters", (4, 5),
                        H + 'network {\n    a{"bcd"}: relu()\n}\n'),
    "max_errors": (3, H + "network {\n" + "    k = 1 / 0\n" * 10 + "    relu()\n}\n", "division by zero", (4, 9),
                   None),
}


def _load(tmp: Path, text: str, limits: Limits):
    if text.startswith("uses:"):
        path = _chain_of_uses(tmp, int(text[5:]))
    else:
        path = _spec(tmp, text)
    return archspec.load(path, limits=limits)


def test_every_limit_is_tested():
    assert set(CASES) == {f.name for f in dataclasses.fields(Limits)}


@pytest.mark.parametrize("field", sorted(CASES))
def test_limit(field, tmp_path, monkeypatch):
    value, over, message, where, at_limit = CASES[field]
    limits = Limits(**{field: value})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        _load(tmp_path, over, limits)
    diags = info.value.diagnostics
    d = diags[0]
    assert d.message == message
    file, line, col = where if len(where) == 3 else ("main.arch", *where)
    assert (d.pos.file, d.pos.line, d.pos.col) == (file, line, col)
    if field == "max_errors":
        assert len(diags) == value
    else:
        assert d.hint, "a limit error says what to do"
    if at_limit is not None:  # not off by one: exactly at the limit is fine
        _load(tmp_path, at_limit, limits)


def test_the_zoo_is_far_below_the_default_limits():
    """The defaults are generous: every zoo model loads with limits ten times tighter."""
    d = Limits()
    tight = Limits(max_nodes=d.max_nodes // 10, max_steps=d.max_steps // 10, max_built_items=d.max_built_items // 10,
                   max_params=d.max_params // 10, max_activation_bytes=d.max_activation_bytes // 10,
                   max_file_bytes=d.max_file_bytes // 10)
    for name in archspec.list_models():
        archspec.load(name, limits=tight)


# ---- with the default limits: fast, small, and an archspec error ----

HOSTILE = {
    "repeat_1e9": H + "network { repeat 10 ** 9 { relu() } }\n",
    "pow_tower": H + "param k = 2 ** 10 ** 9\nnetwork { relu() }\n",
    "pow_tower_10": H + "param k = 10 ** 10 ** 10\nnetwork { relu() }\n",
    "pow_big_base": H + "param k = (2 ** 200) ** (2 ** 200)\nnetwork { relu() }\n",
    "float_pow": H + "param k = 2.0 ** 10 ** 9\nnetwork { relu() }\n",
    "mul_growth": H + "network {\n k = 2 ** 200\n repeat 100 { k = k * k }\n relu()\n}\n",
    "huge_range": H + "network { for i in range(10 ** 12) { relu() } }\n",
    "list_times": H + "param k = [0] * 10 ** 9\nnetwork { relu() }\n",
    "string_times": H + 'param k = "x" * 10 ** 9\nnetwork { relu() }\n',
    "nested_comprehension": H + "network {\n k = [[0] * 1000000 for i in range(1000000)]\n relu()\n}\n",
    "doubling_list": H + "network {\n k = [0]\n repeat 100 { k = k + k }\n relu()\n}\n",
    "deep_parens": H + "param k = " + "(" * 10000 + "1" + ")" * 10000 + "\nnetwork { relu() }\n",
    "deep_lists": H + "param k = " + "[" * 10000 + "]" * 10000 + "\nnetwork { relu() }\n",
    "deep_groups": H + "network { " + "{ " * 10000 + "relu()" + " }" * 10000 + " }\n",
    "unary_chain": H + "param k = " + "-" * 10000 + "1\nnetwork { relu() }\n",
    "not_chain": H + "param k = " + "not " * 10000 + "true\nnetwork { relu() }\n",
    "pow_chain": H + "param k = " + "2 ** " * 5000 + "2\nnetwork { relu() }\n",
    "index_chain": H + "param k = [1]" + "[0]" * 5000 + "\nnetwork { relu() }\n",
    "call_chain": H + "param k = max" + "()" * 5000 + "\nnetwork { relu() }\n",
    "deep_value": H + "network {\n k = [1]\n repeat 5000 { k = [k] }\n conv(k, 3)\n}\n",
    "error_storm": H + "network {\n relu()\n repeat 1000 { repeat 999 { k = 1 / 0 } }\n}\n",
    "blocks_64_deep_with_groups": _chain_of_blocks(64, groups=5),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spec_fails_fast_and_small(name, tmp_path):
    path = _spec(tmp_path, HOSTILE[name])
    archspec.load("resnet18")  # the parser is built; what remains is this spec's cost
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(SpecError) as info:
            archspec.load(path)
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    d = info.value.first
    assert d.pos is not None and d.pos.line >= 3, d.render()
    assert elapsed < 5.0, f"{name} took {elapsed:.2f} s"  # milliseconds for most; tracemalloc slows it
    # nested_comprehension may build max_built_items (10M) list slots before it is stopped
    # a list may reach max_sequence (1M items, 8 MiB) before it is refused
    assert peak < (120 << 20 if name == "nested_comprehension" else 32 << 20), f"{name} peaked at {peak >> 20} MiB"


def test_repeat_1e9_fails_in_milliseconds(tmp_path):
    path = _spec(tmp_path, HOSTILE["repeat_1e9"])
    archspec.load("resnet18")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="repeat count 1000000000 is over the limit"):
        archspec.load(path)
    assert time.perf_counter() - t0 < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("body, message", [
    ("repeat 40000 { repeat 40000 { k = 1 } }", "evaluation steps"),   # loops without layers
    ("repeat 1000 { repeat 1000 { relu() } }", "nodes"),                 # a million layers
    ("k = 1 / 0\n conv(k, 3)\n repeat 1000 { repeat 999 { conv(8, 3) } }", "nodes"),  # layers after an error
    ("repeat 1000 { repeat 999 { unit() } }", "scopes"),                 # block calls without layers
])
def test_nested_loops_stop_at_the_default_limits(body, message, tmp_path):
    path = _spec(tmp_path, H + f"block unit() {{ k = 1 }}\nnetwork {{\n    {body}\n    relu()\n}}\n")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=message):
        archspec.load(path)
    assert time.perf_counter() - t0 < 30


def test_oversized_file_is_not_read(tmp_path):
    """A file over max_file_bytes is refused from its size, before it is read or parsed."""
    path = tmp_path / "big.arch"
    with path.open("wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB of NULs without writing them
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(SpecError, match="over the limit of"):
            archspec.load(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.5 and peak < 4 << 20


def test_max_file_bytes_parse_is_bounded(tmp_path):
    """A file just under the size limit, all statements, loads in bounded time."""
    d = Limits()
    line = "    k = 1\n"
    n = (d.max_file_bytes - 200) // len(line)
    path = _spec(tmp_path, H + "network {\n    relu()\n" + line * n + "}\n")
    assert path.stat().st_size <= d.max_file_bytes
    t0 = time.perf_counter()
    archspec.load(path)
    assert time.perf_counter() - t0 < 20

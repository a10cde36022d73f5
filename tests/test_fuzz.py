"""Fuzzing the front end (a fixed-seed CI campaign of 2,400 cases; benchmarks/fuzz.py runs longer ones).

Every case, a grammar-aware random spec (hypothesis) or a mutated zoo spec, must end in a valid
Architecture or an archspec.SpecError whose diagnostics point inside the spec, within a time bound.
Every failure ever found is kept in tests/fixtures/fuzz_regressions/ and replayed here.
"""
from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import Diagnostic, Pos
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("archspec_fuzz", ROOT / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["archspec_fuzz"] = fuzz  # dataclasses look their module up
_spec.loader.exec_module(fuzz)

GENERATED = 1200     # hypothesis examples
MUTATED = 1200       # mutations of the zoo's specs
SEED = 20240607


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_campaign_is_big_enough():
    assert GENERATED + MUTATED >= 2000


_generated_outcomes: dict[str, int] = {}


@settings(max_examples=GENERATED, derandomize=True, deadline=None, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_specs(data, folder):
    text, variant = fuzz.generate(fuzz.Chooser(data=data))
    out = fuzz.run_case(text, variant, folder)
    _generated_outcomes[out.kind] = _generated_outcomes.get(out.kind, 0) + 1
    assert not out.failed, f"{out.kind}: {out.detail}\nvariant {variant}\n{text}"


def test_generated_specs_are_often_valid():
    """The generator is useful only if it reaches deep into the lowering: many of its specs are valid.
    (Runs after test_generated_specs in file order; on its own it runs a small campaign.)"""
    counts = dict(_generated_outcomes)
    if sum(counts.values()) < 200:
        c = fuzz.Chooser(random.Random(SEED))
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(300):
                out = fuzz.run_case(*fuzz.generate(c), Path(tmp))
                counts[out.kind] = counts.get(out.kind, 0) + 1
    total = sum(counts.values())
    assert counts.get("ok", 0) >= 0.1 * total and counts.get("error", 0) >= 0.3 * total, counts


def test_mutated_zoo_specs(folder):
    c = fuzz.Chooser(random.Random(SEED))
    sources = fuzz.zoo_sources()
    assert len(sources) >= 5
    failures, counts = [], {}
    t0 = time.perf_counter()
    for i in range(MUTATED):
        text, variant = fuzz.mutated_case(sources, c)
        out = fuzz.run_case(text, variant, folder)
        counts[out.kind] = counts.get(out.kind, 0) + 1
        if out.failed:
            failures.append(f"case {i} ({out.kind}, variant {variant}): {out.detail}\n{text}")
    elapsed = time.perf_counter() - t0
    assert not failures, f"{len(failures)} failures; the first:\n{failures[0]}"
    # mutations break most specs, but not all: some mutants are still valid networks
    assert counts.get("ok", 0) > 0.02 * MUTATED and counts.get("error", 0) > 0.5 * MUTATED, counts
    assert elapsed < 120, f"{MUTATED} mutated cases took {elapsed:.0f} s"


REGRESSIONS = [pytest.param(path, variant, id=path.stem, marks=[pytest.mark.xfail(reason=open_bug, strict=True)]
                             if open_bug else []) for path, variant, open_bug in fuzz.regression_cases()]


@pytest.mark.parametrize("path, variant", REGRESSIONS)
def test_fuzz_regression(path, variant, folder):
    """A failure the fuzzer found must stay fixed. One whose .json says "open" is a reported bug outside the
    front end: strict xfail, so fixing it turns this red until the "open" note is removed."""
    text = path.read_bytes().decode("utf-8", "surrogatepass")
    out = fuzz.run_case(text, variant, folder)
    assert not out.failed, f"{out.kind}: {out.detail}"


def test_there_are_regressions_to_replay():
    assert REGRESSIONS, "tests/fixtures/fuzz_regressions/ keeps every failure the fuzzer found"


# ---- the oracle itself: it must notice crashes, hangs and bad positions ----

def test_oracle_flags_a_crash(folder, monkeypatch):
    monkeypatch.setattr(fuzz.archspec, "load", lambda *a, **k: 1 // 0)
    out = fuzz.run_case("arch t\n", None, folder)
    assert out.kind == "crash" and out.signature.startswith("ZeroDivisionError")


def test_oracle_flags_a_hang(folder, monkeypatch):
    def slow(*a, **k):
        while True:
            time.sleep(0.01)
    monkeypatch.setattr(fuzz.archspec, "load", slow)
    t0 = time.perf_counter()
    out = fuzz.run_case("arch t\n", None, folder, time_bound=0.1)
    assert out.kind == "hang" and time.perf_counter() - t0 < 2


@pytest.mark.parametrize("pos, ok", [(Pos("F", 2, 3), True), (Pos("F", 3, 1), True), (Pos("F", 2, 4), False),
                                     (Pos("F", 9, 1), False), (Pos("F", 0, 1), False), (None, False)])
def test_oracle_checks_positions(pos, ok):
    exc = archspec.SpecError(Diagnostic("boom", pos))
    assert (fuzz.check_positions(exc, {"F": "ab\ncd\n"}) is None) == ok

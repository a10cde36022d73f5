"""Budgets: the limits a spec declares (`budget params <= 26M`), checked against the analysis.

    for d in check_budgets(arch): print(d.render())     # one Diagnostic per broken budget, at its span

A budget at the top level of a spec limits the whole network; one inside a body limits the scope it sits
in (the enclosing block call, labeled group or labeled loop), rolled up from every layer under it.
Metrics: params and buffers (counts), macs and flops (= 2 x MACs), memory (activation bytes, float32,
batch 1: the peak of a forward for the whole network, the sum of the scope's outputs for a scope).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

from .analysis import Report, analyze, bytes_text, human
from .errors import Diagnostic
from .ir import Architecture, Budget

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
        "!=": operator.ne}
_WORDS = {"<=": "over the limit", "<": "not under the limit", ">=": "under the minimum",
          ">": "not over the minimum", "==": "not equal to", "!=": "equal to"}


@dataclass(frozen=True)
class Result:
    budget: Budget
    value: float | None       # None: the scope has no layers
    ok: bool

    @property
    def where(self) -> str:
        return f"scope '{self.budget.scope}'" if self.budget.scope else "the network"


def measure(report: Report, metric: str, scope: str = "") -> float | None:
    """The value of a budget metric for the whole network (scope "") or one scope; None if the scope is empty."""
    if scope:
        try:
            s = report.scope(scope)
        except KeyError:
            return None
        values = {"params": s.params, "buffers": s.buffers, "macs": s.macs, "flops": 2 * s.macs,
                  "memory": s.memory}
    else:
        values = {"params": report.params, "buffers": report.buffers, "macs": report.macs,
                  "flops": 2 * report.macs, "memory": report.memory.peak}
    return values[metric]


def evaluate(arch: Architecture, report: Report | None = None) -> list[Result]:
    """Every budget of `arch` with its measured value and whether it holds."""
    if not arch.budgets:
        return []
    report = report or analyze(arch)
    out = []
    for b in arch.budgets:
        value = measure(report, b.metric, b.scope)
        out.append(Result(b, value, value is not None and _OPS[b.op](value, b.limit)))
    return out


def show(metric: str, value: float) -> str:
    """A value in the metric's unit, exact and then readable: 25,557,032 (25.56 M)."""
    if metric == "memory":
        return f"{int(value):,} bytes ({bytes_text(int(value))})"
    unit = {"macs": " MACs", "flops": " FLOPs"}.get(metric, "")
    exact = f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
    return f"{exact}{unit}" + (f" ({human(value)})" if abs(value) >= 1000 else "")


def _exact(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def diagnostics(results: list[Result]) -> list[Diagnostic]:
    out = []
    for r in results:
        if r.ok:
            continue
        b = r.budget
        pos = b.span.pos(len("budget"))
        if r.value is None:
            out.append(Diagnostic(f"budget on scope '{b.scope}', which holds no layers", pos,
                                  "put the budget inside a body that has layers"))
            continue
        out.append(Diagnostic(
            f"budget broken: {b.metric} of {r.where} is {show(b.metric, r.value)}, {_WORDS[b.op]} "
            f"'{b.metric} {b.op} {_exact(b.limit)}'", pos,
            "change the network, or the budget if the new cost is intended"))
    return out


def check_budgets(arch: Architecture, report: Report | None = None) -> list[Diagnostic]:
    """One Diagnostic, at the budget's position, for every budget of `arch` that does not hold."""
    return diagnostics(evaluate(arch, report))


__all__ = ["Result", "check_budgets", "diagnostics", "evaluate", "measure"]

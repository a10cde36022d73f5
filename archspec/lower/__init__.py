"""Parse tree -> IR. Evaluates parameters, variants, blocks, loops and merges, names every node by
its scope, infers every shape, and collects every error of the spec with its position.

- declarations.py: the whole spec: variant and overrides, parameters, inputs, budgets, init schemes;
  `lower()` and the Lowerer, which combines the three parts below.
- statements.py: a body run statement by statement: labels, assignments, calls, loops, ifs, outputs.
- merges.py: groups and the merging statements (residual, dense, gate, branch), each a scope.
- layers.py: the lowering's state, its errors, and an op applied into an IR node.
- frames.py: name resolution (Frame, Globals) and the Cursor that names layers by scope.
- checks.py: the finished network's orders and its size against the limits.
"""
from ..parser import RESERVED as KEYWORDS
from .checks import size_problems
from .declarations import lower
from .statements import BUDGET_METRICS

__all__ = ["BUDGET_METRICS", "KEYWORDS", "lower", "size_problems"]

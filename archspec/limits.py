"""Resource limits for loading a spec: every one is checked before the work it bounds is done."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 256_000            # one .arch file (parsing takes ~5 us a byte)
    max_use_depth: int = 8                   # use -> use -> ... chains
    max_nodes: int = 50_000                  # nodes after expanding repeats and loops
    max_call_depth: int = 64                 # nesting of block calls
    max_expr_depth: int = 100                # nesting of an expression's parse tree
    max_nesting: int = 100                   # ( [ { nested in the text of a spec
    max_int_bits: int = 256                  # magnitude of any integer a spec computes
    max_sequence: int = 1_000_000            # length of a list, range or string a spec builds
    max_built_items: int = 10_000_000        # items of all lists and strings built while loading, together
    max_steps: int = 1_000_000               # statements run and comprehension items: bounds loops
    max_params: int = 10_000_000_000         # trainable parameters of the built network (40 GB of float32)
    max_activation_bytes: int = 1 << 40      # float32 activation memory for one sample
    max_errors: int = 50                     # diagnostics reported before stopping
    max_label_chars: int = 200               # one label (node names are joined labels; their bytes count in
                                             # max_built_items)


DEFAULT_LIMITS = Limits()

# What the renderers draw, whatever the network's size: past these they collapse or cut, with a note.
MAX_TABLE_ROWS = 1_000       # rows of the analyze table: `analyze --format md/json` have them all
MAX_DIAGRAM_BOXES = 2_000     # boxes of a diagram (Graphviz takes seconds for 2,000, then minutes and GBs)


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector. Lowering and analysis allocate many small objects that form no
    cycles; the collector would rescan them again and again (a 100k-node network loads in 1.9 s instead of
    4.5 s, and analysis time per layer would grow with the graph)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()

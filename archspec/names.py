"""Names a spec may give. Labels become module attributes, state_dict keys and generated source; input
names become parameters of generated Python functions. Checked once, in the front end, so that every
backend (to_torch, compile, ONNX) can use them as they are."""
from __future__ import annotations

import keyword
import re

# A label: a PyTorch module path segment (digits first and '-' too: RegNet's block1-0).
LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")

# Attributes of torch.nn.Module and torch.fx.GraphModule, and those to_torch sets: a submodule of that
# name would hide them (tests/test_security.py checks this list against the installed torch).
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "add_submodule", "apply", "arch_name", "bfloat16", "buffers",
    "call_super_init", "children", "code", "compile", "cpu", "cuda", "delete_all_unused_submodules",
    "delete_submodule", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "graph", "half", "input_names", "ipu", "load_state_dict",
    "meta", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters",
    "output_names", "parameters", "print_readable", "recompile", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty",
    "to_folder", "train", "training", "type", "xpu", "zero_grad",
})
# Names the generated forward() reads besides its inputs.
GENERATED_NAMES = frozenset({"self", "torch", "nn", "math"})


def _problem(noun: str, text: str, reserved: bool, why_reserved: str, taken: frozenset[str],
             why_taken: str) -> str | None:
    """The first reason the name `text` cannot be used as a `noun` ("label", "input name"), or None."""
    if reserved:
        return f"the {noun} '{text}' {why_reserved}"
    if keyword.iskeyword(text):
        return f"the {noun} '{text}' is a Python keyword"
    return f"the {noun} '{text}' {why_taken}" if text in taken else None


def label_problem(text: str) -> str | None:
    """Why a label cannot name a module (None when it can)."""
    return _problem("label", text, text.startswith("_"),
                    "starts with '_': such names are reserved for PyTorch's own attributes",
                    MODULE_ATTRIBUTES, "is the name of a PyTorch module attribute")


def input_problem(text: str) -> str | None:
    """Why an input name cannot be a parameter of the generated forward() (None when it can)."""
    return _problem("input name", text, not text.isidentifier() or text.startswith("_"),
                    "is reserved (it starts with '_')", GENERATED_NAMES, "is used by the generated code")

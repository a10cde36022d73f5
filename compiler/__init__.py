"""archspec's backends: the IR -> a torch.nn.Module (`to_torch`) and -> ONNX (`to_onnx`).

Imports are lazy (module __getattr__): `import compiler` loads neither torch nor onnx; each backend
is imported the first time one of its names is used.
"""
from __future__ import annotations

import importlib

# public name -> the submodule that defines it
_EXPORTS = {
    "to_torch": "compiler.torch",
    "to_onnx": "compiler.onnx",
    "emit_python": "compiler.pysource",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compiler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

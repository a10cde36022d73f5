"""archspec's backends, imported as `archspec_compiler`: the IR -> a torch.nn.Module (`to_torch`), -> ONNX
(`to_onnx`), -> standalone PyTorch source (`emit_python`).

The folder is `compiler/`; pyproject.toml maps it to the import path `archspec_compiler` (as it maps `grammar/`
and `specs/` into `archspec`), because a top-level `compiler` collides with the PyPI project of that name and with
any user's `compiler.py`. Inside the folder, imports are relative.

Imports are lazy (module __getattr__): `import archspec_compiler` loads neither torch nor onnx; each backend is
imported the first time one of its names is used.

Deprecated: `import compiler` from a source checkout (the repository root on sys.path) still works, with a
DeprecationWarning naming the new path, and gives the same module objects as `archspec_compiler`. The wheel does not
ship the old name (see README.md, "Python").
"""
from __future__ import annotations

import importlib
import sys

# public name -> the submodule that defines it
_EXPORTS = {
    "to_torch": "torch",
    "to_onnx": "onnx",
    "emit_python": "pysource",
}

__all__ = sorted(_EXPORTS)

NAME = "archspec_compiler"
OLD_NAME = "compiler"


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


def _alias_old_name() -> None:
    """Make `compiler` and `compiler.X` the modules `archspec_compiler` and `archspec_compiler.X` (no second copy
    of a backend, whose tables and classes would then differ), loading this folder as `archspec_compiler` when no
    install provides it."""
    import importlib.abc
    import importlib.util
    import warnings

    warnings.warn(f"`import {OLD_NAME}` is deprecated: the backends are `{NAME}` "
                  f"(e.g. `from {NAME} import to_torch`)", DeprecationWarning, stacklevel=3)
    if NAME not in sys.modules:
        if importlib.util.find_spec(NAME) is None:  # a bare checkout: load this folder under the new name
            spec = importlib.util.spec_from_file_location(NAME, __file__, submodule_search_locations=__path__)
            module = importlib.util.module_from_spec(spec)
            sys.modules[NAME] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(NAME)

    class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname.startswith(OLD_NAME + "."):
                return importlib.util.spec_from_loader(fullname, self)
            return None

        def create_module(self, spec):
            return importlib.import_module(NAME + spec.name[len(OLD_NAME):])

        def exec_module(self, module):
            pass

    if not any(type(f).__name__ == "_Alias" for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
    sys.modules[OLD_NAME] = sys.modules[NAME]


if __name__ == OLD_NAME:
    _alias_old_name()

"""archspec.load: a zoo name or a path, a variant and parameter overrides -> a validated Architecture."""
from __future__ import annotations


import stat
from pathlib import Path

from .errors import Diagnostic, SpecError, did_you_mean
from .ir import Architecture
from .limits import DEFAULT_LIMITS, Limits, gc_paused
from .lower import lower
from .modules import SpecModule, read_module
from . import zoo


# Files that are not specs, by suffix: what they are and what to do with them.
OTHER_KINDS = {
    ".onnx": ("an ONNX model", "time it with 'archspec bench {0}'; archspec reads .arch specs"),
    ".json": ("an IR dump (JSON)", "'archspec analyze {0}' reads IR dumps; other commands need the .arch spec"),
    ".pt": ("a PyTorch weights file", "pass it to 'archspec export SPEC --weights {0}'"),
    ".pth": ("a PyTorch weights file", "pass it to 'archspec export SPEC --weights {0}'"),
    ".safetensors": ("a weights file", "pass it to 'archspec export SPEC --weights {0}'"),
    ".py": ("Python source", "archspec reads .arch specs; 'archspec compile SPEC --emit python' writes .py files"),
}


def resolve(name_or_path: str | Path, variant: str | None = None) -> tuple[Path, str | None]:
    """A zoo name ('resnet50') or a path to a .arch file -> (file, variant)."""
    text = str(name_or_path)
    kind = OTHER_KINDS.get(Path(text).suffix.lower())
    if kind is not None:
        raise SpecError(Diagnostic(f"'{text}' is {kind[0]}, not an archspec spec (.arch)", None, kind[1].format(text)))
    looks_like_path = isinstance(name_or_path, Path) or text.endswith(".arch") or "/" in text or "\\" in text
    if not looks_like_path:
        entry = zoo.entries().get(text)
        if entry is None:
            raise SpecError(Diagnostic(f"no zoo model or file named '{text}'", None,
                                       did_you_mean(text, zoo.names()) or "run 'archspec list' for the zoo's names, "
                                       "or give a path to a .arch file"))
        if variant is not None and variant != (entry.variant or entry.name):
            raise SpecError(Diagnostic(f"'{text}' is itself a variant; do not also ask for '{variant}'", None,
                                       f"load '{variant}' instead"))
        return entry.path, entry.variant
    path = Path(text)
    if not path.is_file():
        raise SpecError(Diagnostic(f"no such spec file: {text}", None, "check the path"))
    return path, variant


def load(name_or_path: str | Path, variant: str | None = None, *, limits: Limits = DEFAULT_LIMITS,
         input_size: tuple[int, ...] | None = None, **params) -> Architecture:
    """Load and validate a spec: a zoo name or a .arch path, an optional variant, parameter overrides.
    `input_size` replaces the spatial size of the first input, e.g. (300, 300).

    Raises SpecError listing every problem with its file:line:col."""
    path, variant = resolve(name_or_path, variant)
    root = path.resolve().parent
    errors: list[Diagnostic] = []
    module = read_module(path, root, limits, errors)
    if module is not None and not errors:
        return load_module(module, variant, limits=limits, input_size=input_size, **params)
    raise SpecError(errors or [Diagnostic("the spec could not be loaded", None)])


def load_module(module: SpecModule, variant: str | None = None, *, limits: Limits = DEFAULT_LIMITS,
                input_size: tuple[int, ...] | None = None, **params) -> Architecture:
    """Lower a module read once (read_spec_file) at a variant: `check` builds every variant of a family
    file from one reading of it."""
    errors: list[Diagnostic] = []
    with gc_paused():
        arch = lower(module, variant, params, limits, errors, input_size)
    if errors or arch is None:
        exc = SpecError(errors or [Diagnostic("the spec could not be loaded", None)])
        if module is not None:
            exc.sources[module.file] = module.text
        raise exc
    return arch


def read_text_bounded(path: str | Path, limit: int, what: str = "file") -> str:
    """A regular file's text, refusing FIFOs, devices and files over `limit` bytes before reading them."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(Diagnostic(f"{what} '{path}' is not a regular file", None, "give the path of a file"))
        if info.st_size > limit:
            raise SpecError(Diagnostic(f"{what} '{path}' is {info.st_size:,} bytes, over the limit of {limit:,}",
                                       None, "is this the right file?"))
        with path.open("rb") as f:
            data = f.read(limit + 1)  # st_size may lie: read at most one byte more than allowed
        if len(data) > limit:
            raise SpecError(Diagnostic(f"{what} '{path}' is over the limit of {limit:,} bytes", None))
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Diagnostic(f"cannot read '{path}': {exc}", None, "check the path")) from None


def read_spec_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> SpecModule:
    """Parse a .arch file and the files it uses, without evaluating it (for block libraries)."""
    path = Path(path)
    errors: list[Diagnostic] = []
    module = read_module(path, path.resolve().parent, limits, errors)
    if errors or module is None:
        raise SpecError(errors or [Diagnostic(f"cannot read {path}", None)])
    return module

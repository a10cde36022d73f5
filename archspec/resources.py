"""Where the grammar and the zoo live, in a checkout and in an installed wheel."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # The wheel maps grammar/ and specs/ into the package (archspec/grammar, archspec/specs);
    # a checkout keeps them at the repository's root, beside the package.
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"archspec data folder '{name}' not found beside {_PKG}")


def grammar_file() -> Path:
    return _data_dir("grammar") / "archspec.lark"


def zoo_dir() -> Path:
    return _data_dir("specs")

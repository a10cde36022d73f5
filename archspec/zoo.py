"""The model zoo: which file in specs/ holds which model name."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .resources import zoo_dir

_VARIANT = re.compile(r"^[ \t]*variant[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)
_ARCH = re.compile(r"^[ \t]*arch[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


@dataclass(frozen=True)
class ZooEntry:
    name: str          # the model name: a variant, or the arch of a single-model file
    family: str        # the file's arch name
    path: Path
    variant: str | None


@lru_cache(maxsize=1)
def entries() -> dict[str, ZooEntry]:
    """Every model of the zoo by name, in file then declaration order. Scans text only: cheap."""
    out: dict[str, ZooEntry] = {}
    for path in sorted(zoo_dir().glob("*.arch")):
        text = path.read_text(encoding="utf-8")
        m = _ARCH.search(text)
        family = m.group(1) if m else path.stem
        variants = _VARIANT.findall(text)
        for v in variants or [None]:
            name = v or family
            out.setdefault(name, ZooEntry(name, family, path, v))
    return out


def names() -> list[str]:
    return list(entries())

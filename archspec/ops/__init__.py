"""The op table. Each op lives in one module of this package; importing it registers it."""
from . import (activation, attention, channel, conv, merge, norm, pool, resample, structure,  # noqa: F401
               tensor, window)  # (registration)
from .base import GLOBAL, REGISTRY, RF, ArgError, Op, ShapeError, numel, spec_repr

__all__ = ["GLOBAL", "REGISTRY", "RF", "ArgError", "Op", "ShapeError", "numel", "spec_repr"]

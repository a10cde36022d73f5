"""ONNX lowerings of issue 14's ops (channel cuts and shuffle, resampling, constant affines), as entries
of compiler/onnx.py's LOWERINGS table."""
from __future__ import annotations

import numpy as np

from archspec.ir import Node

from .onnx import Emitter, lowering


@lowering("chunk", "split")
def _part(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    bounds = [g.const(k, [v], np.int64) for k, v in
              (("starts", a["start"]), ("ends", a["start"] + a["length"]), ("axes", a["dim"] + 1))]
    g.emit("Slice", [g.input(n), *bounds], out)


@lowering("channel_shuffle")
def _shuffle(g: Emitter, n: Node, out: str) -> None:
    shape = g.shapes[n.inputs[0]]
    groups = n.attrs["groups"]
    # [N, g, C/g, rest] -> [N, C/g, g, rest] -> [N, C, *spatial]; 0 copies the (dynamic) batch axis.
    split = g.const("grouped", [0, groups, shape[0] // groups, -1], np.int64)
    y = g.emit("Transpose", [g.emit("Reshape", [g.input(n), split])], perm=[0, 2, 1, 3])
    g.emit("Reshape", [y, g.const("shape", [0, *shape], np.int64)], out)


@lowering("channel_affine")
def _affine(g: Emitter, n: Node, out: str) -> None:
    rank = len(g.shapes[n.inputs[0]])
    per_channel = lambda v: np.asarray(v).reshape((-1,) + (1,) * (rank - 1))  # noqa: E731
    y = g.emit("Mul", [g.input(n), g.const("scale", per_channel(n.attrs["scale"]))])
    g.emit("Add", [y, g.const("shift", per_channel(n.attrs["shift"]))], out)

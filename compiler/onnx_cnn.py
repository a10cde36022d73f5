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


@lowering("upsample", "interpolate")
def _resample(g: Emitter, n: Node, out: str) -> None:
    a, x = n.attrs, g.input(n)
    # Resize to exact sizes: [N, C] from the input's shape (the batch is dynamic), then the spatial sizes.
    head = g.emit("Slice", [g.emit("Shape", [x]), g.const("zero", [0], np.int64), g.const("two", [2], np.int64)])
    sizes = g.emit("Concat", [head, g.const("size", a["size"], np.int64)], axis=0)
    if a["mode"] == "nearest":  # PyTorch: floor(u * in / out)
        kw = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        kw = dict(mode="linear", coordinate_transformation_mode="align_corners" if a["align_corners"]
                  else "pytorch_half_pixel")
    g.emit("Resize", [x, "", "", sizes], out, **kw)


@lowering("conv_transpose")
def _conv_transpose(g: Emitter, n: Node, out: str) -> None:
    a = n.attrs
    inputs = [g.input(n), g.weight(f"{n.name}.weight")]
    if a["bias"]:
        inputs.append(g.weight(f"{n.name}.bias"))
    g.emit("ConvTranspose", inputs, out, kernel_shape=a["kernel"], strides=a["stride"], pads=list(a["pad"]) * 2,
           output_padding=a["output_pad"], dilations=a["dilation"], group=a["groups"])


@lowering("pixel_shuffle")
def _pixel_shuffle(g: Emitter, n: Node, out: str) -> None:
    g.emit("DepthToSpace", [g.input(n)], out, blocksize=n.attrs["factor"], mode="CRD")  # PyTorch's order


@lowering("center_crop")
def _center_crop(g: Emitter, n: Node, out: str) -> None:
    a, axes = n.attrs, list(range(2, 2 + len(n.attrs["size"])))
    ends = [b + s for b, s in zip(a["start"], a["size"])]
    g.emit("Slice", [g.input(n), g.const("starts", a["start"], np.int64), g.const("ends", ends, np.int64),
                     g.const("axes", axes, np.int64)], out)

"""PyTorch lowerings of issue 14's ops (channel cuts and shuffle, resampling, constant affines), as
entries of compiler/torch.py's LOWERINGS table. Their custom modules are in
compiler/standalone.py."""
from __future__ import annotations

import torch.fx as fx
from torch import nn
from torch.fx.graph_module import _forward_from_src

from .torch import ALIASING, Block, ModuleSpec, lowering


ALIASING.update({"chunk", "split"})  # a part is a view: an in-place activation on it would write into its input


@lowering("chunk", "split")
def _part(a, shape):
    return ModuleSpec("Narrow", (a["dim"] + 1, a["start"], a["length"]))  # +1: the batch axis


@lowering("channel_affine")
def _affine(a, shape):
    return ModuleSpec("ChannelAffine", (a["scale"], a["shift"]))


@lowering("channel_shuffle")
def _shuffle(a, shape):
    return ModuleSpec("ChannelShuffle", (a["groups"],))


class TrainEvalBlock(Block):
    """The root Block of a model with training-only outputs: it runs its graph (every output) in training
    mode and `eval_graph` (the inference outputs alone, without the nodes and child blocks only training
    outputs need) in eval mode, as torchvision's Inception-v3 and GoogLeNet do with their aux heads. The
    children keep IR order, so the state_dict holds the aux heads where torchvision has them."""

    def __init__(self, root: nn.Module, graph: fx.Graph, eval_graph: fx.Graph, class_name: str = "GraphModule"):
        self.__dict__["_eval_graph"] = eval_graph  # before GraphModule.__init__, whose recompile reads it
        super().__init__(root, graph, class_name=class_name)

    def recompile(self):
        code = super().recompile()  # the training forward, from the full graph
        eval_graph = self.__dict__.get("_eval_graph")
        if eval_graph is not None:
            eval_code = eval_graph.python_code(root_module="self")
            train_forward, eval_forward = type(self).forward, _forward_from_src(eval_code.src, eval_code.globals)

            def forward(self, *args):
                return train_forward(self, *args) if self.training else eval_forward(self, *args)
            type(self).forward = forward
        return code

    def _deepcopy_init(self):
        def init(res, fake_mod, graph):
            res.__dict__["_eval_graph"] = fake_mod.__dict__["_eval_graph"]
            fx.GraphModule.__init__(res, fake_mod, graph)
        return init

    def __reduce__(self):
        raise TypeError("a model with training-only outputs cannot be pickled whole (pickling keeps one forward); "
                        "save its state_dict and rebuild it with to_torch")


ALIASING.add("center_crop")


def _one(values: list[int]):
    return values[0] if len(set(values)) == 1 else tuple(values)


@lowering("upsample", "interpolate")
def _resample(a, shape):
    kw = {"scale_factor": _one([float(s) for s in a["scale"]])} if "scale" in a else {"size": _one(a["size"])}
    kw["mode"] = a["mode"]
    if a["mode"] != "nearest":
        kw["align_corners"] = a["align_corners"]
    return ModuleSpec("Upsample", (), kw)


@lowering("conv_transpose")
def _conv_transpose(a, shape):
    kw = {"kernel_size": _one(a["kernel"])}
    for key, name, default in (("stride", "stride", 1), ("pad", "padding", 0), ("output_pad", "output_padding", 0),
                               ("dilation", "dilation", 1)):
        if any(v != default for v in a[key]):
            kw[name] = _one(a[key])
    if a["groups"] != 1:
        kw["groups"] = a["groups"]
    if not a["bias"]:
        kw["bias"] = False
    return ModuleSpec(f"ConvTranspose{len(shape) - 1}d", (a["in"], a["out"]), kw)


@lowering("pixel_shuffle")
def _pixel_shuffle(a, shape):
    return ModuleSpec("PixelShuffle", (a["factor"],))


@lowering("center_crop")
def _center_crop(a, shape):
    return ModuleSpec("CenterCrop", (a["start"], a["size"]))

"""PyTorch lowerings of issue 14's ops (channel cuts and shuffle, resampling, constant affines), as
entries of compiler/torch.py's LOWERINGS table. Each custom module here is self-contained (torch only):
the standalone source emitter copies its class into the generated file."""
from __future__ import annotations

import torch
from torch import nn

from .torch import ALIASING, CUSTOM_MODULES, ModuleSpec, lowering


class Narrow(nn.Module):
    """x[:, ..., start:start + length] along one axis (`dim` counts the batch axis): a chunk or split part."""

    def __init__(self, dim: int, start: int, length: int) -> None:
        super().__init__()
        self.dim, self.start, self.length = dim, start, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.dim, self.start, self.length)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, length={self.length}"


class ChannelShuffle(nn.Module):
    """torchvision's channel_shuffle: [N, g * k, ...] -> view [N, g, k, ...] -> transpose -> [N, k * g, ...]."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        y = x.reshape(n, self.groups, c // self.groups, *x.shape[2:]).transpose(1, 2)
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


CUSTOM_MODULES.update({"Narrow": Narrow, "ChannelShuffle": ChannelShuffle})
ALIASING.update({"chunk", "split"})  # a part is a view: an in-place activation on it would write into its input


@lowering("chunk", "split")
def _part(a, shape):
    return ModuleSpec("Narrow", (a["dim"] + 1, a["start"], a["length"]))  # +1: the batch axis


@lowering("channel_shuffle")
def _shuffle(a, shape):
    return ModuleSpec("ChannelShuffle", (a["groups"],))

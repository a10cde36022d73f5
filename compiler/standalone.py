"""The definitions a standalone model file needs, written with torch, math and the standard library only.

compiler/torch.py builds its modules from these, and the source emitter (compiler/pysource.py) copies the
definitions a model uses into the file it writes (read from this file's syntax tree, never by importing a
backend class's source), so `to_torch` and the emitted file run the same code.
"""
from __future__ import annotations

import math

import torch
from torch import nn


# ---------------------------------------------------------------- custom modules

class StochasticDepth(nn.Module):
    """Randomly drop the input per sample (mode "row") or for the whole batch (mode "batch") while
    training, rescaling survivors by 1/(1-p); identity at eval. torchvision.ops.StochasticDepth."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


# ---- tensor ops (issue 13): layout modules hold no state; shapes exclude the batch axis, hence the +1s.

class Reshape(nn.Module):
    """x.reshape(batch, *shape)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class Permute(nn.Module):
    """x.permute(0, *dims) (torchvision's ops.misc.Permute names the batch axis too)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = [0] + [d + 1 for d in dims]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)


class Select(nn.Module):
    """x.select(dim, index) on a sample axis: the class token x[:, 0]."""

    def __init__(self, dim: int, index: int) -> None:
        super().__init__()
        self.dim, self.index = dim + 1, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)


class Slice(nn.Module):
    """x[..., start:end:step] on a sample axis."""

    def __init__(self, dim: int, start: int, end: int, step: int = 1) -> None:
        super().__init__()
        self.dim, self.start, self.end, self.step = dim + 1, start, end, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[(slice(None),) * self.dim + (slice(self.start, self.end, self.step),)]


class Roll(nn.Module):
    """torch.roll on sample axes (Swin's cyclic shift)."""

    def __init__(self, shifts: list[int], dims: list[int]) -> None:
        super().__init__()
        self.shifts, self.dims = tuple(shifts), tuple(d + 1 for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, self.shifts, self.dims)


class Pad(nn.Module):
    """F.pad with constant value; pads in PyTorch's order (last axis first)."""

    def __init__(self, pads: list[int], value: float = 0.0) -> None:
        super().__init__()
        self.pads, self.value = tuple(pads), value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, self.pads, value=self.value)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of [N, C, H, W] (torchvision's convnext.LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.ndim - 1  # explicit axes: torch.onnx.export writes movedim's -1 into an invalid Transpose
        x = nn.functional.layer_norm(x.permute(0, *range(2, x.ndim), 1), self.normalized_shape, self.weight,
                                     self.bias, self.eps)
        return x.permute(0, last, *range(1, last))


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention on batch-first tokens, attending to themselves; returns the output only."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(dim, heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x, x, x, need_weights=False)[0]


def learnable(shape: list[int], init: str = "zeros", value: float = 0.0, std: float = 0.02) -> nn.Parameter:
    """A learned tensor: zeros, a constant, or normal / truncated normal (at +-2 std) values."""
    data = torch.empty(shape)
    if init == "normal":
        nn.init.normal_(data, std=std)
    elif init == "trunc_normal":
        nn.init.trunc_normal_(data, std=std)
    else:
        nn.init.constant_(data, value if init == "constant" else 0.0)
    return nn.Parameter(data)


def buffer(values: list, dtype: str, shape: list[int]) -> torch.Tensor:
    """A persistent buffer computed by a rule (archspec.ops.tensor.RULES): its values, row-major."""
    return torch.tensor(values, dtype=getattr(torch, dtype)).reshape(shape)


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


class ChannelAffine(nn.Module):
    """x * scale[c] + shift[c] with constant per-channel lists (no parameters, nothing in the state_dict)."""

    def __init__(self, scale: list[float], shift: list[float]) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [-1] + [1] * (x.dim() - 2)
        scale = torch.tensor(self.scale, dtype=x.dtype, device=x.device).view(shape)
        return x * scale + torch.tensor(self.shift, dtype=x.dtype, device=x.device).view(shape)


class CenterCrop(nn.Module):
    """The spatial window of `size` starting at `start` (per axis): U-Net's crop of a skip connection."""

    def __init__(self, start: list[int], size: list[int]) -> None:
        super().__init__()
        self.start, self.size = start, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, (b, n) in enumerate(zip(self.start, self.size)):
            x = x.narrow(axis + 2, b, n)
        return x

    def extra_repr(self) -> str:
        return f"start={self.start}, size={self.size}"


class LinearZeroBias(nn.Linear):
    """nn.Linear whose bias entries start..end-1 are stored but used as zeros (Swin V2's qkv: no key bias)."""

    def __init__(self, in_features: int, out_features: int, start: int, end: int) -> None:
        super().__init__(in_features, out_features)
        self.start, self.end = start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.cat([self.bias[:self.start], self.bias.new_zeros(self.end - self.start), self.bias[self.end:]])
        return nn.functional.linear(x, self.weight, bias)


class Normalize(nn.Module):
    """F.normalize: x / max(||x||_2, eps) along a sample axis (cosine attention)."""

    def __init__(self, dim: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.eps = dim + 1, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=self.dim, eps=self.eps)


class Clamp(nn.Module):
    """torch.clamp with optional bounds."""

    def __init__(self, min: float | None = None, max: float | None = None) -> None:
        super().__init__()
        self.min, self.max = min, max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.min, self.max)


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class Scale(nn.Module):
    """x * factor, a constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


# ---------------------------------------------------------------- initialisation schemes

def _zero_bias(m: nn.Module) -> None:
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)


def init_kaiming_normal_fan_out(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    _zero_bias(m)


def init_kaiming_normal_fan_in(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    _zero_bias(m)


def init_kaiming_uniform(m: nn.Module) -> None:
    nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
    _zero_bias(m)


def init_xavier_uniform(m: nn.Module) -> None:
    nn.init.xavier_uniform_(m.weight)
    _zero_bias(m)


def init_normal_001(m: nn.Module) -> None:
    nn.init.normal_(m.weight, 0.0, 0.01)
    _zero_bias(m)


def init_trunc_normal_001(m: nn.Module) -> None:
    nn.init.trunc_normal_(m.weight, std=0.01)
    _zero_bias(m)


def init_trunc_normal_002(m: nn.Module) -> None:
    nn.init.trunc_normal_(m.weight, std=0.02)
    _zero_bias(m)


def init_uniform_fan_out(m: nn.Module) -> None:
    bound = 1.0 / math.sqrt(m.weight.shape[0])  # out_features (out_channels for a conv)
    nn.init.uniform_(m.weight, -bound, bound)
    _zero_bias(m)


def init_default_zero_bias(m: nn.Module) -> None:
    _zero_bias(m)  # the weight keeps PyTorch's own initialisation


def init_ones_zeros(m: nn.Module) -> None:
    nn.init.ones_(m.weight)
    _zero_bias(m)


# ---------------------------------------------------------------- the tree's containers

def _sequential(*children: tuple[str, nn.Module]) -> nn.Sequential:
    """An nn.Sequential with named children (names that are not 0, 1, 2, ...)."""
    seq = nn.Sequential()
    for name, module in children:
        seq.add_module(name, module)
    return seq


class Container(nn.Module):
    """A scope whose layers run interleaved with another scope's (so it cannot be one call): it holds its
    modules and tensors, and its nearest callable ancestor runs them. Children: (name, module),
    (name, parameter), (name, buffer) or (name, buffer, False) for a buffer not stored."""

    def __init__(self, *children: tuple) -> None:
        super().__init__()
        for name, value, *persistent in children:
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value, persistent=all(persistent))
            else:
                self.add_module(name, value)

    def forward(self, *args):
        raise RuntimeError("this container's layers run interleaved with other scopes' and are called by its "
                           "parent; call the parent, or one of its children")


def _check_memory(nbytes: int) -> None:
    """MemoryError, before allocating, when `nbytes` exceed the memory this machine has available (a model
    written for a bigger machine fails with a message, not by the OOM killer)."""
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):  # not Linux: let torch try
        return
    if nbytes > free:
        raise MemoryError(f"the weights need {nbytes / 2**30:,.1f} GiB, more than the {free / 2**30:,.1f} GiB "
                          "of memory available: build it on a bigger machine")


# The constructors ModuleSpec.cls may name besides torch.nn's classes.
CUSTOM_MODULES = {f.__name__: f for f in (
    StochasticDepth, Reshape, Permute, Select, Slice, Roll, Pad, LayerNorm2d, SelfAttention, learnable, buffer,
    Narrow, ChannelShuffle, ChannelAffine, CenterCrop, LinearZeroBias, Normalize, Clamp, Exp, Scale)}

"""The compiled module works with PyTorch's tools: torch.compile, fx.symbolic_trace, jit.trace,
torch.export, and a training step under DistributedDataParallel (gloo, two processes, CPU)."""
from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import archspec
from archspec_compiler import to_torch

# torch.jit is deprecated in torch 2.x (and DDP/compile touch it), yet still widely used: test it quietly.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")

# Small but structured: a residual, a squeeze-and-excitation gate (mul), a concat, two outputs.
SMALL = """
arch small
input image: [3, 16, 16]
init conv = "kaiming_normal_fan_out"
init bn = "ones_zeros"
network {
    stem: { conv(8, 3, stride = 2, pad = 1, bias = false); bn(); relu() }
    block: {
        residual { conv(8, 3, pad = 1, bias = false); bn(); relu(); conv(8, 3, pad = 1, bias = false); bn() }
        relu()
    }
    gate { gap(); conv(4, 1); relu(); conv(8, 1); sigmoid() }
    dense { conv(4, 1); hardswish() }
    save feat
    aux: { gap(); flatten(); linear(2) }
    save a
    from feat { head: { gap(); flatten(); linear(5) } }
    save logits
    output logits, a
}
"""


def small_arch(tmp_path: Path):
    path = tmp_path / "small.arch"
    path.write_text(textwrap.dedent(SMALL))
    return archspec.load(path)


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    return to_torch(small_arch(tmp_path)).eval()


def same(a, b, exact=True):
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    check = torch.equal if exact else (lambda x, y: torch.allclose(x, y, rtol=1e-4, atol=1e-5))
    return len(a) == len(b) and all(check(x, y) for x, y in zip(a, b))


X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_fx_symbolic_trace(model):
    traced = torch.fx.symbolic_trace(model)
    assert same(traced(X), model(X))
    assert [n.target for n in traced.graph.nodes if n.op == "call_module"][:3] == ["stem.0", "stem.1", "stem.2"]


def test_jit_trace(model):
    traced = torch.jit.trace(model, (X,))
    assert same(traced(X), model(X))
    other = torch.randn(3, 3, 16, 16)
    assert same(traced(other), model(other))


def test_torch_export(model):
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(model, (X,), dynamic_shapes=({0: batch},))
    assert same(ep.module()(X), model(X), exact=False)
    assert same(ep.module()(X[:1]), model(X[:1]), exact=False)
    assert set(ep.state_dict) == set(model.state_dict())  # the spec's names survive export


def test_torch_compile(model):
    torch._dynamo.reset()
    compiled = torch.compile(model)  # inductor, CPU
    with torch.no_grad():
        assert same(compiled(X), model(X), exact=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, spec_path: str, out_dir: str):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial weights on both ranks (DDP also broadcasts rank 0's)
        model = to_torch(archspec.load(spec_path)).train()
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(100 + rank))
        logits, aux = ddp(x)
        loss = logits.square().mean() + aux.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.save({"before": before, "after": model.state_dict(), "x": x}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_training_step_gloo(tmp_path):
    spec = tmp_path / "small.arch"
    spec.write_text(textwrap.dedent(SMALL))
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(spec), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # Parameters were averaged across ranks: identical after the step, and they moved.
    params = [k for k in r0["after"] if "running" not in k and "num_batches" not in k]
    assert all(torch.allclose(r0["after"][k], r1["after"][k]) for k in params)
    assert any(not torch.equal(r0["after"][k], r0["before"][k]) for k in params)
    # The step equals SGD with the mean of the two ranks' local gradients, computed here without DDP.
    grads = []
    for r in (r0, r1):
        m = to_torch(small_arch(tmp_path)).train()
        m.load_state_dict(r["before"])
        logits, aux = m(r["x"])
        (logits.square().mean() + aux.square().mean()).backward()
        grads.append({k: p.grad for k, p in m.named_parameters()})
    for k, p in r0["before"].items():
        if k in grads[0]:
            expect = p - 0.1 * (grads[0][k] + grads[1][k]) / 2
            assert torch.allclose(r0["after"][k], expect, atol=1e-6), k

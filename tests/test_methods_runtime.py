"""Every method under DistributedDataParallel, under autocast, and on CUDA (the last skipped without a GPU).

DDP runs in this process on a one-process gloo group: DDP still checks after every backward that each
parameter it was told to expect got its gradient, so a method whose step leaves a parameter out (or a phase
that uses only part of them) fails here exactly as it would on eight GPUs, without launching processes.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

import plugin_method  # noqa: F401  (registers test_aux_masks: two phases)
from method_fixtures import K, tiny_method
from wsolbench.config import OptimConfig
from wsolbench.engine import AmpPolicy, build_phases, train_one_epoch
from wsolbench.engine import distributed as ddp
from wsolbench.methods import METHODS

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _loader(device: torch.device, steps: int = 3, n: int = 4) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(steps):
        x = torch.randn(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, K, (n,), generator=gen)
        batches.append({"image": x.to(device), "label": y.to(device), "target": y.to(device),
                        "index": torch.arange(n)})
    return batches


def _train(model: torch.nn.Module, method, device: torch.device, amp: AmpPolicy, epochs: int = 2) -> None:
    phases = build_phases(method, OptimConfig(lr=0.01, epochs=epochs), steps_per_epoch=3)
    scaler = amp.scaler()
    for epoch in range(1, epochs + 1):
        train_one_epoch(model, _loader(device), phases=phases, device=device, amp=amp, scaler=scaler,
                        epoch=epoch, seed=0, num_classes=K)


@pytest.fixture(scope="module")
def gloo_group(tmp_path_factory):
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_inside_distributed_data_parallel(name, gloo_group):
    """Two epochs through DDP as the runner wraps it; every parameter that trains changes, none is NaN."""
    device = torch.device("cpu")
    method = tiny_method(name, objective="kl_uniform")
    before = {k: v.detach().clone() for k, v in method.named_parameters()}
    _train(ddp.wrap(method, device), method, device, AmpPolicy.for_device(device))
    after = dict(method.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("net.") for k in moved)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_and_localizes_under_bfloat16_autocast(name):
    """CPU autocast in bfloat16 runs the same mixed-precision code paths as CUDA AMP: the losses stay
    finite and the localization maps come back float32 (the score-map contract)."""
    device = torch.device("cpu")
    amp = AmpPolicy("cpu", torch.bfloat16)
    method = tiny_method(name, objective="kl_uniform")
    _train(method, method, device, amp, epochs=1)
    method.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), amp.autocast():
        logits, maps = method.localization_maps(x, torch.tensor([0, 1]))
    assert maps.dtype == torch.float32 and maps.shape[0] == 2 and torch.isfinite(maps).all()
    assert logits.shape == (2, K) and torch.isfinite(logits.float()).all()


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_and_localizes_on_cuda_with_amp(name):
    device = torch.device("cuda")
    amp = AmpPolicy.for_device(device)
    method = tiny_method(name, objective="kl_uniform").to(device)
    _train(method, method, device, amp, epochs=1)
    method.eval()
    x = torch.randn(2, 3, 32, 32, device=device)
    with torch.no_grad(), amp.autocast():
        logits, maps = method.localization_maps(x, torch.tensor([0, 1], device=device))
    assert maps.device.type == "cuda" and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    cpu = tiny_method(name, objective="kl_uniform")
    cpu.load_state_dict({k: v.cpu() for k, v in method.state_dict().items()})
    with torch.no_grad():
        _, cpu_maps = cpu.eval().localization_maps(x.cpu(), torch.tensor([0, 1]))
    torch.testing.assert_close(maps.cpu(), cpu_maps, atol=5e-2, rtol=5e-2)  # bf16/fp16 vs float32

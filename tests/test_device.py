"""Device selection, and the CUDA path (skipped cleanly without a GPU)."""

import pytest
import torch

from wsolbench.config import ObjectiveConfig
from wsolbench.engine import AmpPolicy, resolve_device
from wsolbench.errors import ConfigError
from wsolbench.backbones import create_backbone
from wsolbench.cams import scoremaps_for
from wsolbench.methods import create_method
from wsolbench.objectives import build_objective

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert AmpPolicy.for_device(torch.device("cpu")).dtype is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.cuda
@needs_cuda
def test_mixed_precision_training_step_and_cams_on_cuda():
    device = torch.device("cuda")
    amp = AmpPolicy.for_device(device)
    assert amp.dtype in (torch.bfloat16, torch.float16)
    net = create_backbone("resnet18", num_classes=5)
    method = create_method("cam", net=net, objective=build_objective(ObjectiveConfig(name="kl_uniform"))).to(device)
    method = method.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(method.parameters(), lr=0.01)
    scaler = amp.scaler()
    x = torch.randn(4, 3, 64, 64, device=device)
    y = torch.tensor([0, 1, 2, 3], device=device)
    with amp.autocast():
        out = method.training_step(x, y)
    scaler.scale(out["loss"]).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.isfinite(out["loss"])
    with torch.no_grad(), amp.autocast():
        logits, feats = method.infer(x)
    maps = scoremaps_for(feats, method.net.head_weight, y, 224)
    assert maps.device.type == "cuda" and maps.dtype == torch.float32 and maps.shape == (4, 224, 224)
    cpu_maps = scoremaps_for(feats.float().cpu(), method.net.head_weight.float().cpu(), y.cpu(), 224)
    torch.testing.assert_close(maps.cpu(), cpu_maps, atol=1e-3, rtol=1e-3)

"""Device selection, and the CUDA path (skipped cleanly without a GPU)."""

import pytest
import torch

from wsolbench.engine import AmpPolicy, resolve_device
from wsolbench.errors import ConfigError
from wsolbench.backbones import create_backbone
from wsolbench.cams import CAMS, scoremaps_for, to_scoremaps
from wsolbench.methods import create_method, step_context
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
    method = create_method("cam", net=net, objective=build_objective("kl_uniform")).to(device)
    method = method.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(method.parameters(), lr=0.01)
    scaler = amp.scaler()
    x = torch.randn(4, 3, 64, 64, device=device)
    y = torch.tensor([0, 1, 2, 3], device=device)
    ctx = step_context(seed=0, epoch=1, step=0, phase="main", num_classes=5)
    with amp.autocast():
        out = method.training_step({"image": x, "label": y, "target": y}, ctx)
    scaler.scale(out["loss"]).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.isfinite(out["loss"])
    method.eval()
    with torch.no_grad(), amp.autocast():
        feats = method.net.forward_features(x)
    maps = scoremaps_for(feats, method.net.head_weight, y, 224)
    assert maps.device.type == "cuda" and maps.dtype == torch.float32 and maps.shape == (4, 224, 224)
    cpu_maps = scoremaps_for(feats.float().cpu(), method.net.head_weight.float().cpu(), y.cpu(), 224)
    torch.testing.assert_close(maps.cpu(), cpu_maps, atol=1e-3, rtol=1e-3)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", CAMS.names())
def test_every_cam_extractor_runs_on_cuda_under_autocast(name):
    device = torch.device("cuda")
    amp = AmpPolicy.for_device(device)
    net = create_backbone("resnet18", num_classes=5)
    method = create_method("cam", net=net, objective=build_objective("ce")).to(device).eval()
    x = torch.randn(4, 3, 64, 64, device=device)
    y = torch.tensor([0, 1, 2, 3], device=device)
    with CAMS.get(name)(method) as extractor, amp.autocast():
        logits, raw = extractor(x, y)
    maps = to_scoremaps(raw, 224)
    assert maps.device.type == "cuda" and maps.shape == (4, 224, 224) and torch.isfinite(maps).all()
    assert logits.shape == (4, 5)

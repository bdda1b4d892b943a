import numpy as np
import pytest
import torch

from wsolbench.backbones import BACKBONES, create_backbone
from wsolbench.cams import cam_from_features, normalize_minmax, scoremaps_for


def test_cam_is_the_weighted_channel_sum_for_each_images_class():
    feats = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    cams = cam_from_features(feats, weight, torch.tensor([1, 0]))
    torch.testing.assert_close(cams[0], 2 * feats[0, 1] - feats[0, 2])
    torch.testing.assert_close(cams[1], feats[1, 0])


def test_logit_is_the_spatial_mean_of_the_cam_plus_bias():
    torch.manual_seed(0)
    net = create_backbone("small_cnn", num_classes=5, width=4).eval()
    x = torch.randn(3, 3, 32, 32)
    feats = net.forward_features(x)
    logits = net.forward_head(feats)
    for k in range(5):
        cam = cam_from_features(feats, net.head_weight, torch.full((3,), k))
        torch.testing.assert_close(cam.mean(dim=(1, 2)) + net.fc.bias[k], logits[:, k], rtol=1e-5, atol=1e-5)


def test_normalize_minmax_including_constant_and_nan_maps():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]], [[0.0, float("nan")], [1.0, 2.0]]])
    out = normalize_minmax(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert (out[1] == 0).all() and (out[2] == 0).all()


def test_scoremaps_are_upsampled_in_unit_range():
    feats = torch.randn(2, 4, 4, 4)
    maps = scoremaps_for(feats, torch.randn(3, 4), torch.tensor([0, 2]), 32)
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert np.isclose(maps.amax(dim=(1, 2)).numpy(), 1.0).all()


@pytest.mark.parametrize("name, size, cam", [("small_cnn", 64, 16), ("resnet18", 64, 2), ("resnet50", 64, 2)])
def test_backbone_shapes_and_cam_resolution(name, size, cam):
    assert name in BACKBONES
    net = create_backbone(name, num_classes=7).eval()
    with torch.no_grad():
        feats = net.forward_features(torch.randn(2, 3, size, size))
        logits = net.forward_head(feats)
    assert feats.shape[-2:] == (cam, cam) and logits.shape == (2, 7)
    assert net.head_weight.shape == (7, feats.shape[1])

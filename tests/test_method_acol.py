"""ACoL: the erased region is exactly the normalized CAM >= threshold; B sees the erased features; the map
fuses both branches; placement per backbone family; B's parameters survive save + load; end to end."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from wsolbench.backbones import create_backbone, tap_key
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.acol import StageKeeper, erase_above, fuse_maps
from wsolbench.objectives import build_objective
from method_fixtures import K, tiny_batch as _batch, tiny_method



def _acol(seed: int = 0, **params):
    return tiny_method("acol", seed, **params)


def test_erase_above_zeroes_exactly_the_cells_at_or_above_the_threshold():
    # min-max of this map is [[0, .2, .4], [.6, .8, 1]]: 0.7 erases the last two cells, in every channel
    cam = torch.tensor([[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]])
    feats = torch.arange(1.0, 13.0).view(1, 2, 2, 3)
    erased, region = erase_above(feats, cam, 0.7)
    expected = torch.tensor([[[False, False, False], [False, True, True]]])
    assert torch.equal(region, expected)
    keep = (~expected).float()
    assert torch.equal(erased, feats * keep[:, None])
    assert erased[0, :, 1, 1:].eq(0).all() and torch.equal(erased[0, :, 0], feats[0, :, 0])

    # the threshold itself is erased (>=, torch.ge as the public code): [0, .5, 1] at 0.5
    _, region = erase_above(torch.ones(1, 1, 1, 3), torch.tensor([[[3.0, 5.0, 7.0]]]), 0.5)
    assert region.tolist() == [[[False, True, True]]]
    # a constant map erases nothing; the raw scale and offset do not matter (min-max per image)
    _, region = erase_above(torch.ones(2, 1, 2, 2), torch.stack([torch.full((2, 2), 4.0),
                                                                 torch.tensor([[-1.0, 9.0], [4.0, 8.0]])]), 0.7)
    assert region.tolist() == [[[False, False], [False, False]], [[False, True], [False, True]]]


def test_fuse_maps_is_the_maximum_of_the_normalized_maps():
    a = torch.tensor([[[0.0, 10.0], [5.0, 0.0]]])
    b = torch.tensor([[[-1.0, -1.0], [1.0, 3.0]]])  # -> [[0, 0], [.5, 1]]
    assert fuse_maps(a, b).tolist() == [[[0.0, 1.0], [0.5, 1.0]]]


def test_training_step_gives_b_the_erase_stage_features_with_the_region_of_as_cam_removed():
    method = _acol().train()
    assert method.erase_stage == "block2" and method.branch_convs == 1 and not method.smooth
    seen = {}
    method.net.stage_module("block2").register_forward_hook(lambda m, a, out: seen.__setitem__("stage", out))
    method.branch_b.register_forward_pre_hook(lambda m, args: seen.__setitem__("b_in", args[0]))
    method.net.stage_module("block3").register_forward_hook(lambda m, a, out: seen.__setitem__("cam_map", out))
    batch = _batch()
    out = method.training_step(batch, step_context(seed=0, epoch=1, step=0, phase="main", num_classes=K))
    # by hand: A's CAM of the label from the last stage, min-max per image, >= 0.7 erased
    cam = torch.einsum("bchw,bc->bhw", seen["cam_map"].detach(), method.net.fc.weight.detach()[batch["label"]])
    lo = cam.flatten(1).min(1).values[:, None, None]
    hi = cam.flatten(1).max(1).values[:, None, None]
    region = (cam - lo) / (hi - lo) >= 0.7
    assert 0 < region.sum() < region.numel()
    torch.testing.assert_close(seen["b_in"], seen["stage"] * (~region)[:, None].float())
    assert torch.equal(seen["b_in"][:, :, region[0]][0], torch.zeros_like(seen["b_in"][:, :, region[0]][0]))
    # the loss is the sum of both classifiers' objectives; the logits are A's
    torch.testing.assert_close(out["loss"], out["objective_a"] + out["objective_b"])
    assert torch.equal(out["logits"], method.net.forward_head(seen["cam_map"]))
    out["loss"].backward()
    assert all(p.grad is not None for p in method.parameters())


def test_localization_maps_fuse_a_and_b_at_the_cam_resolution():
    method = _acol().eval()
    batch = _batch(n=3)
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        parts = method.branches(batch["image"], batch["label"])
        cam_b = torch.einsum("bchw,bc->bhw", parts["features_b"], method.fc_b.weight[batch["label"]])
    assert maps.shape == (3, 8, 8) and maps.min() >= 0 and maps.max() <= 1
    torch.testing.assert_close(maps, fuse_maps(parts["cam_a"], cam_b))
    torch.testing.assert_close(logits, method.net(batch["image"]))  # A's logits
    assert not torch.equal(maps, fuse_maps(parts["cam_a"], parts["cam_a"]))  # B contributes


def test_the_keeper_smooths_with_a_3x3_mean_and_keeps_only_while_armed():
    keeper = StageKeeper(smooth=True)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(keeper(x), F.avg_pool2d(x, 3, 1, 1))
    assert keeper.kept is None
    keeper.armed = True
    y = keeper(x)
    assert keeper.kept is y


@pytest.mark.parametrize("backbone, stage, convs, smooth, tapped", [
    ("vgg16_wsol", "conv5_3", 1, True, True),
    ("inception_v3_wsol", "Mixed_6e", 2, False, True),
    ("resnet50_wsol", "layer4", 0, False, False),
    ("preresnet18", "final_relu", 0, False, False),
])
def test_published_placement_per_backbone_family(backbone, stage, convs, smooth, tapped):
    with torch.device("meta"):
        net = create_backbone(backbone, num_classes=K)
        method = create_method("acol", net=net, objective=build_objective("ce"))
    assert (method.erase_stage, method.branch_convs, method.smooth) == (stage, convs, smooth)
    assert (tap_key(stage) in net.taps) == tapped
    convs_b = [m for m in method.branch_b if isinstance(m, torch.nn.Conv2d)]
    assert len(convs_b) == convs
    if convs:
        assert convs_b[0].in_channels == net.stage(stage).channels
        assert convs_b[-1].out_channels == net.stages[-1].channels == method.fc_b.in_features


@pytest.mark.parametrize("params, words", [
    ({"threshold": 0.0}, "method.threshold"), ({"threshold": 1.5}, "method.threshold"),
    ({"erase_stage": "layer9"}, "method.erase_stage"),
    ({"erase_stage": "block1"}, "stride"),  # stride 2, the CAM map's is 4
    ({"erase_stage": "block2", "branch_convs": 0}, "method.branch_convs"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _acol(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_branch_b_survives_save_and_load(tmp_path):
    method = _acol(seed=0)
    with torch.no_grad():
        method.fc_b.weight.add_(1.0)
    save_weights(tmp_path / "model.pt", method)
    other = _acol(seed=5)
    assert not torch.equal(other.fc_b.weight, method.fc_b.weight)
    load_weights(other, tmp_path / "model.pt")
    for key, value in method.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(method.eval().localization_maps(batch["image"], batch["label"])[1],
                           other.eval().localization_maps(batch["image"], batch["label"])[1])

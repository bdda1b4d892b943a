"""ADL: the drop mask hides exactly the positions with channel mean >= gamma * max (per image); the
importance branch multiplies by sigmoid(A); one branch per layer and batch from the step's generator;
the published placement per backbone family; identity at evaluation; end to end with two objectives."""

from __future__ import annotations


import pytest
import torch

from wsolbench.backbones import create_backbone, tap_key
from wsolbench.cams.native import cam_from_features
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method
from wsolbench.methods.adl import AttentionDropout, drop_mask, self_attention
from wsolbench.objectives import build_objective
from method_fixtures import K, main_ctx as _ctx, tiny_batch as _batch, tiny_method



def _adl(seed: int = 0, **params):
    return tiny_method("adl", seed, **params)


def _features():
    """Two images, 2 channels, 2 x 3: channel means [[1, 2, 3], [4, 8, 10]] and 10 x that."""
    a = torch.tensor([[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]], [[2.0, 2.0, 2.0], [2.0, 8.0, 10.0]]])
    return torch.stack([a, 10 * a])


def test_drop_mask_covers_exactly_the_positions_at_or_above_gamma_times_the_max():
    feats = _features()
    attention = self_attention(feats)
    assert attention[0, 0].tolist() == [[1.0, 2.0, 3.0], [4.0, 8.0, 10.0]]
    # gamma 0.75: threshold 7.5 (image 0) and 75 (image 1); 8 and 10 (80 and 100) are dropped
    mask = drop_mask(attention, 0.75)
    expected = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert torch.equal(mask, expected.expand(2, 1, 2, 3))
    # a position at exactly gamma * max is dropped (the comparison is A < gamma * max); gamma 0.4 -> 4
    assert drop_mask(attention, 0.4)[0, 0].tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    # gamma 1 drops only the maximum, gamma 0 every non-negative position
    assert drop_mask(attention, 1.0)[0, 0].tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    assert drop_mask(attention, 0.0).sum() == 0
    # the maximum is per image: a brighter second image does not change the first one's mask
    lopsided = torch.stack([feats[0], 100 * feats[1]])
    assert torch.equal(drop_mask(self_attention(lopsided), 0.75), mask)


def test_the_layer_multiplies_by_the_drop_mask_or_the_importance_map_and_is_the_identity_in_eval():
    feats = _features()
    layer = AttentionDropout(gamma=0.75).train()
    layer.drop = True
    dropped = layer(feats)
    keep = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert torch.equal(dropped, feats * keep)
    assert torch.equal(dropped[:, :, 1, 1:], torch.zeros(2, 2, 2))  # every channel of the dropped positions
    layer.drop = False
    torch.testing.assert_close(layer(feats), feats * torch.sigmoid(feats.mean(dim=1, keepdim=True)))
    layer.eval()
    assert layer(feats) is feats
    layer.train()
    layer.drop = None
    with pytest.raises(RuntimeError, match="branch"):
        layer(feats)


def test_the_importance_map_passes_a_gradient_the_drop_mask_only_through_the_kept_features():
    feats = _features()[:1].requires_grad_(True)
    layer = AttentionDropout(gamma=0.75).train()
    layer.drop = True
    layer(feats).sum().backward()
    assert torch.equal(feats.grad[0, 0], torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
    feats.grad = None
    layer.drop = False
    layer(feats).sum().backward()
    assert not torch.equal(feats.grad, torch.sigmoid(feats.detach().mean(1, keepdim=True)).expand_as(feats))


@pytest.mark.parametrize("drop_rate", [0.0, 1.0, 0.75])
def test_training_step_applies_each_layers_branch_drawn_from_the_generator(drop_rate):
    method = _adl(drop_rate=drop_rate).train()
    assert method.stages == ("block2", "block3")
    seen = []
    for layer in method.layers():
        layer.register_forward_hook(lambda m, args, out: seen.append((m.drop, args[0].detach(), out.detach())))
    method.training_step(_batch(), _ctx(step=5))
    expected = (torch.rand(2, generator=_ctx(step=5).generator) < drop_rate).tolist()
    assert [drop for drop, _, _ in seen] == expected
    if drop_rate in (0.0, 1.0):
        assert expected == [bool(drop_rate)] * 2
    for drop, x, out in seen:
        a = x.mean(dim=1, keepdim=True)
        selected = (a < 0.9 * a.flatten(1).max(1).values.view(-1, 1, 1, 1)).float() if drop else torch.sigmoid(a)
        torch.testing.assert_close(out, x * selected)
    assert all(layer.drop is None for layer in method.layers())  # cleared after the step
    # over many steps the drop branch is taken at the drop rate
    draws = [d for s in range(200) for d in (torch.rand(2, generator=_ctx(step=s).generator) < 0.75).tolist()]
    assert 0.65 < sum(draws) / len(draws) < 0.85


def test_localization_maps_are_the_plain_cam_of_the_network_without_dropout():
    method = _adl().eval()
    batch = _batch(n=3)
    plain = create_backbone("small_cnn", num_classes=K, width=4)
    plain.load_state_dict(method.net.state_dict())
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        feats = plain.eval().forward_features(batch["image"])
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, cam_from_features(feats, plain.fc.weight, batch["label"]))
    torch.testing.assert_close(logits, plain(batch["image"]))


@pytest.mark.parametrize("backbone, stages", [
    ("vgg16_wsol", ("pool3", "conv4_3", "conv5_3")),
    ("resnet50_wsol", ("layer3.0", "layer4.0", "layer4")),
    ("resnet50", ("layer3.0", "layer4.0", "layer4")),
    ("preresnet18", ("layer3.0", "layer4.0", "layer4")),
    ("inception_v3_wsol", ("Mixed_5d", "Mixed_6e", "head_conv2")),
    ("small_cnn", ("block2", "block3")),
])
def test_published_placement_per_backbone_family(backbone, stages):
    with torch.device("meta"):
        net = create_backbone(backbone, num_classes=K)
        method = create_method("adl", net=net, objective=build_objective("ce"))
    assert method.stages == stages
    assert sorted(net.taps) == sorted(tap_key(s) for s in stages)
    assert all(isinstance(layer, AttentionDropout) and layer.gamma == 0.9 for layer in method.layers())


def test_the_layers_add_no_state_and_weights_load_from_a_plain_cam_run(tmp_path):
    cam = create_method("cam", net=create_backbone("small_cnn", num_classes=K, width=4),
                        objective=build_objective("ce"))
    method = _adl(seed=3)
    assert set(method.state_dict()) == set(cam.state_dict())
    save_weights(tmp_path / "cam.pt", cam)
    load_weights(method, tmp_path / "cam.pt")
    assert all(torch.equal(method.state_dict()[k], v) for k, v in cam.state_dict().items())


@pytest.mark.parametrize("params, words", [
    ({"drop_rate": 1.5}, "method.drop_rate"), ({"gamma": -0.1}, "method.gamma"),
    ({"gamma": 2.0}, "method.gamma"), ({"stages": ("block3", "block3")}, "method.stages"),
    ({"stages": ("layer9",)}, "method.stages"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _adl(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_stages_can_be_chosen():
    method = _adl(stages="block1,block3")
    assert method.stages == ("block1", "block3") and sorted(method.net.taps) == ["block1", "block3"]

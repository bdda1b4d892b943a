"""RDAP: the mask is the square of the configured size centred on the attention maximum (clipped at the
borders); the layer hides it only for the drawn images and only in training; draws follow drop_rate;
placement per backbone family; checkpoints and maps; end to end."""

from __future__ import annotations


import pytest
import torch

from wsolbench.backbones import create_backbone, tap_key
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.rdap import RegionDrop, mask_side, square_mask
from wsolbench.objectives import build_objective
from method_fixtures import K, tiny_batch as _batch, tiny_method



def _rdap(seed: int = 0, **params):
    return tiny_method("rdap", seed, **params)


def _peak(h: int, w: int, i: int, j: int) -> torch.Tensor:
    a = torch.zeros(1, h, w)
    a[0, i, j] = 1.0
    return a


def _square(h: int, w: int, rows: range, cols: range) -> list:
    return [[[r in rows and c in cols for c in range(w)] for r in range(h)]]


def test_the_mask_is_the_square_centred_on_the_maximum():
    assert square_mask(_peak(6, 6, 2, 3), 3).tolist() == _square(6, 6, range(1, 4), range(2, 5))
    # even side: the extra cell is above / left of the centre
    assert square_mask(_peak(6, 6, 2, 3), 2).tolist() == _square(6, 6, range(1, 3), range(2, 4))
    assert square_mask(_peak(6, 6, 2, 3), 1).tolist() == _square(6, 6, range(2, 3), range(3, 4))
    # non-square map
    assert square_mask(_peak(4, 7, 1, 5), 3).tolist() == _square(4, 7, range(0, 3), range(4, 7))


def test_the_square_is_clipped_at_the_borders_not_shifted():
    assert square_mask(_peak(6, 6, 0, 0), 3).tolist() == _square(6, 6, range(0, 2), range(0, 2))
    assert square_mask(_peak(6, 6, 5, 5), 4).tolist() == _square(6, 6, range(3, 6), range(3, 6))
    assert square_mask(_peak(6, 6, 0, 5), 5).tolist() == _square(6, 6, range(0, 3), range(3, 6))
    assert square_mask(_peak(3, 3, 1, 1), 9).all()  # larger than the map: everything


def test_each_image_uses_its_own_maximum_and_ties_go_to_the_first():
    a = torch.zeros(2, 5, 5)
    a[0, 4, 0] = 2.0
    a[1, 1, 1] = a[1, 3, 3] = 1.0  # tie: the first in row-major order, (1, 1)
    m = square_mask(a, 3)
    assert m[0].tolist() == _square(5, 5, range(3, 5), range(0, 2))[0]
    assert m[1].tolist() == _square(5, 5, range(0, 3), range(0, 3))[0]


def test_mask_side_is_a_fraction_of_the_shorter_side_rounded_half_up():
    assert mask_side(0.5, 14, 14) == 7 and mask_side(0.5, 7, 7) == 4 and mask_side(0.5, 28, 28) == 14
    assert mask_side(0.3, 14, 14) == 4 and mask_side(0.5, 6, 10) == 3 and mask_side(0.01, 4, 4) == 1
    assert mask_side(1.0, 5, 5) == 5


def test_the_layer_hides_the_square_of_the_channel_mean_maximum_for_drawn_images_only():
    layer = RegionDrop(mask_size=0.5).train()
    x = torch.rand(2, 3, 6, 6)
    x[:, :, 4, 1] += 5.0  # the channel mean peaks at (4, 1) in both images
    layer.drop = torch.tensor([True, False])
    y = layer(x)
    hidden = torch.tensor(_square(6, 6, range(3, 6), range(0, 3))[0])  # side 3 around (4, 1)
    assert torch.equal(y[0], x[0] * (~hidden).float())
    assert y[0][:, hidden].eq(0).all() and torch.equal(y[1], x[1])
    layer.eval()
    assert torch.equal(layer(x), x)  # identity at evaluation
    layer.train()
    layer.drop = None
    assert torch.equal(layer(x), x)  # identity outside the method's training step


def test_training_step_masks_the_stage_output_as_drawn():
    # a single layer at the last stage, dropping every image: the logits see the square hidden
    method = _rdap(stages=("block3",), drop_rate=1.0).train()
    layer = method.net.taps[tap_key("block3")]
    batch = _batch()
    ctx = step_context(seed=0, epoch=1, step=0, phase="main", num_classes=K)
    with torch.no_grad():
        plain = method.net.forward_features(batch["image"])  # no draws set: the layer passes through
    seen = {}
    method.net.stage_module("block3").register_forward_hook(lambda m, a, out: seen.__setitem__("out", out))
    out = method.training_step(batch, ctx)
    hidden = square_mask(plain.mean(dim=1), mask_side(0.5, 8, 8))
    torch.testing.assert_close(seen["out"], plain * (~hidden)[:, None].float())
    torch.testing.assert_close(out["logits"], method.net.forward_head(seen["out"]))
    assert layer.drop is None  # disarmed after the step
    # drop_rate 0: the step is the plain network's
    method = _rdap(stages=("block3",), drop_rate=0.0).train()
    torch.testing.assert_close(method.training_step(batch, ctx)["logits"], method.net(batch["image"]))


def test_draws_follow_drop_rate_per_image_and_layer():
    method = _rdap(drop_rate=0.5).train()
    layers = method.layers()
    assert [type(m) for m in layers] == [RegionDrop, RegionDrop] and method.stages == ("block2", "block3")
    seen = []
    for layer in layers:
        layer.register_forward_pre_hook(lambda m, args: seen.append(m.drop.clone()))
    batch = _batch(n=64)
    method.training_step(batch, step_context(seed=0, epoch=1, step=0, phase="main", num_classes=K))
    expected = torch.rand(2, 64, generator=step_context(seed=0, epoch=1, step=0, phase="main",
                                                        num_classes=K).generator) < 0.5
    assert torch.equal(torch.stack(seen), expected)
    assert 16 < int(expected.sum()) < 112  # about half of the 128 draws


@pytest.mark.parametrize("backbone, stages", [
    ("vgg16_wsol", ("pool3", "conv4_3", "conv5_3")),
    ("resnet50_wsol", ("layer3.0", "layer4.0", "layer4")),
    ("se_resnet50", ("layer3.0", "layer4.0", "layer4")),
    ("preresnet18", ("layer3.0", "layer4.0", "layer4")),
    ("inception_v3_wsol", ("Mixed_5d", "Mixed_6e", "head_conv2")),
])
def test_published_placement_per_backbone_family(backbone, stages):
    with torch.device("meta"):
        net = create_backbone(backbone, num_classes=K)
        method = create_method("rdap", net=net, objective=build_objective("ce"))
    assert method.stages == stages
    assert set(net.taps) == {tap_key(s) for s in stages}


@pytest.mark.parametrize("params, words", [
    ({"mask_size": 0.0}, "method.mask_size"), ({"mask_size": 1.5}, "method.mask_size"),
    ({"drop_rate": -0.1}, "method.drop_rate"), ({"stages": ("block3", "block3")}, "method.stages"),
    ({"stages": ("layer9",)}, "method.stages"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _rdap(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_checkpoints_are_the_backbones_and_maps_are_the_native_cam(tmp_path):
    method = _rdap(seed=0)
    plain = create_backbone("small_cnn", num_classes=K, width=4)
    assert set(method.state_dict()) == {f"net.{k}" for k in plain.state_dict()}  # the layers hold no state
    save_weights(tmp_path / "model.pt", method)
    other = _rdap(seed=5)
    load_weights(other, tmp_path / "model.pt")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in method.state_dict().items())
    batch = _batch(n=3)
    other.eval()
    with torch.no_grad():
        logits, maps = other.localization_maps(batch["image"], batch["label"])
        feats = other.net.forward_features(batch["image"])
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, torch.einsum("bchw,bc->bhw", feats, other.net.fc.weight[batch["label"]]))

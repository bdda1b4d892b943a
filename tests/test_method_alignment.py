"""Feature-direction alignment: the similarity and norm losses are zero when the norm and similarity maps agree
(and hand-computed otherwise); the attentive-dropout mask covers exactly the drawn positions above the threshold;
F' is the rest of the network on the erased stage; the warm-up switches the alignment losses on; published
defaults per backbone; end to end with two objectives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsolbench.backbones import create_backbone
from wsolbench.cams.native import cam_from_features
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.alignment import alignment_losses, attentive_drop_mask, norm_map, similarity_maps
from wsolbench.objectives import build_objective
from method_fixtures import K, tiny_batch as _batch, tiny_method



def _alignment(seed: int = 0, objective: str = "ce", **params):
    return tiny_method("alignment", seed, objective, **params)


def _ctx(epoch: int = 1, step: int = 0):
    return step_context(seed=0, epoch=epoch, step=step, phase="main", num_classes=K)


def _agreeing_features():
    """Features (1, 2, 2, 2) and weights (2, 2): large features along w_0 on the object (the top row), small
    features opposite to w_0 and orthogonal to w_1 elsewhere, so n = 1 / 0 and s^0 = +1 / -1 there."""
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0, 0, :] = 3.0  # object: f = 3 w_0
    feats[0, 0, 1, :] = -0.5  # background: f = -0.5 w_0
    return feats, weight


@pytest.mark.parametrize("norm_by", ["max", "label"])
def test_the_alignment_losses_are_zero_when_the_norm_and_similarity_maps_agree(norm_by):
    feats, weight = _agreeing_features()
    n, sim = norm_map(feats), similarity_maps(feats, weight)
    assert n.tolist() == [[[1.0, 1.0], [0.0, 0.0]]]
    assert sim[0, 0].tolist() == [[1.0, 1.0], [-1.0, -1.0]] and sim[0, 1].abs().max() == 0
    loss_sim, loss_norm = alignment_losses(n, sim, torch.tensor([0]), 0.4, 0.2, norm_by)
    assert loss_sim.item() == pytest.approx(0.0, abs=1e-6) and loss_norm.item() == pytest.approx(0.0, abs=1e-6)

    # misaligned: the same norms with the directions swapped between object and background
    swapped = feats.clone()
    swapped[0, 0, 0, :], swapped[0, 0, 1, :] = -3.0, 0.5
    loss_sim, loss_norm = alignment_losses(norm_map(swapped), similarity_maps(swapped, weight), torch.tensor([0]),
                                           0.4, 0.2, norm_by)
    assert loss_sim.item() == pytest.approx(4.0)  # 2 + (+1) - (-1)
    # "max": max_k s^k is 0 on the large (opposite) features, +1 on the small ones: 1 + 0 - 0 = 1
    # "label": s^0 is -1 on the large features (n = 1), +1 on the small ones (n = 0): 1 + 1 - 0 = 2
    assert loss_norm.item() == pytest.approx(1.0 if norm_by == "max" else 2.0)


def test_the_alignment_losses_by_hand_on_a_partly_aligned_map():
    # one image, 1 x 3 positions, 2 channels; class 1 weight along channel 1
    feats = torch.tensor([[[[4.0, 0.0, 1.0]], [[0.0, 2.0, -1.0]]]])  # f = (4, 0), (0, 2), (1, -1)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n = norm_map(feats)  # norms 4, 2, sqrt 2 -> (1, (2 - r2) / (4 - r2), 0)
    r2 = math.sqrt(2)
    mid = (2 - r2) / (4 - r2)
    torch.testing.assert_close(n, torch.tensor([[[1.0, mid, 0.0]]]))
    sim = similarity_maps(feats, weight)  # s^1 = (0, 1, -1/r2), s^0 = (1, 0, 1/r2)
    torch.testing.assert_close(sim[0, 1, 0], torch.tensor([0.0, 1.0, -1 / r2]))
    # tau_fg 0.2 (mid = 0.2265 > 0.2): fg = positions 0, 1; tau_bg 0.1: bg = position 2
    loss_sim, loss_norm = alignment_losses(n, sim, torch.tensor([1]), 0.2, 0.1, "label")
    assert loss_sim.item() == pytest.approx(2 + (-1 / r2) - (0 + 1) / 2)
    # "label": s^1 > 0 at position 1 (n = mid), < 0 at position 2 (n = 0); position 0 (s = 0) in neither
    assert loss_norm.item() == pytest.approx(1 + 0 - mid)
    # "max": max_k s^k = (1, 1, 1/r2) > 0 everywhere, no s < 0: 1 + 0 - mean(n)
    _, loss_norm = alignment_losses(n, sim, torch.tensor([1]), 0.2, 0.1, "max")
    assert loss_norm.item() == pytest.approx(1 - (1 + mid) / 3)


def test_the_attentive_drop_mask_zeroes_exactly_the_drawn_positions_above_the_threshold():
    # channel means (1, 2, 2, 2 x 2 positions): [[1, 5], [9, 10]]; 0.8 * max = 8: 9 and 10 are above
    stage = torch.stack([torch.tensor([[0.0, 4.0], [8.0, 12.0]]), torch.tensor([[2.0, 6.0], [10.0, 8.0]])])[None]
    above = torch.tensor([[[[False, False], [True, True]]]])
    everything = attentive_drop_mask(stage, 0.8, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(everything, (~above).float())
    assert attentive_drop_mask(stage, 0.8, 0.0, torch.Generator().manual_seed(0)).eq(1).all()
    # the equality itself is kept (strictly greater, as the public code): threshold 0.9 -> only 10 > 9
    assert attentive_drop_mask(stage, 0.9, 1.0, torch.Generator().manual_seed(0)).flatten().tolist() == [1, 1, 1, 0]
    # p = 0.5: each position above is dropped iff its draw u <= p, drawn from the generator in row-major order
    mask = attentive_drop_mask(stage, 0.8, 0.5, torch.Generator().manual_seed(4))
    u = torch.rand(1, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(mask, 1.0 - (above & (u <= 0.5)).float())


def test_the_erased_features_are_the_rest_of_the_network_on_the_erased_stage():
    method = _alignment(drop_prob=1.0).train()
    net = method.net
    net.features[5].eval()  # block3 (after the drop stage block2) without batch statistics: per image
    batch = _batch()
    kept = {}
    # block2's hook registered after the tap sees the tap's output, cat([G, G * mask])
    net.features[4].register_forward_hook(lambda m, i, o: kept.__setitem__("stage", o))
    feats, erased = method.features(batch["image"], _ctx().generator)
    mask = method.drop.last_mask
    assert mask.shape == (2, 1, 8, 8) and 0 < mask.mean() < 1
    assert kept["stage"].shape[0] == 4
    stage = kept["stage"][:2]
    torch.testing.assert_close(kept["stage"][2:], stage * mask)
    with torch.no_grad():
        torch.testing.assert_close(feats, net.features[5](stage))
        torch.testing.assert_close(erased, net.features[5](stage * mask))
        means = stage.mean(dim=1, keepdim=True)
        peak = means.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        assert torch.equal(mask == 0, means > 0.8 * peak)  # drop_prob 1: every position above is dropped
    assert method.drop.generator is None  # disarmed after the pass


def test_the_warm_up_switches_the_similarity_and_norm_losses_on_after_warm_epochs():
    method = _alignment(warm_epochs=2).train()
    batch = _batch()
    for epoch in (1, 2):
        out = method.training_step(batch, _ctx(epoch=epoch))
        assert out["similarity"].item() == 0 and out["norm"].item() == 0
        torch.testing.assert_close(out["loss"], out["objective"] + out["drop"])
    out = method.training_step(batch, _ctx(epoch=3))
    feats, erased = method.features(batch["image"], _ctx(epoch=3).generator)  # the same draw
    loss_sim, loss_norm = alignment_losses(norm_map(feats), similarity_maps(feats, method.net.fc.weight),
                                           batch["label"], 0.4, 0.2, "max")
    torch.testing.assert_close(out["similarity"], 0.5 * loss_sim)
    torch.testing.assert_close(out["norm"], 0.05 * loss_norm)
    torch.testing.assert_close(out["drop"], 2.0 * F.l1_loss(feats, erased))
    torch.testing.assert_close(out["objective"], F.cross_entropy(method.net.forward_head(feats), batch["label"]))
    torch.testing.assert_close(out["loss"], out["objective"] + out["drop"] + out["similarity"] + out["norm"])
    assert out["similarity"] > 0 and out["norm"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in method.parameters())


def test_maps_are_the_plain_cam_and_the_dropout_is_off_in_eval_mode():
    method = _alignment().eval()
    batch = _batch(n=3)
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        feats = method.net.forward_features(batch["image"])
    assert feats.shape[0] == 3 and maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, cam_from_features(feats, method.net.fc.weight, batch["label"]))
    torch.testing.assert_close(logits, method.classify(batch["image"]))


@pytest.mark.parametrize("backbone, stage, values", [
    ("vgg16_wsol", "conv4_3", dict(lambda_norm=0.15, lambda_drop=3.0, fg_threshold=0.6, bg_threshold=0.1,
                                   drop_prob=0.5, warm_epochs=20)),
    ("resnet50_wsol", "layer4.0", dict(lambda_norm=0.05, lambda_drop=2.0, fg_threshold=0.4, bg_threshold=0.2,
                                       drop_prob=0.25, warm_epochs=20)),
    ("small_cnn", "block2", dict(lambda_norm=0.05, lambda_drop=2.0, fg_threshold=0.4, bg_threshold=0.2,
                                 drop_prob=0.25, warm_epochs=1)),
])
def test_published_defaults_per_backbone_family(backbone, stage, values):
    net = create_backbone(backbone, num_classes=K, **({"width": 4} if backbone == "small_cnn" else {}))
    method = create_method("alignment", net=net, objective=build_objective("ce"))
    p = method.params
    assert p.drop_stage == stage and list(net.taps) == [stage.replace(".", "_")]
    assert {k: getattr(p, k) for k in values} == values
    assert (p.lambda_sim, p.drop_threshold, p.norm_by) == (0.5, 0.8, "max")
    # a given value replaces the default, the others stay
    net = create_backbone(backbone, num_classes=K, **({"width": 4} if backbone == "small_cnn" else {}))
    method = create_method({"name": "alignment", "lambda_drop": 7.0, "warm_epochs": 3}, net=net,
                           objective=build_objective("ce"))
    assert (method.params.lambda_drop, method.params.warm_epochs, method.params.drop_prob) == (
        7.0, 3, values["drop_prob"])


@pytest.mark.parametrize("params, words", [
    ({"lambda_sim": -1.0}, "method.lambda_sim"), ({"lambda_drop": float("nan")}, "method.lambda_drop"),
    ({"fg_threshold": 1.5}, "method.fg_threshold"), ({"drop_prob": -0.1}, "method.drop_prob"),
    ({"drop_threshold": 2.0}, "method.drop_threshold"), ({"warm_epochs": -1}, "method.warm_epochs"),
    ({"norm_by": "mean"}, "method.norm_by"), ({"drop_stage": "conv9"}, "method.drop_stage"),
    ({"fg_threshold": 0.1, "bg_threshold": 0.3}, "method.fg_threshold"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _alignment(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_weights_survive_save_and_load_and_the_tap_keeps_no_state(tmp_path):
    method = _alignment(seed=0)
    save_weights(tmp_path / "model.pt", method)
    other = _alignment(seed=5)
    load_weights(other, tmp_path / "model.pt")
    assert set(other.state_dict()) == set(method.state_dict())
    assert all(torch.equal(other.state_dict()[k], v) for k, v in method.state_dict().items())
    assert not any(k.startswith("net.taps.") for k in method.state_dict())  # parameter-free dropout

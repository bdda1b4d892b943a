"""SPG: the guidance masks are exactly the thresholded regions (foreground > high, background < low, ignore
between, the public code's fallback); the losses are the masked BCEs of the right branches against the right
guidance; placement per backbone family; the branches survive save + load; end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsolbench.backbones import create_backbone
from wsolbench.cams.native import normalize_minmax
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.spg import guidance_masks, masked_bce
from wsolbench.objectives import build_objective
from method_fixtures import K, tiny_batch as _batch, tiny_method



def _spg(seed: int = 0, **params):
    return tiny_method("spg", seed, **params)


def test_guidance_masks_are_foreground_above_high_background_below_low_ignore_between():
    a = torch.tensor([[[0.0, 0.25, 0.5], [0.75, 1.0, 0.3]]])
    fg, bg = guidance_masks(a, 0.5, 0.25, min_foreground=0)
    # strict on both sides: 0.5 is not foreground, 0.25 is not background
    assert fg.tolist() == [[[False, False, False], [True, True, False]]]
    assert bg.tolist() == [[[True, False, False], [False, False, False]]]
    ignore = ~(fg | bg)
    assert ignore.tolist() == [[[False, True, True], [False, False, True]]]

    # the published first pair (0.7, 0.01) on a 2-image batch, each image on its own
    b = torch.tensor([[[0.005, 0.01, 0.69], [0.7, 0.71, 1.0]], [[0.0, 0.2, 0.9], [0.95, 0.009, 0.5]]])
    fg, bg = guidance_masks(b, 0.7, 0.01, min_foreground=0)
    assert fg.tolist() == [[[False, False, False], [False, True, True]], [[False, False, True], [True, False, False]]]
    assert bg.tolist() == [[[True, False, False], [False, False, False]], [[True, False, False], [False, True, False]]]


def test_too_few_foreground_pixels_fall_back_to_a_fraction_of_the_maximum():
    # image 0: nothing above 0.7 -> foreground is > 0.7 * 0.6 = 0.42; image 1 keeps its own threshold
    a = torch.tensor([[[0.6, 0.43, 0.41], [0.0, 0.2, 0.42]], [[0.8, 0.43, 0.41], [0.0, 0.2, 0.42]]])
    fg, bg = guidance_masks(a, 0.7, 0.1, min_foreground=1, fallback=0.7)
    assert fg.tolist() == [[[True, True, False], [False, False, False]], [[True, False, False], [False, False, False]]]
    assert bg.tolist() == [[[False, False, False], [True, False, False]]] * 2
    # the count is per image: 2 pixels above 0.7 are "fewer than 3"
    c = torch.tensor([[[0.9, 0.8, 0.5, 0.0]]])
    fg, _ = guidance_masks(c, 0.7, 0.01, min_foreground=3, fallback=0.5)
    assert fg.tolist() == [[[True, True, True, False]]]  # > 0.45
    # background wins where the fallback would also call a pixel foreground (a tiny maximum)
    d = torch.tensor([[[0.004, 0.002, 0.0]]])
    fg, bg = guidance_masks(d, 0.7, 0.01, min_foreground=30, fallback=0.7)
    assert not fg.any() and bg.all()


def test_masked_bce_averages_over_the_labelled_pixels_only():
    logits = torch.tensor([[[0.0, 0.0, 100.0, -100.0]]])
    fg = torch.tensor([[[True, False, False, False]]])
    bg = torch.tensor([[[False, True, False, False]]])
    # two labelled pixels at logit 0: log 2 each; the two ignored ones (any logit) do not count
    assert math.isclose(float(masked_bce(logits, fg, bg)), math.log(2), rel_tol=1e-6)
    none = torch.zeros_like(fg)
    assert float(masked_bce(logits, none, none)) == 0.0


def test_each_branch_is_trained_on_the_guidance_of_the_stage_that_produces_it():
    method = _spg().train()
    assert (method.b1_stage, method.b2_stage) == ("block1", "block2")
    seen = {}
    for stage in ("block1", "block2", "block3"):
        method.net.stage_module(stage).register_forward_hook(lambda m, a, out, s=stage: seen.__setitem__(s, out))
    batch = _batch()
    out = method.training_step(batch, step_context(seed=0, epoch=1, step=0, phase="main", num_classes=K))

    # by hand: attention = min-max of the label's CAM upsampled to 32 x 32; 1-channel branches upsampled
    with torch.no_grad():
        up = lambda t: F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
        cam = torch.einsum("bchw,bc->bhw", seen["block3"], method.net.fc.weight[batch["label"]])
        attention = normalize_minmax(up(cam[:, None]))
        b1 = up(method.b_shared(method.b1_in(seen["block1"])))
        b2 = up(method.b_shared(method.b2_in(seen["block2"])))
        c = up(method.head_c(seen["block3"]))
        p1, p2 = torch.sigmoid(b1), torch.sigmoid(b2)
        expected = {
            "guidance_b2": masked_bce(b2, *guidance_masks(attention, 0.7, 0.01)),
            "guidance_b1": masked_bce(b1, *guidance_masks(p2, 0.5, 0.05)),
            "guidance_c": masked_bce(c, *guidance_masks((p1 + p2) / 2, 0.7, 0.1)),
            "objective": F.cross_entropy(method.net.forward_head(seen["block3"]), batch["target"]),
        }
    for key, value in expected.items():
        torch.testing.assert_close(out[key], value, msg=key)
    torch.testing.assert_close(out["loss"], sum(expected.values()))
    # the first-stage guidance has both labels on this batch (a real supervision signal)
    fg, bg = guidance_masks(attention, 0.7, 0.01)
    assert fg.any() and bg.any()
    out["loss"].backward()
    assert all(p.grad is not None for p in method.parameters())


def test_maps_are_the_native_cam():
    method = _spg().eval()
    batch = _batch(n=3)
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        feats = method.net.forward_features(batch["image"])
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, torch.einsum("bchw,bc->bhw", feats, method.net.fc.weight[batch["label"]]))
    torch.testing.assert_close(logits, method.net(batch["image"]))


@pytest.mark.parametrize("backbone, b1, b2, width", [
    ("vgg16_wsol", "pool4", "conv5_3", 512),
    ("resnet50_wsol", "layer3.0", "layer3", 1024),
    ("inception_v3_wsol", "Mixed_5d", "Mixed_6d", 512),
])
def test_published_placement_per_backbone_family(backbone, b1, b2, width):
    with torch.device("meta"):
        net = create_backbone(backbone, num_classes=K)
        method = create_method("spg", net=net, objective=build_objective("ce"))
    assert (method.b1_stage, method.b2_stage) == (b1, b2)
    assert method.b1_in[0].in_channels == net.stage(b1).channels and method.b1_in[0].out_channels == width
    assert method.b2_in[0].in_channels == net.stage(b2).channels and method.b2_in[0].out_channels == width
    assert method.head_c[0][0].in_channels == net.stages[-1].channels and method.head_c[0][0].out_channels == 512


@pytest.mark.parametrize("params, words", [
    ({"threshold_1h": 0.005}, "method.threshold_1h/threshold_1l"),
    ({"threshold_2l": -0.1}, "method.threshold_2h/threshold_2l"),
    ({"threshold_3h": 1.5}, "method.threshold_3h/threshold_3l"),
    ({"min_foreground": -1}, "method.min_foreground"),
    ({"b1_stage": "layer9"}, "method.b1_stage"),
    ({"b1_stage": "block2"}, "must differ"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _spg(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_branches_survive_save_and_load(tmp_path):
    method = _spg(seed=0)
    save_weights(tmp_path / "model.pt", method)
    other = _spg(seed=5)
    assert not torch.equal(other.b1_in[0].weight, method.b1_in[0].weight)
    load_weights(other, tmp_path / "model.pt")
    own = method.state_dict()
    assert {k.split(".")[0] for k in own} >= {"b1_in", "b2_in", "b_shared", "head_c", "net"}
    assert all(torch.equal(other.state_dict()[k], v) for k, v in own.items())

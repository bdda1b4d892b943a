"""CutMix: the box by hand (half sizes, clipping), the pasted pixels come from the permuted image, the
label mix equals the pasted area fraction after clipping, the draws come from the step's generator,
the maps are the plain CAM; end to end with two objectives."""

from __future__ import annotations


import pytest
import torch

from wsolbench.backbones import create_backbone
from wsolbench.cams.native import cam_from_features
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.cutmix import Box, CutMixDraw, cutmix, cutmix_box, draw_cutmix, mix_targets
from wsolbench.objectives import CrossEntropy, build_objective, cross_entropy, soft_targets

K = 4


class RecordingCE(CrossEntropy):
    """CE that keeps the last target it was given."""

    def loss(self, logits, target):
        self.target = target
        return cross_entropy(logits, target)


def _cutmix(seed: int = 0, objective=None, **params):
    torch.manual_seed(seed)
    net = create_backbone("small_cnn", num_classes=K, width=4)
    return create_method({"name": "cutmix", **params}, net=net, objective=objective or build_objective("ce"))


def _constant_images(n: int, h: int, w: int) -> torch.Tensor:
    """Image i is the constant i + 1 (every pixel tells which image it came from)."""
    return (torch.arange(n, dtype=torch.float32) + 1).view(n, 1, 1, 1).expand(n, 3, h, w).clone()


def _ctx(step: int = 0):
    return step_context(seed=0, epoch=1, step=step, phase="main", num_classes=K)


def test_cutmix_box_by_hand():
    # lam 0.75: sqrt(1 - lam) = 0.5, cut 5 on a 10 x 10 image, half size 5 // 2 = 2 on both sides
    assert cutmix_box(10, 10, 0.75, cy=5, cx=5) == Box(3, 7, 3, 7)  # 4 x 4, not 5 x 5 (public code)
    assert cutmix_box(10, 10, 0.75, cy=1, cx=8) == Box(0, 3, 6, 10)  # clipped at the top and the right
    assert cutmix_box(10, 10, 0.75, cy=1, cx=8).area == 12
    # non-square: rows 8, columns 12 -> half sizes int(4) // 2 = 2 and int(6) // 2 = 3
    assert cutmix_box(8, 12, 0.75, cy=7, cx=0) == Box(5, 8, 0, 3)
    assert cutmix_box(10, 10, 0.0, cy=5, cx=5) == Box(0, 10, 0, 10)  # lam 0: the whole image
    assert cutmix_box(10, 10, 1.0, cy=5, cx=5).area == 0  # lam 1: nothing pasted


def test_the_label_mix_equals_the_pasted_area_fraction_after_clipping():
    x = _constant_images(3, 10, 10)
    labels = torch.tensor([0, 1, 3])
    draw = CutMixDraw(lam=0.75, perm=torch.tensor([2, 0, 1]), cy=1, cx=8)
    mixed, target, box = cutmix(x, labels, draw, K)
    assert box == Box(0, 3, 6, 10)
    for i, j in enumerate(draw.perm.tolist()):
        from_j = (mixed[i] == j + 1).all(dim=0)  # the pixels that now come from image j
        assert torch.equal(from_j[0:3, 6:10], torch.ones(3, 4, dtype=torch.bool)) and from_j.sum() == 12
        assert torch.equal(mixed[i][:, ~from_j], x[i][:, ~from_j])
        expected = torch.zeros(K)
        expected[labels[i]] += 0.88
        expected[labels[j]] += 0.12  # 12 of 100 pixels
        torch.testing.assert_close(target[i], expected)
    assert torch.equal(x, _constant_images(3, 10, 10))  # the input is not modified


def test_random_boxes_mix_labels_by_exactly_the_pixels_taken_from_the_other_image():
    gen = torch.Generator().manual_seed(0)
    n, h, w = 4, 9, 13
    x = _constant_images(n, h, w)
    labels = torch.arange(n)  # one class per image: the target weight of class j = pixels from image j
    clipped = 0
    for _ in range(50):
        draw = draw_cutmix(n, h, w, beta=1.0, prob=1.0, generator=gen)
        mixed, target, box = cutmix(x, labels, draw, n)
        half_h, half_w = int(h * (1 - draw.lam) ** 0.5) // 2, int(w * (1 - draw.lam) ** 0.5) // 2
        clipped += box.area < (2 * half_h) * (2 * half_w)
        for i in range(n):
            share = torch.stack([(mixed[i, 0] == j + 1).float().mean() for j in range(n)])
            torch.testing.assert_close(target[i], share)
    assert clipped > 0  # some boxes were clipped at the border


def test_distribution_targets_are_mixed_too():
    soft = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    mixed = mix_targets(soft, torch.tensor([1, 0]), 0.25, K)
    torch.testing.assert_close(mixed, torch.tensor([[0.375, 0.375, 0.25, 0.0], [0.125, 0.125, 0.75, 0.0]]))
    torch.testing.assert_close(mixed.sum(1), torch.ones(2))
    # an image paired with itself keeps its label
    torch.testing.assert_close(mix_targets(torch.tensor([2]), torch.tensor([0]), 0.3, K), soft_targets(
        torch.tensor([2]), K))


def test_training_step_trains_on_the_mixed_images_and_targets_of_the_steps_draw():
    recorder = RecordingCE()
    method = _cutmix(objective=recorder).train()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    original = x.clone()
    seen = {}
    method.net.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    out = method.training_step({"image": x, "label": y, "target": y}, _ctx(step=2))
    draw = draw_cutmix(4, 32, 32, 1.0, 1.0, _ctx(step=2).generator)  # the same draw
    mixed, target, box = cutmix(x, y, draw, K)
    assert 0 < box.area < 32 * 32
    assert torch.equal(seen["x"], mixed) and torch.equal(recorder.target, target)
    torch.testing.assert_close(out["loss"], cross_entropy(out["logits"], target))
    assert torch.equal(x, original)
    # prob 0: never mixed, the target is passed through as given
    plain = _cutmix(objective=recorder, prob=0.0).train()
    plain.training_step({"image": x, "label": y, "target": y}, _ctx())
    assert torch.equal(recorder.target, y)


def test_draws_follow_the_mixing_probability_and_the_beta_prior():
    draws = [draw_cutmix(8, 16, 16, 1.0, 0.5, _ctx(step=s).generator) for s in range(400)]
    mixed = [d for d in draws if d is not None]
    assert 150 < len(mixed) < 250
    lams = torch.tensor([d.lam for d in mixed])
    assert 0.4 < lams.mean() < 0.6 and lams.min() < 0.1 and lams.max() > 0.9  # Beta(1, 1) = uniform
    assert all(sorted(d.perm.tolist()) == list(range(8)) for d in mixed)
    assert {d.cy for d in mixed} == set(range(16)) and {d.cx for d in mixed} == set(range(16))
    peaked = torch.tensor([draw_cutmix(2, 8, 8, 50.0, 1.0, _ctx(step=s).generator).lam for s in range(100)])
    assert (peaked - 0.5).abs().max() < 0.2  # Beta(50, 50) concentrates at 1/2
    again = draw_cutmix(8, 16, 16, 1.0, 0.5, _ctx(step=7).generator)
    first = draws[7]
    assert (again is None) == (first is None)
    if again is not None:
        assert again.lam == first.lam and torch.equal(again.perm, first.perm) and again.cy == first.cy


def test_maps_are_the_plain_cam():
    method = _cutmix().eval()
    x = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([0, 1, 2])
    with torch.no_grad():
        logits, maps = method.localization_maps(x, classes)
        feats = method.net.forward_features(x)
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, cam_from_features(feats, method.net.fc.weight, classes))
    torch.testing.assert_close(logits, method.classify(x))


@pytest.mark.parametrize("params, words", [
    ({"beta": 0.0}, "method.beta"), ({"beta": float("inf")}, "method.beta"),
    ({"prob": 1.5}, "method.prob"), ({"prob": -1.0}, "method.prob"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _cutmix(**params)
    assert words in str(err.value) and "\n" not in str(err.value)

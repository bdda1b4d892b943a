"""Min-max entropy: the loss is minimal for a mask equal to the object (a constructed case, every binary mask of
a grid); the localizer's pooling, map and pseudo-binary mask against hand computations; recursive erasing's
trust and accumulation by hand; the classifier sees exactly x * M+ and x * (1 - M+); the mask is detached
unless asked; the map is the localizer's; its parameters survive save + load; end to end."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.backbones import create_backbone
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods import create_method, step_context
from wsolbench.methods.minmax_entropy import (
    RoleStatistics,
    WildcatHead,
    batch_norms,
    erase_step,
    localizer_map,
    minmax_losses,
    per_image_nll,
    pseudo_binary,
    uniform_cross_entropy,
)
from wsolbench.objectives import build_objective

K = 3


def _minmax(seed: int = 0, objective: str = "ce", **params):
    torch.manual_seed(seed)
    net = create_backbone("small_cnn", num_classes=K, width=4)
    return create_method({"name": "minmax_entropy", **params}, net=net, objective=build_objective(objective))


def _batch(n: int = 3):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.arange(n) % K
    return {"image": x, "label": y, "target": y}


def _ctx(epoch: int = 1, step: int = 0):
    return step_context(seed=0, epoch=epoch, step=step, phase="main", num_classes=K)


class EvidenceClassifier(nn.Module):
    """A fixed classifier for the constructed case: per pixel, scores ``A x_p`` (a 1 x 1 conv), then the maximum
    over pixels. Object pixels (1, 0, 0) score (a, 0, 0): evidence for class 0; background pixels (0, 1, 0) score
    (c, c, c): no class, but they dilute the object's margin; hidden pixels (0) score (0, 0, 0)."""

    def __init__(self, a: float = 4.0, c: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, K, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = a
            self.conv.weight[:, 1] = c

    def forward(self, x):
        return self.conv(x).amax(dim=(2, 3))


def test_the_minmax_loss_is_minimal_for_the_mask_equal_to_the_object():
    # a 6 x 6 image in a 3 x 3 grid of 2 x 2 cells; the object is an L of three cells, the rest background
    cells = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    obj = cells.repeat_interleave(2, 0).repeat_interleave(2, 1)
    image = torch.zeros(1, 3, 6, 6)
    image[0, 0][obj] = 1.0
    image[0, 1][~obj] = 1.0
    f, ce = EvidenceClassifier(), build_objective("ce")
    # every binary mask of the grid (2^9), as one batch
    grids = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(-1, 3, 3)
    masks = grids.repeat_interleave(2, 1).repeat_interleave(2, 2)
    x = image.expand(len(masks), -1, -1, -1)
    target = torch.zeros(len(masks), dtype=torch.long)
    m = masks.unsqueeze(1)
    fg = F.cross_entropy(f(x * m), target, reduction="none")
    bg = -F.log_softmax(f(x * (1 - m)), dim=1).mean(dim=1)
    total = fg + bg
    best = int(total.argmin())
    assert torch.equal(masks[best].bool(), obj)
    assert (total[torch.arange(len(masks)) != best] > total[best] + 1e-3).all()  # the unique minimum
    # its value by hand: CE of (4, 0, 0) on the object + CE(u, uniform) = log 3 on the background
    assert total[best].item() == pytest.approx(math.log(1 + 2 * math.exp(-4)) + math.log(3), rel=1e-6)
    # the method's loss function gives the same numbers, and soft masks are no better
    fg_obj, bg_obj, _ = minmax_losses(f, image, obj[None].float(), torch.tensor([0]), ce)
    assert (fg_obj + bg_obj).item() == pytest.approx(total[best].item(), rel=1e-6)
    for soft in (0.9 * obj.float(), obj.float() * 0.5 + 0.25, obj.float().clamp(min=0.2)):
        fg_s, bg_s, _ = minmax_losses(f, image, soft[None], torch.tensor([0]), ce)
        assert (fg_s + bg_s).item() > total[best].item()


def test_the_wildcat_head_pools_the_top_fraction_of_each_class_map():
    head = WildcatHead(channels=2, num_classes=2, modalities=2, kmax=0.5, dropout=0.5)
    with torch.no_grad():  # class 0's modalities read channel 0 (x1, x3), class 1's channel 1 (x2, x0)
        head.to_modalities.weight.copy_(torch.tensor([[1.0, 0], [3.0, 0], [0, 2.0], [0, 0]]).view(4, 2, 1, 1))
        head.to_modalities.bias.zero_()
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[4.0, 0.0], [1.0, 1.0]]]])
    maps = head.class_maps(feats)
    torch.testing.assert_close(maps[0, 0], 2 * feats[0, 0])  # mean of 1x and 3x
    torch.testing.assert_close(maps[0, 1], feats[0, 1])  # mean of 2x and 0x
    head.eval()
    scores = head.pool(maps)  # top round(0.5 * 4) = 2 values: (8 + 6) / 2, (4 + 1) / 2
    assert scores.tolist() == [[7.0, 2.5]]
    head.train()
    gen = torch.Generator().manual_seed(2)
    dropped = head.pool(maps, gen)
    keep = torch.rand(1, 2, 2, generator=torch.Generator().manual_seed(2)) >= 0.5
    top = torch.tensor([[[8.0, 6.0], [4.0, 1.0]]])
    torch.testing.assert_close(dropped, (top * keep / 0.5).sum(dim=2) / 2)
    assert head.pool(maps).tolist() == [[7.0, 2.5]]  # without a generator no dropout
    # a tiny map keeps at least one value
    assert WildcatHead(2, 2, kmax=0.09).eval().pool(torch.ones(1, 2, 2, 2)).tolist() == [[1.0, 1.0]]


def test_the_localizer_map_and_the_pseudo_binary_mask_by_hand():
    scores = torch.tensor([[0.0, math.log(3.0)]])  # softmax (1/4, 3/4)
    maps = torch.tensor([[[[4.0, 0.0]], [[0.0, 4.0]]]])
    raw = localizer_map(scores, maps)
    torch.testing.assert_close(raw, torch.tensor([[[1.0, 3.0]]]))
    raw = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])  # min-max: 0, .25, .5, 1
    mask = pseudo_binary(raw, (2, 2), 8.0, 0.5)
    expected = torch.sigmoid(8 * (torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]) - 0.5))
    torch.testing.assert_close(mask, expected)
    up = pseudo_binary(torch.tensor([[[0.0, 1.0]]]), (1, 3), 8.0, 0.5)  # bilinear, aligned corners: 0, .5, 1
    torch.testing.assert_close(up, torch.sigmoid(8 * (torch.tensor([[[0.0, 0.5, 1.0]]]) - 0.5)))
    assert pseudo_binary(torch.full((1, 2, 2), 3.0), (2, 2), 8.0, 0.5).allclose(torch.sigmoid(torch.tensor(-4.0)))


def test_the_background_term_is_the_cross_entropy_to_uniform():
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]])
    logp = F.log_softmax(logits, dim=1)
    assert uniform_cross_entropy(logits[:1]).item() == pytest.approx(math.log(3))
    assert uniform_cross_entropy(logits).item() == pytest.approx(float(-logp.mean(dim=1).mean()))
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(per_image_nll(logits, soft), -(soft * logp).sum(dim=1))
    torch.testing.assert_close(per_image_nll(logits, torch.tensor([0, 2])), -logp[[0, 1], [0, 2]])


def test_erase_step_trusts_correct_confident_images_and_accumulates_their_masks():
    image = torch.ones(2, 3, 1, 2)
    mask = torch.tensor([[[0.5, 1.0]], [[1.0, 1.0]]])
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7]])  # image 0 predicts 0 (correct), image 1 predicts 1 (wrong)
    labels = torch.tensor([0, 0])
    ce = -probs[[0, 1], [0, 0]].log()
    acc, erased, history = erase_step(image, torch.zeros(2, 1, 2), mask, probs, ce, ce, labels,
                                      torch.ones(2), t=0, sigma=10.0)
    assert history.tolist() == [1.0, 0.0]
    torch.testing.assert_close(acc, torch.tensor([[[0.4, 0.8]], [[0.0, 0.0]]]))  # trust 0.8 * 1, 0
    torch.testing.assert_close(erased[0], torch.ones(3, 1, 2) * torch.tensor([0.6, 0.2]))
    assert torch.equal(erased[1], image[1])  # an untrusted image is not erased
    # pass 1: trust decays by exp(-1/10); a mask below the accumulated one changes nothing (max)
    acc2, erased2, history2 = erase_step(erased, acc, torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]]), probs, ce, ce,
                                         labels, history, t=1, sigma=10.0)
    trust = 0.8 * math.exp(-0.1)
    torch.testing.assert_close(acc2[0], torch.tensor([[trust, 0.8]]))
    torch.testing.assert_close(erased2[0], erased[0] * (1 - acc2[0]))
    assert history2.tolist() == [1.0, 0.0] and acc2[1].eq(0).all()
    # a pass whose loss exceeds the first pass's is not trusted
    acc3, erased3, _ = erase_step(erased, acc, mask, probs, ce + 1.0, ce, labels, history, t=1, sigma=10.0)
    assert torch.equal(acc3, acc) and torch.equal(erased3, erased)


def test_the_classifier_sees_exactly_the_foreground_and_the_background():
    method = _minmax().train()
    batch = _batch()
    for epoch, most in ((1, 1), (2, 4)):  # no erasing in the first epoch, up to 4 passes after
        inputs: list[torch.Tensor] = []
        handle = method.net.register_forward_pre_hook(lambda m, args, seen=inputs: seen.append(args[0]))
        out = method.training_step(batch, _ctx(epoch=epoch))
        handle.remove()
        mask, losses, passes = method.foreground_mask(batch, _ctx(epoch=epoch))  # the same draws
        assert 1 <= passes <= most and len(losses) == passes
        # the localizer's passes run forward_features only; the classifier's two run the whole net
        m = mask.unsqueeze(1)
        assert len(inputs) == 2
        assert torch.equal(inputs[0], batch["image"] * m) and torch.equal(inputs[1], batch["image"] * (1 - m))
        torch.testing.assert_close(out["foreground"], F.cross_entropy(out["logits"], batch["label"]))
        torch.testing.assert_close(out["background"], uniform_cross_entropy(method.net(inputs[1])))
        torch.testing.assert_close(out["localizer"], sum(losses))
        torch.testing.assert_close(out["loss"], out["localizer"] + out["foreground"] + out["background"])
        assert mask.min() >= 0 and mask.max() <= 1 and not mask.requires_grad
    out["loss"].backward()
    assert all(p.grad is not None for p in method.parameters())


@pytest.mark.parametrize("mask_gradient", [False, True])
def test_the_minmax_terms_reach_the_localizer_only_with_mask_gradient(mask_gradient):
    method = _minmax(mask_gradient=mask_gradient, erase_times=0).train()
    out = method.training_step(_batch(), _ctx())
    (out["foreground"] + out["background"]).backward()
    grad = method.localizer.to_modalities.weight.grad
    assert (grad is not None and grad.abs().sum() > 0) == mask_gradient


def _random_statistics(means, variances, seed):
    gen = torch.Generator().manual_seed(seed)
    for mean, var in zip(means, variances):
        mean.copy_(torch.randn(mean.shape, generator=gen))
        var.copy_(torch.rand(var.shape, generator=gen) + 0.5)


def test_the_map_is_the_localizers_and_the_logits_are_the_foregrounds_under_their_statistics():
    method = _minmax().eval()
    layers = batch_norms(method.net)
    with torch.no_grad():  # three different sets of running statistics: the localizer's (the net's own), fg, bg
        _random_statistics([bn.running_mean for bn in layers], [bn.running_var for bn in layers], 1)
        for role, seed in (("foreground", 2), ("background", 3)):
            holder = getattr(method.bn_stats, role)
            _random_statistics([getattr(holder, f"running_mean{i}") for i in range(len(layers))],
                               [getattr(holder, f"running_var{i}") for i in range(len(layers))], seed)
    batch = _batch()
    # an independent copy of the classifier carrying the foreground statistics in its own layers
    fg_net = copy.deepcopy(method.net)
    for i, bn in enumerate(batch_norms(fg_net)):
        bn.running_mean.copy_(getattr(method.bn_stats.foreground, f"running_mean{i}"))
        bn.running_var.copy_(getattr(method.bn_stats.foreground, f"running_var{i}"))
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        scores, class_maps = method.localizer(method.net.forward_features(batch["image"]))
        raw = localizer_map(scores, class_maps)
        mask = pseudo_binary(raw, (32, 32), 8.0, 0.5)
        expected = fg_net(batch["image"] * mask.unsqueeze(1))
        plain = method.net(batch["image"] * mask.unsqueeze(1))
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, raw)  # the localizer reads the net's own statistics
    torch.testing.assert_close(logits, expected)  # the classifier the foreground's
    assert not torch.allclose(logits, plain, atol=1e-3)  # and they matter
    torch.testing.assert_close(method.classify(batch["image"]), logits)
    # class-agnostic: the same map for every class
    _, other = method.localization_maps(batch["image"], (batch["label"] + 1) % K)
    torch.testing.assert_close(other, maps)


def test_role_statistics_keep_one_running_average_per_role_by_hand():
    net = nn.Sequential(nn.BatchNorm1d(2, momentum=0.5))
    roles = RoleStatistics(net, ("a",))
    own, theirs = net[0].running_mean, roles.a.running_mean0
    net.train()
    net(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))  # own: mean (2, 4), unbiased var (2, 8)
    with roles.use(net, "a"):
        net(torch.tensor([[0.0, 10.0], [2.0, 10.0]]))  # a: mean (1, 10), var (2, 0)
    net(torch.tensor([[5.0, 0.0], [5.0, 0.0]]))  # own again: mean (5, 0), var (0, 0)
    # momentum 0.5 from (0, 1): own mean 0.5 * (0.5 * 0 + 0.5 * (2, 4)) + 0.5 * (5, 0); a's once
    torch.testing.assert_close(net[0].running_mean, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(net[0].running_var, torch.tensor([0.75, 2.25]))
    torch.testing.assert_close(roles.a.running_mean0, torch.tensor([0.5, 5.0]))
    torch.testing.assert_close(roles.a.running_var0, torch.tensor([1.5, 0.5]))
    assert net[0].num_batches_tracked.item() == 2 and roles.a.num_batches_tracked0.item() == 1
    assert net[0].running_mean is own and roles.a.running_mean0 is theirs  # swapped back, not copied
    net.eval()
    with roles.use(net, "a"):  # evaluation normalizes with the role's averages
        out = net(torch.tensor([[0.5, 5.0]]))
    torch.testing.assert_close(out, torch.zeros(1, 2), atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError), roles.use(net, "a"):
        raise RuntimeError("restored on errors too")
    assert net[0].running_mean is own
    with roles.use(net, "b"):  # a role without statistics of its own: the layers' own
        assert net[0].running_mean is own


def test_the_running_statistics_of_each_role_come_from_its_passes_only():
    """The bug this guards: one set of running statistics averaged the localizer's whole images with the
    classifier's foregrounds and backgrounds, so at evaluation the classifier of x * M saw statistics of
    none of them (quick preset: test top-1 30 % with, 100 % with batch statistics)."""
    method = _minmax(erase_times=0).train()
    first = batch_norms(method.net)[0]
    seen: list[torch.Tensor] = []
    handle = first.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    method.training_step(_batch(), _ctx())
    handle.remove()
    assert len(seen) == 3  # localizer on x, classifier on x * M, classifier on x * (1 - M)
    m = first.momentum
    for stats, inputs in ((first, seen[0]), (method.bn_stats.foreground, seen[1]),
                          (method.bn_stats.background, seen[2])):
        suffix = "" if stats is first else "0"
        torch.testing.assert_close(getattr(stats, "running_mean" + suffix), m * inputs.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(getattr(stats, "running_var" + suffix),
                                   (1 - m) + m * inputs.var(dim=(0, 2, 3), unbiased=True))
    # without split_bn the one set of statistics averages all three passes (the old behaviour)
    mixed = _minmax(erase_times=0, split_bn=False).train()
    assert not list(mixed.bn_stats.buffers())
    mixed.training_step(_batch(), _ctx())
    expected = torch.zeros(first.num_features)
    for inputs in seen:
        expected = (1 - m) * expected + m * inputs.mean(dim=(0, 2, 3))
    torch.testing.assert_close(batch_norms(mixed.net)[0].running_mean, expected)


def test_the_localizer_survives_save_and_load(tmp_path):
    method = _minmax(seed=0)
    layers = len(batch_norms(method.net))
    stats = {f"bn_stats.{role}.{stat}{i}" for role in ("foreground", "background") for i in range(layers)
             for stat in ("running_mean", "running_var", "num_batches_tracked")}
    keys = {k for k in method.state_dict() if not k.startswith("net.")}
    assert keys == {"localizer.to_modalities.weight", "localizer.to_modalities.bias"} | stats
    assert method.localizer.to_modalities.weight.shape == (K * 5, 16, 1, 1)  # small: C x K x 5 modalities
    with torch.no_grad():
        method.bn_stats.foreground.running_mean0.fill_(0.25)
    save_weights(tmp_path / "model.pt", method)
    other = _minmax(seed=5)
    load_weights(other, tmp_path / "model.pt")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in method.state_dict().items())
    assert other.bn_stats.foreground.running_mean0.eq(0.25).all()


@pytest.mark.parametrize("params, words", [
    ({"erase_times": -1}, "method.erase_times"), ({"erase_sigma": 0.0}, "method.erase_sigma"),
    ({"erase_start_epoch": 0}, "method.erase_start_epoch"), ({"modalities": 0}, "method.modalities"),
    ({"kmax": 0.0}, "method.kmax"), ({"pool_dropout": 1.0}, "method.pool_dropout"),
    ({"mask_w": -8.0}, "method.mask_w"), ({"mask_sigma": 2.0}, "method.mask_sigma"),
    ({"split_bn": 1}, "method.split_bn"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _minmax(**params)
    assert words in str(err.value) and "\n" not in str(err.value)

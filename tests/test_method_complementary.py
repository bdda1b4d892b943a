"""Complementary regions: the two masks partition the image (every pixel in exactly one of the two images),
for Hide-and-Seek's cells and for CutMix boxes; the cells and boxes follow their recipes; CAAM, SSAM and the
fusion loss against hand computations (SSAM weighs each position most on itself; the fusion loss cannot fall
by flattening a map); the network sees exactly the two complementary images; the map is the fused one; the
new modules survive save + load."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from wsolbench.cams.native import cam_from_features, normalize_minmax
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods.complementary import (
    ChannelAssistedAttention,
    SpatialSelfAttention,
    box_masks,
    complementary_images,
    draw_boxes,
    fusion_loss,
)
from wsolbench.methods.has import draw_hidden
from method_fixtures import main_ctx as _ctx, tiny_batch as _batch, tiny_method


def _complementary(seed: int = 0, **params):
    return tiny_method("complementary", seed, **params)


def test_box_masks_are_exactly_the_half_open_boxes():
    boxes = torch.tensor([[1, 3, 0, 2], [0, 0, 1, 3]])  # (y0, y1, x0, x1); the second is empty
    region = box_masks(boxes, 4, 3)
    assert region[0].int().tolist() == [[0, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert not region[1].any()


def test_the_complementary_masks_partition_the_image():
    gen = torch.Generator().manual_seed(3)
    boxes = draw_boxes(64, 20, 24, 1.0, gen)
    region = box_masks(boxes, 20, 24)
    x = torch.rand(64, 3, 20, 24) + 0.5  # no pixel is 0
    hidden, shown = complementary_images(x, region)
    # R and 1 - R: disjoint, covering; the two images add up to the original exactly
    assert torch.equal(hidden + shown, x)
    visible_1, visible_2 = hidden != 0, shown != 0
    assert torch.equal(visible_1 ^ visible_2, torch.ones_like(visible_1))  # every pixel in exactly one image
    assert torch.equal(visible_2, region[:, None].expand_as(x))  # image 2 shows the box, every channel
    assert torch.equal(hidden[region[:, None].expand_as(x)], torch.zeros(int(region.sum()) * 3))
    # boxes stay inside the image, and their area fractions spread over (0, 1) (lam ~ Beta(1, 1) = U(0, 1))
    y0, y1, x0, x1 = boxes.unbind(1)
    assert (y0 >= 0).all() and (y1 <= 20).all() and (x0 >= 0).all() and (x1 <= 24).all()
    assert (y0 <= y1).all() and (x0 <= x1).all()
    area = region.float().mean(dim=(1, 2))
    assert 0.1 < area.mean() < 0.6 and area.max() > 0.5 and area.min() < 0.05


def test_the_default_region_is_hide_and_seek_cells_and_the_images_partition_them():
    method = _complementary()
    x = torch.rand(8, 3, 32, 32) + 0.5  # no pixel is 0
    region = method.draw_region(x, _ctx(step=4).generator)
    _, expected = draw_hidden(8, 32, 32, (4,), 0.5, _ctx(step=4).generator)  # the same draws
    assert torch.equal(region, expected)
    # whole 4 x 4 cells: constant on each cell, about half of them hidden
    cells = region.view(8, 8, 4, 8, 4)
    assert torch.equal(cells, cells[:, :, :1, :, :1].expand_as(cells))
    assert 0.35 < region.float().mean() < 0.65
    hidden, shown = complementary_images(x, region)
    assert torch.equal(hidden + shown, x)
    assert torch.equal((hidden != 0) ^ (shown != 0), torch.ones_like(x, dtype=torch.bool))
    assert torch.equal(shown != 0, region[:, None].expand_as(x))  # image 2 shows exactly the hidden cells
    boxes = _complementary(region="box").draw_region(x, _ctx(step=4).generator)
    assert torch.equal(boxes, box_masks(draw_boxes(8, 32, 32, 1.0, _ctx(step=4).generator), 32, 32))


def test_boxes_follow_cutmix_recipe_from_the_generator():
    import numpy as np

    boxes = draw_boxes(3, 10, 10, 1.0, torch.Generator().manual_seed(5))
    copy = torch.Generator().manual_seed(5)
    seed = int(torch.randint(0, 2**63 - 1, (), generator=copy))
    lam = np.random.default_rng(seed).beta(1.0, 1.0, size=3)
    cy, cx = torch.randint(10, (3,), generator=copy), torch.randint(10, (3,), generator=copy)
    for i in range(3):
        side = int(10 * float(np.sqrt(np.float32(lam[i]))))
        expected = [max(int(cy[i]) - side // 2, 0), min(int(cy[i]) + side // 2, 10),
                    max(int(cx[i]) - side // 2, 0), min(int(cx[i]) + side // 2, 10)]
        assert boxes[i].tolist() == expected
    assert torch.equal(draw_boxes(3, 10, 10, 1.0, torch.Generator().manual_seed(5)), boxes)  # reproducible


def test_caam_attends_to_the_other_images_channels_by_hand():
    caam = ChannelAssistedAttention()
    g1 = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, C=2, 1, N=2): channels (1, 0), (0, 2)
    g2 = torch.tensor([[[[0.0, 1.0]], [[3.0, 0.0]]]])  # channels (0, 1), (3, 0)
    a1, a2 = caam(g1, g2)
    assert torch.equal(a1, g1) and torch.equal(a2, g2)  # gamma starts at 0: the identity
    with torch.no_grad():
        caam.gamma.fill_(0.5)
    a1, _ = caam(g1, g2)
    # E = G1 G2^T = [[0, 3], [2, 0]]; rowmax - E = [[3, 0], [0, 2]]; softmax per row
    e3, e2 = torch.tensor(3.0).exp(), torch.tensor(2.0).exp()
    att = torch.tensor([[e3 / (e3 + 1), 1 / (e3 + 1)], [1 / (1 + e2), e2 / (1 + e2)]])
    expected = g1[0, :, 0] + 0.5 * att @ g2[0, :, 0]
    torch.testing.assert_close(a1[0, :, 0], expected)


def test_ssam_is_scaled_cosine_position_attention_by_hand():
    torch.manual_seed(0)
    ssam = SpatialSelfAttention(channels=4, reduction=2)
    g = torch.randn(2, 4, 2, 3)
    assert torch.equal(ssam(g), g)  # gamma starts at 0
    assert ssam.log_scale.exp().item() == pytest.approx(10.0)
    with torch.no_grad():
        ssam.gamma.fill_(0.7)
    out = ssam(g)
    for b in range(2):
        k = ssam.key(g[b:b + 1])[0].flatten(1)  # (C', N): one projection for query and key
        v = ssam.value(g[b:b + 1])[0].flatten(1)  # (C, N)
        for i in range(6):  # output position i: sum_j softmax_j(10 cos(k_i, k_j)) v_j
            cos = torch.stack([F.cosine_similarity(k[:, i], k[:, j], dim=0) for j in range(6)])
            weights = torch.softmax(10 * cos, dim=0)
            torch.testing.assert_close(out[b].flatten(1)[:, i], g[b].flatten(1)[:, i] + 0.7 * v @ weights)
    with torch.no_grad():  # the scale is clipped at 100
        ssam.log_scale.fill_(10.0)
    k = F.normalize(ssam.key(g).flatten(2), dim=1)
    torch.testing.assert_close(ssam.attention(g), torch.softmax(100 * k.transpose(1, 2) @ k, dim=-1))


def test_ssam_weighs_every_position_most_on_itself():
    """The guard of the SSAM choice: with dot-product attention a position can put its weight on another one
    (background positions learned to copy the object's features); with one projection and cosine similarity
    its own weight is the largest of its row, whatever the weights."""
    torch.manual_seed(1)
    for _ in range(5):
        ssam = SpatialSelfAttention(channels=8, reduction=2)
        with torch.no_grad():
            ssam.log_scale.uniform_(-2.0, 5.0)
        att = ssam.attention(torch.randn(3, 8, 4, 4) * 3)  # (B, N, N)
        own = att.diagonal(dim1=1, dim2=2)
        assert (own[..., None] >= att - 1e-6).all()
    # with dot products (DANet) it need not be: positions (1, 0) and (2, 0), the identity as query and key,
    # give position 0 the scores (1, 2): it weighs position 1 more than itself
    feats = torch.tensor([[1.0, 2.0], [0.0, 0.0]])  # (C, N)
    dot = torch.softmax(feats.T @ feats, dim=-1)
    assert dot[0, 1] > dot[0, 0]


def test_fusion_loss_pulls_each_map_up_to_the_fused_maximum():
    c1 = torch.tensor([[[3.0, 1.0]]], requires_grad=True)  # min-max: (1, 0)
    c2 = torch.tensor([[[0.0, 2.0]]], requires_grad=True)  # min-max: (0, 1)
    loss = fusion_loss(c1, c2)  # T = (1, 1): ((0 + 1) + (1 + 0)) / 2
    assert loss.item() == pytest.approx(1.0)
    loss.backward()  # each map raised where the other is higher, by 1 / (range * pixels)
    assert c1.grad.tolist() == [[[0.0, -0.25]]] and c2.grad.tolist() == [[[-0.25, 0.0]]]
    flat = torch.full((1, 1, 2), 0.5, requires_grad=True)
    assert fusion_loss(flat, flat).item() == 0
    fusion_loss(flat, c2.detach()).backward()  # a constant map is 0 and gets no gradient
    assert flat.grad.abs().sum() == 0


def test_the_fusion_loss_cannot_fall_by_flattening_a_map_by_hand():
    """The guard of the fix: CAM_1 = (0, 1, 2) -> A_1 = (0, .5, 1), CAM_2 = (0, 2, 1) -> A_2 = (0, 1, .5),
    T = (0, 1, 1), loss = (.5 + .5) / 3. Held constant, the range 2 gives d loss / d CAM_1 = (0, -1/2, 0) / 3:
    only the pixel below T is raised. Differentiated, the minimum and the maximum would get + 1/12 each:
    the descent would deepen the minimum and lower the maximum, flattening A_1 towards 1 (what training
    found: one very low pixel and the rest of the map near 1)."""
    cam1 = torch.tensor([[[0.0, 1.0, 2.0]]], requires_grad=True)
    cam2 = torch.tensor([[[0.0, 2.0, 1.0]]], requires_grad=True)
    loss = fusion_loss(cam1, cam2)
    assert loss.item() == pytest.approx(1 / 3)
    loss.backward()
    torch.testing.assert_close(cam1.grad, torch.tensor([[[0.0, -1 / 6, 0.0]]]))
    torch.testing.assert_close(cam2.grad, torch.tensor([[[0.0, 0.0, -1 / 6]]]))
    # the same loss through a differentiable normalization: the gradient that flattened the maps
    old1 = cam1.detach().clone().requires_grad_(True)
    a1 = (old1 - old1.min()) / (old1.max() - old1.min())
    a2 = torch.tensor([[[0.0, 1.0, 0.5]]])
    fused = torch.maximum(a1, a2).detach()
    ((fused - a1).abs() + (fused - a2).abs()).mean().backward()
    torch.testing.assert_close(old1.grad, torch.tensor([[[1 / 12, -1 / 6, 1 / 12]]]))


def test_training_step_feeds_the_backbone_exactly_the_two_complementary_images():
    method = _complementary().train()
    batch = _batch()
    seen = {}
    method.net.features.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    out = method.training_step(batch, _ctx(step=2))
    region = method.draw_region(batch["image"], _ctx(step=2).generator)  # the same draw
    hidden, shown = complementary_images(batch["image"], region)
    assert torch.equal(seen["x"], torch.cat([hidden, shown]))
    assert 0 < region.float().mean() < 1
    torch.testing.assert_close(out["loss"], out["objective_1"] + out["objective_2"] + out["fusion"])
    with torch.no_grad():
        h1, h2 = method.branches(hidden, shown)
        l1, l2 = method.heads(h1, h2)
        m1, m2 = method.attention_maps(h1, h2, batch["label"])
    torch.testing.assert_close(out["objective_1"], F.cross_entropy(l1, batch["label"]))
    torch.testing.assert_close(out["objective_2"], F.cross_entropy(l2, batch["label"]))
    torch.testing.assert_close(out["fusion"], (m1 - m2).abs().mean())  # fusion_weight 1
    torch.testing.assert_close(out["logits"], (l1 + l2) / 2)
    out["loss"].backward()
    assert all(p.grad is not None for p in method.parameters())
    # another step draws other cells
    assert not torch.equal(method.draw_region(batch["image"], _ctx(step=3).generator), region)


def test_the_map_is_the_fused_map_of_both_branches_on_the_whole_image():
    method = _complementary().eval()
    with torch.no_grad():
        method.caam.gamma.fill_(0.3)
        method.ssam.gamma.fill_(0.2)
    batch = _batch(n=3)
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        feats = method.net.forward_features(batch["image"])
        a, _ = method.caam(feats, feats)
        h = method.ssam(a)
        cam1 = cam_from_features(h, method.net.fc.weight, batch["label"])
        cam2 = cam_from_features(h, method.fc2.weight, batch["label"])
        l1, l2 = method.net.forward_head(h), method.fc2(h.mean(dim=(2, 3)))
    assert maps.shape == (3, 8, 8) and maps.min() >= 0 and maps.max() <= 1
    torch.testing.assert_close(maps, torch.maximum(normalize_minmax(cam1), normalize_minmax(cam2)))
    torch.testing.assert_close(logits, (l1 + l2) / 2)
    torch.testing.assert_close(method.classify(batch["image"]), logits)


def test_the_new_modules_survive_save_and_load(tmp_path):
    method = _complementary(seed=0)
    with torch.no_grad():
        method.caam.gamma.fill_(0.25)
        method.ssam.gamma.fill_(-0.5)
    keys = {k for k in method.state_dict() if not k.startswith("net.")}
    assert keys == {"caam.gamma", "ssam.gamma", "ssam.log_scale", "ssam.key.weight", "ssam.key.bias",
                    "ssam.value.weight", "ssam.value.bias", "fc2.weight", "fc2.bias"}
    save_weights(tmp_path / "model.pt", method)
    other = _complementary(seed=5)
    load_weights(other, tmp_path / "model.pt")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in method.state_dict().items())
    assert other.caam.gamma.item() == 0.25 and other.ssam.gamma.item() == -0.5


@pytest.mark.parametrize("params, words", [
    ({"fusion_weight": -1.0}, "method.fusion_weight"), ({"beta": 0.0}, "method.beta"),
    ({"reduction": 0}, "method.reduction"), ({"region": "cells"}, "method.region"),
    ({"grid_sizes": (4, -1)}, "method.grid_sizes"), ({"grid_sizes": ()}, "method.grid_sizes"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _complementary(**params)
    assert words in str(err.value) and "\n" not in str(err.value)

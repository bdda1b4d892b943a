"""Hide-and-Seek: exactly the chosen cells are hidden (filled with 0, the normalization mean) in every
channel; the cells tile the image and are cut at the border; the network sees the hidden image; the
maps are the plain CAM; end to end with two objectives."""

from __future__ import annotations


import pytest
import torch

from wsolbench.cams.native import cam_from_features
from wsolbench.engine.state import load_weights, save_weights
from wsolbench.errors import ConfigError
from wsolbench.methods.has import draw_hidden, expand_cells, hide
from wsolbench.objectives import soft_targets
from method_fixtures import K, main_ctx as _ctx, tiny_method


def _has(seed: int = 0, **params):
    return tiny_method("has", seed, **params)


def _batch(n: int = 2, size: int = 32):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = torch.arange(n) % K
    return {"image": x, "label": y, "target": y}


def test_expand_cells_hides_exactly_the_chosen_cells_cut_at_the_border():
    # a 5 x 5 image in 2 x 2 cells: a 3 x 3 grid whose last row and column are 1 pixel wide
    cells = torch.tensor([[[True, False, False],
                           [False, False, True],
                           [False, True, False]]])
    expected = torch.tensor([[[1, 1, 0, 0, 0],
                              [1, 1, 0, 0, 0],
                              [0, 0, 0, 0, 1],
                              [0, 0, 0, 0, 1],
                              [0, 0, 1, 1, 0]]], dtype=torch.bool)
    assert torch.equal(expand_cells(cells, 2, 5, 5), expected)
    # a non-square image (rows 3, columns 4) in 3 x 3 cells: 1 x 2 cells, the second 1 pixel wide
    wide = expand_cells(torch.tensor([[[False, True]]]), 3, 3, 4)
    assert wide.tolist() == [[[False, False, False, True]] * 3]


def test_hide_sets_every_channel_of_exactly_the_hidden_pixels_to_zero():
    x = torch.randn(2, 3, 4, 4) + 5.0  # no pixel is 0 before hiding
    hidden = torch.zeros(2, 4, 4, dtype=torch.bool)
    hidden[0, 1, 2] = hidden[0, 3, 0] = hidden[1, 0, 0] = True
    out = hide(x, hidden)
    assert torch.equal(out == 0, hidden[:, None].expand_as(x))
    assert torch.equal(out[~hidden[:, None].expand_as(x)], x[~hidden[:, None].expand_as(x)])
    assert not torch.equal(out, x) and x.min() > 0  # x itself is untouched


def test_draw_hidden_hides_each_cell_whose_draw_is_below_the_rate_in_row_major_order():
    gen = torch.Generator().manual_seed(7)
    sizes, hidden = draw_hidden(2, 6, 6, (3,), 0.5, gen)
    # by hand from a copy of the generator: the size indices, then the 2 x 2 cells of both images
    copy = torch.Generator().manual_seed(7)
    torch.randint(1, (2,), generator=copy)
    u = torch.rand(2, 2, 2, generator=copy)
    assert sizes.tolist() == [3, 3]
    for i in range(2):
        for r in range(2):
            for c in range(2):
                block = hidden[i, 3 * r:3 * r + 3, 3 * c:3 * c + 3]
                assert block.all() if u[i, r, c] < 0.5 else not block.any()


def test_draw_hidden_masks_are_whole_cells_of_each_images_drawn_size():
    gen = torch.Generator().manual_seed(3)
    sizes, hidden = draw_hidden(64, 20, 20, (0, 4, 5, 8), 0.5, gen)
    assert set(sizes.tolist()) == {0, 4, 5, 8}  # every size is drawn at least once in 64 images
    fractions = []
    for size, mask in zip(sizes.tolist(), hidden, strict=True):
        if size == 0:
            assert not mask.any()
            continue
        n = -(-20 // size)
        cells = torch.zeros(n, n, dtype=torch.bool)
        for r in range(n):
            for c in range(n):
                block = mask[r * size:(r + 1) * size, c * size:(c + 1) * size]
                assert block.all() or not block.any()  # a cell is hidden whole or not at all
                cells[r, c] = block.all()
        assert torch.equal(expand_cells(cells[None], size, 20, 20)[0], mask)
        fractions.append(cells.float().mean())
    assert 0.4 < torch.stack(fractions).mean() < 0.6  # each cell hidden with probability 0.5
    # rate 0 hides nothing, rate 1 every pixel (of the images with a non-zero size)
    assert not draw_hidden(4, 9, 9, (2,), 0.0, gen)[1].any()
    assert draw_hidden(4, 9, 9, (2,), 1.0, gen)[1].all()


def test_training_step_feeds_the_network_exactly_the_hidden_image():
    method = _has(grid_sizes=(4,)).train()
    batch = _batch()
    original = batch["image"].clone()
    seen = {}
    method.net.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    out = method.training_step(batch, _ctx(step=3))
    expected, hidden = method.hide_batch(batch["image"], _ctx(step=3).generator)  # the same draw
    assert torch.equal(seen["x"], expected)
    assert 0 < hidden.float().mean() < 1
    assert torch.equal(seen["x"][hidden[:, None].expand_as(original)], torch.zeros(int(hidden.sum()) * 3))
    keep = ~hidden[:, None].expand_as(original)
    assert torch.equal(seen["x"][keep], original[keep])
    assert torch.equal(batch["image"], original)  # the batch itself is not modified
    torch.testing.assert_close(out["loss"], out["objective"])
    torch.testing.assert_close(out["loss"], torch.nn.functional.cross_entropy(out["logits"], batch["label"]))
    # another step hides other cells
    other, _ = method.hide_batch(batch["image"], _ctx(step=4).generator)
    assert not torch.equal(other, expected)


def test_distribution_targets_pass_through_unchanged():
    method = _has().train()
    batch = _batch(n=3)
    soft = soft_targets(batch["label"], K) * 0.5 + 1.0 / (2 * K)
    out = method.training_step({**batch, "target": soft}, _ctx())
    logp = torch.log_softmax(out["logits"], dim=1)
    torch.testing.assert_close(out["objective"], -(soft * logp).sum(1).mean())


def test_maps_are_the_plain_cam_and_nothing_is_hidden_in_eval_mode():
    method = _has().eval()
    batch = _batch(n=3)
    with torch.no_grad():
        logits, maps = method.localization_maps(batch["image"], batch["label"])
        feats = method.net.forward_features(batch["image"])
    assert maps.shape == (3, 8, 8)
    torch.testing.assert_close(maps, cam_from_features(feats, method.net.fc.weight, batch["label"]))
    torch.testing.assert_close(logits, method.classify(batch["image"]))


def test_weights_survive_save_and_load(tmp_path):
    method = _has(seed=0)
    save_weights(tmp_path / "model.pt", method)
    other = _has(seed=5)
    load_weights(other, tmp_path / "model.pt")
    assert all(torch.equal(other.state_dict()[k], v) for k, v in method.state_dict().items())


@pytest.mark.parametrize("params, words", [
    ({"grid_sizes": ()}, "method.grid_sizes"), ({"grid_sizes": (-1,)}, "method.grid_sizes"),
    ({"grid_sizes": "4,x"}, "method.grid_sizes"),
    ({"drop_rate": 1.5}, "method.drop_rate"), ({"drop_rate": -0.1}, "method.drop_rate"),
])
def test_invalid_settings_are_one_line_config_errors(params, words):
    with pytest.raises(ConfigError) as err:
        _has(**params)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_papers_mixed_sizes_are_one_setting():
    method = _has(grid_sizes="0,16,32,44,56")
    assert method.config.grid_sizes == (0, 16, 32, 44, 56)

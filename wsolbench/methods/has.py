"""Hide-and-Seek (Singh & Lee, "Hide-and-Seek: Forcing a Network to be Meticulous for Weakly-supervised
Object and Action Localization", ICCV 2017).

At training time each image is split into a grid of ``S x S``-pixel cells and every cell is hidden
independently with probability ``drop_rate``; the network then has to find the object from the parts
left visible, so it cannot rely on the most discriminative part alone::

    S        ~ Uniform(grid_sizes)                            one cell size per image, in pixels
    hidden_c ~ Bernoulli(drop_rate)                           per cell c, cells tiling the image from (0, 0)
    x'(p)    = 0 if p lies in a hidden cell, else x(p)        every channel; 0 = the normalization mean
    loss     = objective(f(x'), target)

At evaluation the image is unchanged (hiding is train-only) and the localization map is the native
CAM; the logits are the backbone's.

Hyperparameters, their defaults and sources:

- ``grid_sizes`` (4,): the cell side in pixels of the network input, one value drawn uniformly per
  image; 0 means "hide nothing" for that image. Default 4: wsolevaluation's ``has_grid_size``
  (``config.py``, protocol notes 1.1), the community protocol this benchmark follows. The paper's
  "mixed" setting, a size drawn per image from {0, 16, 32, 44, 56} at 224 x 224 (its Torch
  ``-patchSize 0,16,32,44,56`` and ``hide_patch.py``), is ``--set method.grid_sizes=0,16,32,44,56``;
  a single paper size (GoogLeNet-HaS-32) is ``--set method.grid_sizes=32``. The cells tile the input
  from its top-left corner; the last row and column of cells are cut at the border when S does not
  divide the size (as both public codes do).
- ``drop_rate`` 0.5: the probability of hiding each cell, wsolevaluation's ``has_drop_rate`` and the
  paper's ``p_hide``. A cell is hidden when its uniform draw is ``< drop_rate`` (the paper's Torch
  code; wsolevaluation's ``<=`` differs only on a null set), so 0 hides nothing and 1 everything.

Choices the paper leaves open, and ours:

- The fill. The paper sets hidden pixels to the mean RGB of the training images, so that the
  expected activation of a conv filter is the same at training and test time. Both public codes
  multiply the mean-subtracted input by the mask, i.e. fill with 0 after normalization; here the
  input is normalized with the ImageNet mean and std for every dataset (``wsolbench.structs``), so
  the fill is 0 in the normalized input, the ImageNet mean pixel (the dataset mean on ImageNet, and
  what wsolevaluation fills for CUB and OpenImages too). Pixels are replaced (``torch.where``), not
  multiplied, so a hidden pixel is exactly 0.
- Randomness: the cell size and the hidden cells of every image come from the step's generator.

Published for AlexNet-GAP and GoogLeNet-GAP (Singh & Lee) and run by wsolevaluation on VGG16,
ResNet-50 and Inception-v3; an input transformation, so it applies to every backbone. No parameters
of its own; the backbone's parameters get a gradient in every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod


def expand_cells(cells: Tensor, grid: int, height: int, width: int) -> Tensor:
    """Pixel mask ``(N, height, width)`` from a cell mask ``(N, ceil(height / grid), ceil(width / grid))``.

    Cell ``(i, j)`` covers rows ``i * grid .. min((i + 1) * grid, height) - 1`` and the same columns: the
    cells tile the image from its top-left corner and the last ones are cut at the border.
    """
    return cells.repeat_interleave(grid, dim=1).repeat_interleave(grid, dim=2)[:, :height, :width]


def draw_hidden(batch: int, height: int, width: int, grid_sizes: tuple[int, ...], drop_rate: float,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw Hide-and-Seek's hidden pixels for ``batch`` images of ``height`` x ``width`` (CPU).

    Returns ``(sizes, hidden)``: ``sizes`` ``(batch,)`` long, the cell side drawn uniformly from
    ``grid_sizes`` for each image; ``hidden`` ``(batch, height, width)`` bool, the union of the hidden
    cells (each cell hidden when its uniform draw is ``< drop_rate``; no pixel for a size of 0).
    Draw order: the sizes, then, for each distinct non-zero size in the order of ``grid_sizes``, the
    cells of its images (image order, row-major cells).
    """
    choices = torch.tensor(grid_sizes, dtype=torch.long)
    sizes = choices[torch.randint(len(grid_sizes), (batch,), generator=generator)]
    hidden = torch.zeros(batch, height, width, dtype=torch.bool)
    for grid in dict.fromkeys(grid_sizes):  # distinct, in order
        images = (sizes == grid).nonzero().flatten()
        if grid == 0 or images.numel() == 0:
            continue
        cells = torch.rand(images.numel(), math.ceil(height / grid), math.ceil(width / grid),
                           generator=generator) < drop_rate
        hidden[images] = expand_cells(cells, grid, height, width)
    return sizes, hidden


def hide(x: Tensor, hidden: Tensor, fill: float = 0.0) -> Tensor:
    """``x`` ``(B, C, H, W)`` with every channel of the ``hidden`` ``(B, H, W)`` pixels set to ``fill``."""
    return torch.where(hidden.to(x.device)[:, None], torch.full((), fill, dtype=x.dtype, device=x.device), x)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@METHODS.register("has")
class HideAndSeek(WsolMethod):
    """Hide-and-Seek (Singh & Lee, ICCV 2017): hide random grid cells of the training images.

    Each ``S x S`` cell (S drawn per image from ``grid_sizes``) is hidden with probability ``drop_rate``
    and filled with the normalization mean (0). See the module docstring for the formula, the defaults
    and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "drop_rate"
        grid_sizes: tuple[int, ...] = (4,)  # cell side in input pixels, one drawn per image (wsolevaluation: 4)
        drop_rate: float = 0.5  # probability of hiding each cell (wsolevaluation has_drop_rate, the paper)

        def __post_init__(self) -> None:
            g = self.grid_sizes
            if (not isinstance(g, tuple) or not g
                    or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in g)):
                raise ConfigError(f"method.grid_sizes must be one or more integers >= 0 (pixels), got {g!r}")
            p = self.drop_rate
            if not (_number(p) and 0 <= p <= 1):
                raise ConfigError(f"method.drop_rate must be a number in [0, 1], got {p!r}")

    def hide_batch(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(hidden image, hidden pixels (B, H, W) bool on x's device)`` for a training batch ``x``."""
        _, hidden = draw_hidden(x.shape[0], x.shape[-2], x.shape[-1], self.config.grid_sizes,
                                self.config.drop_rate, generator)
        hidden = hidden.to(x.device, non_blocking=True)
        return hide(x, hidden), hidden

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x, _ = self.hide_batch(batch["image"], ctx.generator)
        logits = self.net(x)
        parts = {"objective": self.objective(logits, batch["target"])}
        return {"loss": sum(parts.values()), **parts, "logits": logits}

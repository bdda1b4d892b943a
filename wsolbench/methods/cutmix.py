"""CutMix (Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features", ICCV 2019).

With probability ``prob`` per training batch, a box of every image is replaced by the same box of
another image of the batch, and the targets are mixed by the pasted area::

    lam     ~ Beta(beta, beta)
    pi      ~ a uniform random permutation of the batch
    (cy, cx) ~ Uniform{0..H-1} x Uniform{0..W-1}              the box centre, in pixels
    h_c, w_c = int(H sqrt(1 - lam)), int(W sqrt(1 - lam))
    box     = rows [clip(cy - h_c//2), clip(cy + h_c//2)), cols [clip(cx - w_c//2), clip(cx + w_c//2))
              (clip to [0, H] and [0, W]; one box for the whole batch)
    x'_i    = x_i outside the box, x_pi(i) inside it
    a       = |box| / (H W)                                    the pasted area, after clipping
    q'_i    = (1 - a) q_i + a q_pi(i)                          soft targets (q = one-hot or the given distribution)
    loss    = objective(f(x'), q')

Without mixing (probability ``1 - prob``) the step is the plain objective on the batch. At evaluation
nothing changes: the localization map is the native CAM and the logits are the backbone's.

Hyperparameters, their defaults and sources:

- ``beta`` 1.0 (lam uniform on [0, 1]): wsolevaluation's ``cutmix_beta`` (protocol notes 1.1) and the
  paper's ImageNet classification setting (alpha = 1).
- ``prob`` 1.0 (every batch is mixed): wsolevaluation's ``cutmix_prob``. A batch is mixed when its
  uniform draw is ``< prob`` (wsolevaluation's ``cutmix_prob > np.random.rand(1)``).

Where this follows the public code (Yun et al.'s ``train.py``, wsolevaluation ``wsol/method/cutmix.py``)
and what it leaves open:

- The box: the centre is uniform over the pixels, the half sizes are ``h_c // 2`` and ``w_c // 2`` on
  both sides (so an unclipped box is ``2 (h_c // 2)`` high, one pixel less than ``h_c`` when it is odd),
  and the box is clipped at the image border; the label weight is recomputed from the clipped box, so
  it is exactly the pasted area fraction. wsolevaluation's code takes ``size[2]`` as the width and
  ``size[3]`` as the height (the same for its square 224 x 224 crops); here rows are H and columns W.
- The label mix: the public code mixes two cross-entropies, ``(1 - a) CE(p, y_i) + a CE(p, y_pi(i))``.
  Every objective of this benchmark is linear in its target (``wsolbench.objectives``), so mixing
  the target distributions gives the same loss for CE and lets every objective (label smoothing,
  KL-uniform, ...) see the mixed label. Multi-label batches (distribution targets) are mixed the
  same way.
- ``pi`` may map an image to itself (a box of its own pixels, its own label), as in the public code.
- Randomness: the mixing decision, the permutation and the centre come from the step's generator;
  lam is drawn with numpy's Beta sampler seeded from that generator (torch's Beta sampler takes no
  generator), so the draw is still a function of (seed, epoch, step).

Published for ResNet and PyramidNet classifiers and, for WSOL, VGG-GAP and ResNet-50 (Yun et al.), and
run by wsolevaluation on VGG16, ResNet-50 and Inception-v3; an input transformation, so it applies to
every backbone. No parameters of its own; the backbone's parameters get a gradient in every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import soft_targets


class Box(NamedTuple):
    """A pixel box: rows ``top .. bottom - 1``, columns ``left .. right - 1`` (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)


class CutMixDraw(NamedTuple):
    """The random part of one CutMix step: ``lam``, the permutation ``perm`` ``(B,)`` and the box centre."""

    lam: float
    perm: Tensor
    cy: int
    cx: int


def cutmix_box(height: int, width: int, lam: float, cy: int, cx: int) -> Box:
    """The pasted box for ``lam`` centred on pixel ``(cy, cx)``, clipped to the image (public code's rule)."""
    cut = math.sqrt(1.0 - lam)
    half_h, half_w = int(height * cut) // 2, int(width * cut) // 2
    return Box(top=min(max(cy - half_h, 0), height), bottom=min(max(cy + half_h, 0), height),
               left=min(max(cx - half_w, 0), width), right=min(max(cx + half_w, 0), width))


def draw_cutmix(batch: int, height: int, width: int, beta: float, prob: float,
                generator: torch.Generator) -> CutMixDraw | None:
    """One step's draw from ``generator``: None when the batch is not mixed (probability ``1 - prob``)."""
    if not float(torch.rand((), generator=generator)) < prob:
        return None
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    lam = float(np.random.default_rng(seed).beta(beta, beta))
    perm = torch.randperm(batch, generator=generator)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    return CutMixDraw(lam=lam, perm=perm, cy=cy, cx=cx)


def paste(x: Tensor, perm: Tensor, box: Box) -> Tensor:
    """``x`` ``(B, C, H, W)`` with ``box`` of image i replaced by that of image ``perm[i]`` (a new tensor)."""
    out = x.clone()
    rows, cols = slice(box.top, box.bottom), slice(box.left, box.right)
    out[:, :, rows, cols] = x[perm.to(x.device)][:, :, rows, cols]
    return out


def mix_targets(target: Tensor, perm: Tensor, pasted: float, num_classes: int) -> Tensor:
    """``(1 - pasted) q + pasted q[perm]``, ``(B, K)`` float32; ``target`` is indices ``(B,)`` or distributions."""
    q = soft_targets(target, num_classes).float()
    return (1.0 - pasted) * q + pasted * q[perm.to(q.device)]


def cutmix(x: Tensor, target: Tensor, draw: CutMixDraw, num_classes: int) -> tuple[Tensor, Tensor, Box]:
    """Apply ``draw``: ``(mixed images, mixed targets (B, K), box)``; the targets are mixed by the
    pasted area fraction of the clipped box."""
    h, w = x.shape[-2:]
    box = cutmix_box(h, w, draw.lam, draw.cy, draw.cx)
    return paste(x, draw.perm, box), mix_targets(target, draw.perm, box.area / (h * w), num_classes), box


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@METHODS.register("cutmix")
class CutMix(WsolMethod):
    """CutMix (Yun et al., ICCV 2019): paste a box from another image, mix the labels by its area.

    With probability ``prob`` per batch; the box area comes from Beta(beta, beta) and the targets are
    mixed by the pasted area after clipping. See the module docstring for the formula, the defaults
    and their sources."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "beta"
        beta: float = 1.0  # Beta(beta, beta) for lam (wsolevaluation cutmix_beta, the paper)
        prob: float = 1.0  # probability of mixing a batch (wsolevaluation cutmix_prob)

        def __post_init__(self) -> None:
            if not (_number(self.beta) and self.beta > 0):
                raise ConfigError(f"method.beta must be a number > 0, got {self.beta!r}")
            if not (_number(self.prob) and 0 <= self.prob <= 1):
                raise ConfigError(f"method.prob must be a number in [0, 1], got {self.prob!r}")

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x, target = batch["image"], batch["target"]
        draw = draw_cutmix(x.shape[0], x.shape[-2], x.shape[-1], self.config.beta, self.config.prob,
                           ctx.generator)
        if draw is not None:
            x, target, _ = cutmix(x, target, draw, self.num_classes)
        logits = self.net(x)
        parts = {"objective": self.objective(logits, target)}
        return {"loss": sum(parts.values()), **parts, "logits": logits}

"""Complementary regions (Babar & Das, "Where to Look?: Mining Complementary Image Regions for Weakly
Supervised Object Localization", WACV 2021).

Two complementary images are made from one regional-dropout mask (what one hides, the other shows); the
backbone (shared) extracts their features, which interact through a channel-wise assisted attention module
(CAAM: a C x C attention between the two images' channels, added back with a learned scale) and a spatial
self-attention module (SSAM); two classifiers, one per image, are trained with the objective, and an
attention-based fusion loss couples their attention maps; the localization map is the fused one::

    R        = a box, area fraction lam ~ Beta(beta, beta), centre uniform, clipped     (B, H, W) in {0, 1}
    x_1      = x * (1 - R),   x_2 = x * R                       complementary: x_1 + x_2 = x, R + (1 - R) = 1
    G_1, G_2 = backbone features of x_1, x_2                    (B, C, N), N = h w
    CAAM     : G_a' = G_a + gamma_c * softmax(rowmax(E) - E) G_b,  E = G_a G_b^T (C x C),  (a, b) = (1, 2), (2, 1)
    SSAM     : H_a  = G_a' + gamma_s * V(G_a') softmax(Q(G_a')^T K(G_a'))^T                  (N x N), shared
    logits_a = fc_a(GAP(H_a)),  A_a = minmax(CAM of the label from fc_a on H_a)        (B, h, w) in [0, 1]
    T        = max(A_1, A_2), detached                          the fused map
    loss     = objective(logits_1, target) + objective(logits_2, target)
               + fusion_weight * mean_bhw [ |T - A_1| + |T - A_2| ]

At evaluation both branches see the whole image (no dropout); the logits are the mean of the two
classifiers' and the localization map is ``max(minmax(CAM_1), minmax(CAM_2))``.

No public code exists and the paper's text beyond its abstract was not available to us; every detail below is
our choice, with the reason.

- Regional dropout: the paper "adapt[s] regional dropout at complementary spatial locations"; regional dropout
  is the CutMix paper's term for Cutout / CutMix boxes, so ``R`` is CutMix's box (side ratio ``sqrt(lam)``,
  ``lam ~ Beta(beta, beta)``, centre uniform over the pixels, clipped at the borders) and the two images are
  Cutout's (box hidden) and its complement (only the box shown). ``beta`` 1.0 (``lam`` uniform), the CutMix
  default of the community protocol. One box per image (not per batch), drawn from the step's generator
  (``lam`` with numpy's Beta sampler seeded from it, as our CutMix). Hidden pixels are 0, the normalization
  mean, as Hide-and-Seek.
- Branches: the backbone is shared (the two images in one pass of 2B images) and the two classifiers are
  separate: classifier 1 is the backbone's own head ``fc``, classifier 2 a new linear layer (N(0, 0.01)
  weights, zero bias, as wsolevaluation's new layers). Branch 1 sees the Cutout image.
- CAAM: DANet's channel attention module (Fu et al., CVPR 2019: ``softmax(rowmax(E) - E)``, value = the
  features, learned scale initialized to 0) with the keys and values taken from the *other* image, so the
  channels of each image are assisted by the channels of the image that shows what it misses. One module
  (one ``gamma_c``) for both directions.
- SSAM: DANet's position attention module (1 x 1 convs: query and key to ``C // reduction`` channels,
  ``reduction`` 8 as DANet, value to C; learned scale initialized to 0), applied after CAAM, shared by the
  two branches. Both modules sit after the backbone's last stage (the CAM's map). The attention is computed
  in float32 (also under AMP).
- Attention maps: the CAMs of the ground-truth label from each classifier on its attended features,
  min-max normalized per image (as the evaluation does). Fusion: the element-wise maximum (as ACoL fuses two
  classifiers' maps). Fusion loss: each map is pulled up towards the fused map (an L1 to the detached
  maximum; its value is ``mean |A_1 - A_2|``), so each branch learns the object's extent that the other
  image shows; ``fusion_weight`` 1.0 (our choice: the maps are in [0, 1], the classification terms O(log K)).
- Evaluation: no dropout (train-time augmentation), so both branches read the whole image; CAAM then attends
  within one image's channels (DANet's self channel attention) and the branches differ by their classifiers.

Runs on every backbone (the modules adapt to the last stage's channels). The abstract reports CUB-200-2011
and ILSVRC 2016; which backbones the paper uses was not available to us. Every parameter is in every step's
graph (the attention's query and key convs get zero gradients while their scale is 0, as in DANet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsolbench.backbones import CamBackbone
from wsolbench.cams.native import cam_from_features
from wsolbench.errors import ConfigError
from wsolbench.methods.base import METHODS, StepContext, WsolMethod
from wsolbench.objectives import Objective


def draw_boxes(batch: int, height: int, width: int, beta: float, generator: torch.Generator) -> Tensor:
    """One box per image ``(B, 4)`` long ``(y0, y1, x0, x1)``, half-open: side ratio ``sqrt(lam)``,
    ``lam ~ Beta(beta, beta)``, centre uniform over the pixels, clipped at the borders (CutMix's box)."""
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(beta, beta, size=batch)).float()
    cy = torch.randint(height, (batch,), generator=generator)
    cx = torch.randint(width, (batch,), generator=generator)
    bh = (height * lam.sqrt()).long()
    bw = (width * lam.sqrt()).long()
    y0, y1 = (cy - bh // 2).clamp(0, height), (cy + bh // 2).clamp(0, height)
    x0, x1 = (cx - bw // 2).clamp(0, width), (cx + bw // 2).clamp(0, width)
    return torch.stack([y0, y1, x0, x1], dim=1)


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """``R`` ``(B, H, W)`` bool: True inside each image's half-open box ``(y0, y1, x0, x1)``."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    y0, y1, x0, x1 = (boxes[:, i, None] for i in range(4))
    in_rows = (rows >= y0) & (rows < y1)
    in_cols = (cols >= x0) & (cols < x1)
    return in_rows[:, :, None] & in_cols[:, None, :]


def complementary_images(x: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """``(x * (1 - R), x * R)``: the image with the region hidden and the image showing only the region
    (hidden pixels 0, every channel); ``x`` ``(B, 3, H, W)``, ``region`` ``(B, H, W)`` bool."""
    show = region.unsqueeze(1).to(x.dtype)
    return x * (1 - show), x * show


def normalize_minmax(maps: Tensor) -> Tensor:
    """``(x - min) / (max - min + 1e-15)`` per image, ``(B, h, w)``; differentiable (a constant map gives 0)."""
    flat = maps.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    return (shifted / (shifted.max(dim=1, keepdim=True).values + 1e-15)).view_as(maps)


def fusion_loss(map_1: Tensor, map_2: Tensor) -> Tensor:
    """``mean[|T - A_1| + |T - A_2|]`` with ``T = max(A_1, A_2)`` detached; maps ``(B, h, w)`` in [0, 1].

    An L1 to the detached fused map: where a map is the maximum its term and its gradient are 0, so only the
    lower map is pulled up (its value is ``mean |A_1 - A_2|``)."""
    fused = torch.maximum(map_1, map_2).detach()
    return ((fused - map_1).abs() + (fused - map_2).abs()).mean()


def _float32(x: Tensor) -> torch.autocast:
    return torch.autocast(device_type=x.device.type, enabled=False)


class ChannelAssistedAttention(nn.Module):
    """CAAM: ``G_a + gamma * softmax(rowmax(E) - E) G_b`` with ``E = G_a G_b^T`` ``(C x C)`` per image (DANet's
    channel attention with the keys and values from the other image); ``gamma`` starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, query: Tensor, partner: Tensor) -> Tensor:
        """``query`` assisted by ``partner``, both ``(B, C, h, w)``; float32."""
        b, c, h, w = query.shape
        with _float32(query):
            q, k = query.float().flatten(2), partner.float().flatten(2)  # (B, C, N)
            energy = q @ k.transpose(1, 2)  # (B, C, C)
            attention = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
            return q.view(b, c, h, w) + self.gamma * (attention @ k).view(b, c, h, w)

    def forward(self, g1: Tensor, g2: Tensor) -> tuple[Tensor, Tensor]:
        return self.attend(g1, g2), self.attend(g2, g1)


class SpatialSelfAttention(nn.Module):
    """SSAM: ``G + gamma * V(G) softmax(Q(G)^T K(G))^T`` over the N = h w positions (DANet's position
    attention); query and key to ``C // reduction`` channels (at least 1), value to C; ``gamma`` starts at 0."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, g: Tensor) -> Tensor:
        b, c, h, w = g.shape
        with _float32(g):
            g = g.float()
            q = self.query(g).flatten(2).transpose(1, 2)  # (B, N, C')
            k = self.key(g).flatten(2)  # (B, C', N)
            v = self.value(g).flatten(2)  # (B, C, N)
            attention = torch.softmax(q @ k, dim=-1)  # (B, N, N): row i attends over positions j
            return g + self.gamma * (v @ attention.transpose(1, 2)).view(b, c, h, w)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@METHODS.register("complementary")
class Complementary(WsolMethod):
    """Complementary regions (Babar & Das, WACV 2021): two branches on complementary regional-dropout images.

    The two images of one box (hidden / shown) are coupled by CAAM + SSAM and a fusion loss; the map is the
    maximum of the two normalized CAMs. Implemented from the paper's description; see the module docstring
    for each choice."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "fusion_weight"
        fusion_weight: float = 1.0  # weight of the attention-based fusion loss (our choice)
        beta: float = 1.0  # box area fraction ~ Beta(beta, beta) (CutMix's default)
        reduction: int = 8  # SSAM query/key channels = C // reduction (DANet)

        def __post_init__(self) -> None:
            if not (_number(self.fusion_weight) and self.fusion_weight >= 0):
                raise ConfigError(f"method.fusion_weight must be a number >= 0, got {self.fusion_weight!r}")
            if not (_number(self.beta) and self.beta > 0):
                raise ConfigError(f"method.beta must be a number > 0, got {self.beta!r}")
            r = self.reduction
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise ConfigError(f"method.reduction must be an integer >= 1, got {r!r}")

    def __init__(self, net: CamBackbone, objective: Objective, config: Config | None = None) -> None:
        super().__init__(net, objective, config)
        channels = net.stages[-1].channels
        self.caam = ChannelAssistedAttention()
        self.ssam = SpatialSelfAttention(channels, self.config.reduction)
        self.fc2 = nn.Linear(channels, net.num_classes)
        nn.init.normal_(self.fc2.weight, 0, 0.01)
        nn.init.zeros_(self.fc2.bias)

    def draw_region(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """This step's dropout region ``R`` ``(B, H, W)`` bool on ``x``'s device."""
        h, w = x.shape[-2:]
        return box_masks(draw_boxes(x.shape[0], h, w, self.config.beta, generator), h, w).to(x.device)

    def branches(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """The attended features ``(H_1, H_2)`` ``(B, C, h, w)`` float32 of the two images (one backbone pass
        when they differ; one for both when ``x2 is x1``)."""
        if x2 is x1:
            g1 = g2 = self.net.forward_features(x1)
        else:
            g1, g2 = self.net.forward_features(torch.cat([x1, x2])).chunk(2)
        a1, a2 = self.caam(g1, g2)
        h1, h2 = self.ssam(torch.cat([a1, a2])).chunk(2)
        return h1, h2

    def heads(self, h1: Tensor, h2: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits_1, logits_2)`` ``(B, K)``: ``fc`` on GAP(H_1), ``fc2`` on GAP(H_2)."""
        return self.net.forward_head(h1), self.fc2(torch.flatten(F.adaptive_avg_pool2d(h2, 1), 1))

    def attention_maps(self, h1: Tensor, h2: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """The two classifiers' CAMs of ``classes`` ``(B,)``, min-max normalized per image, ``(B, h, w)``."""
        with _float32(h1):
            cam1 = cam_from_features(h1.float(), self.net.head_weight.float(), classes)
            cam2 = cam_from_features(h2.float(), self.fc2.weight.float(), classes)
            return normalize_minmax(cam1), normalize_minmax(cam2)

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x = batch["image"]
        x1, x2 = complementary_images(x, self.draw_region(x, ctx.generator))
        h1, h2 = self.branches(x1, x2)
        logits1, logits2 = self.heads(h1, h2)
        map1, map2 = self.attention_maps(h1, h2, batch["label"])
        with _float32(x):
            parts = {"objective_1": self.objective(logits1, batch["target"]),
                     "objective_2": self.objective(logits2, batch["target"]),
                     "fusion": self.config.fusion_weight * fusion_loss(map1, map2)}
        return {"loss": sum(parts.values()), **parts, "logits": (logits1.float() + logits2.float()) / 2}

    def classify(self, x: Tensor) -> Tensor:
        """The mean of the two classifiers' logits, both branches on the whole image."""
        h1, h2 = self.branches(x, x)
        logits1, logits2 = self.heads(h1, h2)
        return (logits1.float() + logits2.float()) / 2

    def localization_maps(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean logits, max(minmax(CAM_1), minmax(CAM_2)))`` with both branches on the whole image."""
        h1, h2 = self.branches(x, x)
        logits1, logits2 = self.heads(h1, h2)
        map1, map2 = self.attention_maps(h1, h2, classes)
        return (logits1.float() + logits2.float()) / 2, torch.maximum(map1, map2)


__all__ = ["ChannelAssistedAttention", "Complementary", "SpatialSelfAttention", "box_masks",
           "complementary_images", "draw_boxes", "fusion_loss"]

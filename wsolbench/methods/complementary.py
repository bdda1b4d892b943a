"""Complementary regions (Babar & Das, "Where to Look?: Mining Complementary Image Regions for Weakly
Supervised Object Localization", WACV 2021).

Two complementary images are made from one regional-dropout mask (what one hides, the other shows); the
backbone (shared) extracts their features, which interact through a channel-wise assisted attention module
(CAAM: a C x C attention between the two images' channels, added back with a learned scale) and a spatial
self-attention module (SSAM); two classifiers, one per image, are trained with the objective, and an
attention-based fusion loss couples their attention maps; the localization map is the fused one::

    R        = hidden cells: S x S-pixel grid cells, each with probability 1/2 (Hide-and-Seek)  (B, H, W) {0, 1}
    x_1      = x * (1 - R),   x_2 = x * R                       complementary: x_1 + x_2 = x, R + (1 - R) = 1
    G_1, G_2 = backbone features of x_1, x_2                    (B, C, N), N = h w
    CAAM     : G_a' = G_a + gamma_c * softmax(rowmax(E) - E) G_b,  E = G_a G_b^T (C x C),  (a, b) = (1, 2), (2, 1)
    SSAM     : H_a  = G_a' + gamma_s * V(G_a') softmax(s * cos(K(G_a'), K(G_a')))^T          (N x N), shared
    logits_a = fc_a(GAP(H_a)),  CAM_a = the label's CAM from fc_a on H_a                (B, h, w)
    A_a      = (CAM_a - min CAM_a) / (max CAM_a - min CAM_a), min and max held constant   (B, h, w) in [0, 1]
    T        = max(A_1, A_2), detached                          the fused map
    loss     = objective(logits_1, target) + objective(logits_2, target)
               + fusion_weight * mean_bhw [ |T - A_1| + |T - A_2| ]

At evaluation both branches see the whole image (no dropout); the logits are the mean of the two
classifiers' and the localization map is ``max(minmax(CAM_1), minmax(CAM_2))``.

No public code exists and the paper's text beyond its abstract was not available to us (the project's paper
note, seeds/003, summarizes its introduction and method in part); every detail below is our choice, with
the reason.

- Regional dropout: the paper "adapt[s] regional dropout at complementary spatial locations"; the note says
  the complementary image is made with random hidden patches and motivates the method by Hide-and-Seek's lost
  information ("Is there any way to optimize the localization performance by maximally utilizing the
  information lost in regional dropout?"). So ``R`` is Hide-and-Seek's mask (``region`` "grid"): the image is
  tiled by ``S x S``-pixel cells from its top-left corner, ``S`` drawn per image from ``grid_sizes`` (default
  4, our Hide-and-Seek's community default), each cell hidden with probability 1/2; image 1 is the
  Hide-and-Seek image and image 2 shows exactly its hidden cells. At probability 1/2 the complement of a
  Hide-and-Seek mask is distributed as one, so the two branches see images of one distribution. ``region``
  "box" is the other reading, one CutMix box per image (regional dropout in the CutMix paper's sense: side
  ratio ``sqrt(lam)``, ``lam ~ Beta(beta, beta)``, ``beta`` 1.0, centre uniform, clipped at the borders),
  image 1 with the box hidden and image 2 showing only the box; it was our first choice (quick preset, seed 0,
  everything else equal: MaxBoxAccV2 72.8 and PxAP 83.7 with boxes, 76.2 and 84.8 with cells). Hidden pixels
  are 0, the normalization mean, as Hide-and-Seek. Draws come from the step's generator (the box's ``lam``
  with numpy's Beta sampler seeded from it, as our CutMix).
- Branches: the backbone is shared (the two images in one pass of 2B images) and the two classifiers are
  separate: classifier 1 is the backbone's own head ``fc``, classifier 2 a new linear layer (N(0, 0.01)
  weights, zero bias, as wsolevaluation's new layers). Branch 1 sees ``x * (1 - R)``.
- CAAM: DANet's channel attention module (Fu et al., CVPR 2019: ``softmax(rowmax(E) - E)``, value = the
  features, learned scale initialized to 0) with the keys and values taken from the *other* image, so the
  channels of each image are assisted by the channels of the image that shows what it misses. One module
  (one ``gamma_c``) for both directions.
- SSAM: a position self-attention after CAAM, shared by the two branches, added back with a learned scale
  ``gamma_s`` initialized to 0 (as DANet's position attention module), with a 1 x 1 conv value to C channels;
  its weights are the scaled cosine similarity of one 1 x 1 conv projection ``K`` (to ``C // reduction``
  channels, ``reduction`` 8 as DANet) of the two positions, ``softmax_j(s cos(K g_i, K g_j))``, with a learned
  logit scale ``s`` initialized to 10 and clipped at 100 (Swin Transformer V2's scaled cosine attention, Liu
  et al., CVPR 2022). Why not DANet's dot product of a query and a key projection: with it the background
  positions learned to put 96 % of their attention on the object (31 % of the image) and to copy the object's
  features (the attended term twice the size of the features), which spreads the class evidence over the whole
  image before the GAP classifier, so the CAM no longer localizes (quick preset, seed 0, with the fusion loss
  below: PxAP 51 with DANet's attention, 82 to 85 with this one, 83 without SSAM). With one projection and
  cosine similarity each position's largest weight is on itself and on the positions whose features resemble
  its own (Cauchy-Schwarz), so the module can gather evidence from similar positions (the object's parts) but
  not move it onto unlike ones (the background positions then put 36 % of their attention on the object); a
  query and a key projection under cosine similarity failed like the dot product (PxAP 59). Both modules sit
  after the backbone's last stage (the CAM's map); the attention is computed in float32 (also under AMP).
- Attention maps: the CAMs of the ground-truth label from each classifier on its attended features, min-max
  normalized per image (as the evaluation does). Fusion: the element-wise maximum (as ACoL fuses two
  classifiers' maps). Fusion loss: each map is pulled up towards the fused map (an L1 to the detached maximum;
  its value is ``mean |A_1 - A_2|``), so each branch learns the object's extent that the other image shows;
  ``fusion_weight`` 1.0 (our choice: the maps are in [0, 1], the classification terms O(log K)). The
  normalization's minimum and maximum are constants of the loss (not differentiated). Differentiated, they
  make a flat map the cheapest way to lower the loss, and the network found it: one very low pixel at the
  discriminative part puts the rest of both normalized maps near 1 (quick preset: PxAP 22 at a CAM threshold
  of 0.88, the plain CAM 76; in a component that all classes' CAMs share it costs the classifier nothing,
  the softmax ignores it). With the minimum and the range held constant the loss can only raise the lower map
  where the other one is higher.
- Evaluation: no dropout (train-time augmentation), so both branches read the whole image; CAAM then attends
  within one image's channels (DANet's self channel attention) and the branches differ by their classifiers.

Runs on every backbone (the modules adapt to the last stage's channels). The abstract reports CUB-200-2011
and ILSVRC 2016; which backbones the paper uses was not available to us. Every parameter is in every step's
graph (the attention's projections get zero gradients while their scale is 0, as in DANet).
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
from wsolbench.methods.has import draw_hidden
from wsolbench.objectives import Objective

#: SSAM's cosine logit scale: initial value and ceiling (Swin Transformer V2).
LOGIT_SCALE_INIT, LOGIT_SCALE_MAX = 10.0, 100.0


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


def normalize_minmax(maps: Tensor, *, constant_range: bool = False) -> Tensor:
    """``(x - min) / (max - min)`` per image, ``(B, h, w)``; a constant map gives 0 (and no gradient). With
    ``constant_range`` the minimum and maximum are detached, so a gradient only moves the pixels themselves."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    if constant_range:
        low, high = low.detach(), high.detach()
    span = high - low
    varies = span > 0
    return ((flat - low) / torch.where(varies, span, torch.ones_like(span)) * varies).view_as(maps)


def fusion_loss(cam_1: Tensor, cam_2: Tensor) -> Tensor:
    """``mean[|T - A_1| + |T - A_2|]`` with ``A_a`` the min-max normalized ``cam_a`` ``(B, h, w)`` (raw CAMs) and
    ``T = max(A_1, A_2)`` detached.

    An L1 to the detached fused map: where a map is the maximum its term and its gradient are 0, so only the
    lower map is pulled up (the value is ``mean |A_1 - A_2|``). The normalization's minimum and maximum are
    constants here: differentiated, they would let the loss fall by deepening a map's minimum or lowering its
    maximum, i.e. by flattening the map (module docstring)."""
    map_1, map_2 = (normalize_minmax(c, constant_range=True) for c in (cam_1, cam_2))
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
    """SSAM: ``G + gamma * V(G) softmax(s cos(K(G), K(G)))^T`` over the N = h w positions: a position attention
    (DANet's, with its value conv and its scale ``gamma`` starting at 0) whose weights are the scaled cosine
    similarity of one projection ``K`` to ``C // reduction`` channels (at least 1), ``s`` learned from 10, at
    most 100 (Swin Transformer V2). Each position weighs itself at least as much as any other."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.log_scale = nn.Parameter(torch.tensor(math.log(LOGIT_SCALE_INIT)))
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, g: Tensor) -> Tensor:
        """``(B, N, N)``: row i, the weights of position i over the positions j (float32)."""
        with _float32(g):
            k = F.normalize(self.key(g.float()).flatten(2), dim=1)  # (B, C', N), unit columns
            scale = self.log_scale.clamp(max=math.log(LOGIT_SCALE_MAX)).exp()
            return torch.softmax(scale * (k.transpose(1, 2) @ k), dim=-1)

    def forward(self, g: Tensor) -> Tensor:
        b, c, h, w = g.shape
        with _float32(g):
            g = g.float()
            v = self.value(g).flatten(2)  # (B, C, N)
            return g + self.gamma * (v @ self.attention(g).transpose(1, 2)).view(b, c, h, w)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@METHODS.register("complementary")
class Complementary(WsolMethod):
    """Complementary regions (Babar & Das, WACV 2021): two branches on complementary regional-dropout images.

    The two images of one dropout mask (hidden / shown) are coupled by CAAM + SSAM and a fusion loss; the map
    is the maximum of the two normalized CAMs. Implemented from the paper's description; see the module docstring
    for each choice."""

    @dataclass(frozen=True)
    class Config:
        STRENGTH: ClassVar[str] = "fusion_weight"
        fusion_weight: float = 1.0  # weight of the attention-based fusion loss (our choice)
        region: str = "grid"  # "grid": Hide-and-Seek cells; "box": one CutMix box (module docstring)
        grid_sizes: tuple[int, ...] = (4,)  # "grid": cell side in input pixels, one drawn per image (our HaS's)
        beta: float = 1.0  # "box": area fraction ~ Beta(beta, beta) (CutMix's default)
        reduction: int = 8  # SSAM projection channels = C // reduction (DANet)

        def __post_init__(self) -> None:
            if not (_number(self.fusion_weight) and self.fusion_weight >= 0):
                raise ConfigError(f"method.fusion_weight must be a number >= 0, got {self.fusion_weight!r}")
            if self.region not in ("grid", "box"):
                raise ConfigError(f"method.region must be 'grid' or 'box', got {self.region!r}")
            g = self.grid_sizes
            if (not isinstance(g, tuple) or not g
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in g)):
                raise ConfigError(f"method.grid_sizes must be one or more integers >= 0 (pixels), got {g!r}")
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
        """This step's dropout region ``R`` ``(B, H, W)`` bool on ``x``'s device: Hide-and-Seek's hidden cells
        (probability 1/2 each) or one box per image."""
        b, h, w = x.shape[0], *x.shape[-2:]
        if self.config.region == "grid":
            return draw_hidden(b, h, w, self.config.grid_sizes, 0.5, generator)[1].to(x.device)
        return box_masks(draw_boxes(b, h, w, self.config.beta, generator), h, w).to(x.device)

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

    def class_maps(self, h1: Tensor, h2: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """The two classifiers' raw CAMs of ``classes`` ``(B,)``, ``(B, h, w)`` float32."""
        with _float32(h1):
            return (cam_from_features(h1.float(), self.net.head_weight.float(), classes),
                    cam_from_features(h2.float(), self.fc2.weight.float(), classes))

    def attention_maps(self, h1: Tensor, h2: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """The two classifiers' CAMs of ``classes`` ``(B,)``, min-max normalized per image, ``(B, h, w)``."""
        cam1, cam2 = self.class_maps(h1, h2, classes)
        return normalize_minmax(cam1), normalize_minmax(cam2)

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        x = batch["image"]
        x1, x2 = complementary_images(x, self.draw_region(x, ctx.generator))
        h1, h2 = self.branches(x1, x2)
        logits1, logits2 = self.heads(h1, h2)
        cam1, cam2 = self.class_maps(h1, h2, batch["label"])
        with _float32(x):
            parts = {"objective_1": self.objective(logits1, batch["target"]),
                     "objective_2": self.objective(logits2, batch["target"]),
                     "fusion": self.config.fusion_weight * fusion_loss(cam1, cam2)}
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
           "complementary_images", "draw_boxes", "fusion_loss", "normalize_minmax"]

"""The Grad-CAM family, through torchcam (frgfm/torch-cam), batched, one class per image.

Each extractor hooks ``model.net.stage_module(target_stage)`` (default: the last
stage, the native CAM's feature map ``A``) with a torchcam extractor built once in
``__init__``; a call runs ``model.classify(x)`` (``model.net(x)`` for a model without
``classify``; these are the logits returned, and the forward the hooks see), then torchcam
computes the per-channel (or per-pixel) weights ``w`` and the map
``M = ReLU(sum_k w_k * A_k)``, taken **raw** (``normalized=False``: torchcam's own
min-max normalization is not applied; :func:`wsolbench.cams.to_scoremaps` does it).
Every method here is rectified (torchcam sets ``_relu`` for all of them).

How torchcam does it (0.5.0, ``torchcam/methods``):

- Gradient methods keep the hooked layer's output tensor from a forward hook and
  call ``torch.autograd.grad(sum_i Y_i[c_i], outputs)``, so parameters' ``.grad`` is
  never written and one backward pass serves the whole batch (the class per image
  is gathered from the logits). We enable grad inside the call (it works within an
  outer ``torch.no_grad()``) and feed a detached input that requires grad, so frozen
  backbones work too. ``torch.inference_mode()`` cannot be undone from inside:
  gradient methods raise ``ConfigError`` there.
- Score methods run ``B * C`` masked copies of the input (one per image and
  channel), ``batch_size`` at a time, through the network in eval mode, with
  hooks off: cost grows with the channel count (2048 on ResNet-50), times
  ``num_samples`` for SS-CAM and IS-CAM.
- Hooks stay on the model until :meth:`close`. Build the extractor after any tap
  (:meth:`CamBackbone.attach`) so that it sees the tapped output.

Two torchcam 0.5.0 defects are patched here (``describe()["patched"]`` says so):
Grad-CAM++'s alpha division is a no-op (``alpha[idx][mask].div_(...)`` divides a
boolean-indexed copy), so its weights were ``sum ReLU(g)^3``; Smooth Grad-CAM++
combined the weights with the activations (and ReLU'd the gradient) of the last
noisy sample instead of the clean image's. Both now follow the formulas below.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torchcam
from torch import Tensor, nn
from torchcam import methods as tcm

from wsolbench.cams.base import CAMS, CamExtractor, resolve_stage
from wsolbench.errors import ConfigError


def _gradcampp_weights(act: Tensor, grad: Tensor, grad2: Tensor, grad3: Tensor, eps: float) -> Tensor:
    """Grad-CAM++ channel weights ``(B, C)`` from ``(B, C, h, w)`` activations and derivatives.

    ``alpha_ij = g2_ij / (2 g2_ij + sum_ab A_ab * g3_ij)`` (0 where ``g2_ij == 0``),
    ``w = sum_ij alpha_ij * ReLU(g_ij)`` (Chattopadhyay et al., eq. 19 and 10, with
    powers of the first derivative for the higher ones, as every implementation does).
    """
    denom = 2 * grad2 + act.flatten(2).sum(-1)[..., None, None] * grad3
    alpha = torch.where(grad2 > 0, grad2 / (denom + eps), torch.zeros_like(grad2))
    return (alpha * grad.relu()).flatten(2).sum(-1)


class _GradCAMpp(tcm.GradCAMpp):
    """torchcam's GradCAMpp with the alpha division applied (see the module docstring)."""

    def _get_weights(self, class_idx: int | list[int], scores: Tensor, eps: float = 1e-8,
                     **kwargs: Any) -> list[Tensor]:
        self._backprop(scores, class_idx, **kwargs)
        return [_gradcampp_weights(a, g, g.pow(2), g.pow(3), eps)
                for a, g in zip(self.hook_a, self.hook_g, strict=True)]  # type: ignore[arg-type]


class _SmoothGradCAMpp(tcm.SmoothGradCAMpp):
    """torchcam's SmoothGradCAMpp, combining with the clean activations and the mean gradient."""

    def _compute_smoothgrad_weights(self, class_idx: int | list[int], eps: float, **kwargs: Any) -> list[Tensor]:
        clean = list(self.hook_a)  # the noisy passes below overwrite hook_a
        g1 = [torch.zeros_like(a) for a in clean]  # type: ignore[arg-type]
        g2 = [torch.zeros_like(a) for a in clean]  # type: ignore[arg-type]
        g3 = [torch.zeros_like(a) for a in clean]  # type: ignore[arg-type]
        for _ in range(self.num_samples):
            noisy = self._input + self._distrib.sample(self._input.size()).to(self._input.device)
            noisy.requires_grad_(True)
            self._backprop(self.model(noisy), class_idx, **kwargs)
            for i, g in enumerate(self.hook_g):
                g1[i].add_(g)  # type: ignore[arg-type]
                g2[i].add_(g.pow(2))  # type: ignore[union-attr]
                g3[i].add_(g.pow(3))  # type: ignore[union-attr]
        self.hook_a = clean
        n = self.num_samples
        return [_gradcampp_weights(a, d1 / n, d2 / n, d3 / n, eps)  # type: ignore[arg-type]
                for a, d1, d2, d3 in zip(clean, g1, g2, g3, strict=True)]


class _Classifier(nn.Module):
    """``method.classify`` as the module torchcam drives (hooks resolve inside ``method.net``)."""

    def __init__(self, method: Any) -> None:
        super().__init__()
        self.net = method.net
        self._classify = method.classify

    def forward(self, x: Tensor) -> Tensor:
        return self._classify(x)


class TorchcamExtractor(CamExtractor):
    """Base of the torchcam-backed extractors (see the module docstring).

    Keyword options (``**options``) are the torchcam constructor's (listed per
    extractor in ``defaults``); unknown ones raise ``ConfigError``.
    """

    torchcam_class: ClassVar[type]
    defaults: ClassVar[dict[str, Any]] = {}
    patched: ClassVar[str | None] = None
    relu = True
    needs_grad = True

    def __init__(self, model: Any, target_stage: str | None = None, **options: Any) -> None:
        super().__init__(model, target_stage)
        self._cam: Any = None
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"{self.name}: unknown option(s) {', '.join(unknown)} (known: {known})")
        self.options = {**self.defaults, **options}
        self.target_stage = resolve_stage(self.net, target_stage)
        layer = self.net.stage_module(self.target_stage)
        # The logits as the Grad-CAM family sees the model: method.classify when it has one, else net(x).
        self._classifier: nn.Module = _Classifier(model) if hasattr(model, "classify") else self.net
        self._cam = self.torchcam_class(self._classifier, target_layer=layer, **self.options)

    def _extract(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        if self._cam is None:
            raise RuntimeError(f"{self.name}: the extractor was closed")
        idx = classes.tolist()
        try:
            if self.needs_grad:
                if torch.is_inference_mode_enabled():
                    raise ConfigError(f"{self.name} needs gradients: call it under torch.no_grad(), "
                                      "not torch.inference_mode()")
                with torch.enable_grad():
                    x_in = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
                    logits = self._classifier(x_in)
                    maps = self._cam(idx, scores=logits, normalized=False)[0]
            else:
                with torch.no_grad():
                    logits = self._classifier(x)
                    maps = self._cam(idx, normalized=False)[0]
        finally:
            self._cam.reset_hooks()  # drop the stored activations and the graph
        return logits, maps

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "library": "torchcam", "library_version": torchcam.__version__,
                "torchcam_method": next(c.__name__ for c in self.torchcam_class.__mro__
                                        if c.__module__.startswith("torchcam.")),
                "normalized_by_library": False, "options": dict(self.options), "patched": self.patched}

    def close(self) -> None:
        if self._cam is not None:
            self._cam.remove_hooks()
            self._cam.reset_hooks()
            self._cam = None


@CAMS.register("gradcam")
class GradCam(TorchcamExtractor):
    """Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391).

    ``w_k = mean_ij dY_c/dA_k(i, j)``, ``M = ReLU(sum_k w_k A_k)``. On a GAP + FC head
    ``dY_c/dA_k(i, j) = W[c, k] / (h w)``, so at the last stage Grad-CAM is
    ``ReLU(native CAM) / (h w)``. torchcam ``GradCAM``; no hyperparameters.
    """

    torchcam_class = tcm.GradCAM


@CAMS.register("gradcampp")
class GradCamPlusPlus(TorchcamExtractor):
    """Grad-CAM++ (Chattopadhyay et al., WACV 2018, arXiv:1710.11063).

    ``alpha_k(i, j) = g^2 / (2 g^2 + sum_ab A_k(a, b) g^3)`` with ``g = dY_c/dA_k(i, j)``
    (higher derivatives as powers of the first, exact for a ReLU net under the paper's
    exponential trick), ``w_k = sum_ij alpha_k(i, j) ReLU(g)``, ``M = ReLU(sum_k w_k A_k)``.
    torchcam ``GradCAMpp`` with its alpha division fixed (module docstring).
    """

    torchcam_class = _GradCAMpp
    patched = "torchcam 0.5.0 GradCAMpp: alpha division applied (upstream divides a copy)"


@CAMS.register("smoothgradcampp")
class SmoothGradCamPlusPlus(TorchcamExtractor):
    """Smooth Grad-CAM++ (Omeiza et al., 2019, arXiv:1908.01224).

    Grad-CAM++ with the derivatives averaged over ``num_samples`` noisy copies
    ``x + N(0, std^2)`` of the (normalized) input: ``D_p = mean_n g_n^p``,
    ``alpha = D_2 / (2 D_2 + sum_ab A_ab D_3)`` (torchcam's numerator; the paper writes
    ``D_1``), ``w_k = sum_ij alpha ReLU(D_1)``, ``M = ReLU(sum_k w_k A_k)`` with ``A`` the
    clean image's activations. Options, torchcam's defaults: ``num_samples=4``,
    ``std=0.3``. Stochastic (torch's global generator); ``1 + num_samples`` forward and
    ``num_samples`` backward passes per batch.
    """

    torchcam_class = _SmoothGradCAMpp
    defaults = {"num_samples": 4, "std": 0.3}
    stochastic = True
    patched = ("torchcam 0.5.0 SmoothGradCAMpp: combines the clean activations and the mean gradient "
               "(upstream: the last noisy sample's)")


@CAMS.register("xgradcam")
class XGradCam(TorchcamExtractor):
    """XGrad-CAM (Fu et al., BMVC 2020, arXiv:2008.02312).

    ``w_k = sum_ij dY_c/dA_k(i, j) * A_k(i, j) / (sum_ab A_k(a, b) + eps)``,
    ``M = ReLU(sum_k w_k A_k)``; equals Grad-CAM on a GAP + FC head (non-negative ``A``).
    torchcam ``XGradCAM``; no hyperparameters.
    """

    torchcam_class = tcm.XGradCAM


@CAMS.register("layercam")
class LayerCam(TorchcamExtractor):
    """LayerCAM (Jiang et al., IEEE TIP 2021).

    Per-pixel weights ``w_k(i, j) = ReLU(dY_c/dA_k(i, j))``,
    ``M = ReLU(sum_k w_k(i, j) A_k(i, j))``. torchcam ``LayerCAM`` at one layer (the
    paper's multi-layer fusion with ``tanh(2 M)`` is not applied). No hyperparameters.
    """

    torchcam_class = tcm.LayerCAM


class _ScoreFamily(TorchcamExtractor):
    needs_grad = False


@CAMS.register("scorecam")
class ScoreCam(_ScoreFamily):
    """Score-CAM (Wang et al., CVPR Workshops 2020, arXiv:1910.01279).

    Each channel, min-max normalized to [0, 1] at feature resolution and bilinearly
    upsampled to the input, masks the (normalized) input: ``w = softmax_k(Y_c(M_k * x)
    - Y_c(x))``, ``M = ReLU(sum_k w_k A_k)``. torchcam ``ScoreCAM``: ``B * C`` extra
    forward passes, ``batch_size`` images at a time (option, torchcam's default 32;
    raise it on a GPU), plus one unmasked pass for the baseline. No gradients.
    """

    torchcam_class = tcm.ScoreCAM
    defaults = {"batch_size": 32}


@CAMS.register("sscam")
class SsCam(_ScoreFamily):
    """SS-CAM (Wang et al., 2020, arXiv:2006.14255): Score-CAM with the masks smoothed by noise.

    ``w = softmax_k(mean_n Y_c((U(A_k) + N(0, std^2)) * x) - Y_c(x))`` over
    ``num_samples`` draws, ``M = ReLU(sum_k w_k A_k)``. torchcam ``SSCAM``; options,
    torchcam's defaults: ``num_samples=35``, ``std=2.0``, ``batch_size=32``.
    Stochastic; ``num_samples * B * C`` forward passes: slow beyond small networks.
    """

    torchcam_class = tcm.SSCAM
    defaults = {"batch_size": 32, "num_samples": 35, "std": 2.0}
    stochastic = True


@CAMS.register("iscam")
class IsCam(_ScoreFamily):
    """IS-CAM (Naidu et al., 2020, arXiv:2010.03023): Score-CAM integrated along the mask's scale.

    ``w = softmax_k(mean_i Y_c(s_i M_k * x) - Y_c(x))`` with ``s_i = sum_{j<=i} j / N``
    for ``i = 1..N`` (torchcam's cumulative coefficients), ``M = ReLU(sum_k w_k A_k)``.
    torchcam ``ISCAM``; options, torchcam's defaults: ``num_samples=10``, ``batch_size=32``.
    ``num_samples * B * C`` forward passes.
    """

    torchcam_class = tcm.ISCAM
    defaults = {"batch_size": 32, "num_samples": 10}

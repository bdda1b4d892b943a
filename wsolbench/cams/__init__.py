"""Localization maps: the native CAM and the Grad-CAM family, behind one registry.

``CAMS.get(name)(method, target_stage=None)`` builds a :class:`CamExtractor`;
``extractor(x, classes) -> (logits, maps)`` gives raw float32 maps ``(B, h, w)`` at
the target stage's resolution, and :func:`to_scoremaps` turns them into the
``(B, R, R)`` [0, 1] score maps the metrics read (see :mod:`wsolbench.cams.base`).

Registered: ``cam`` (native, :mod:`wsolbench.cams.native`) and, through torchcam
(:mod:`wsolbench.cams.torchcam_family`), ``gradcam``, ``gradcampp``,
``smoothgradcampp``, ``xgradcam``, ``layercam``, ``scorecam``, ``sscam``, ``iscam``.

The native CAM is ``CAM_k = sum_c W[k, c] * F[c]`` (Zhou et al., CVPR 2016), with
no bias and no ReLU, as the community protocol computes it (wsolevaluation uses the
channel mean, which differs by the constant 1/C and is removed by the min-max
normalization). Maps are then resized to the evaluation resolution (bicubic by
default, as ``cv2.INTER_CUBIC`` in the protocol) and min-max normalized per image;
a constant or non-finite map becomes all zeros.
"""

from wsolbench.cams.base import CAMS, CamExtractor, resolve_stage
from wsolbench.cams.native import NativeCam, cam_from_features, normalize_minmax
from wsolbench.cams.scoremaps import scoremaps_for, to_scoremaps
from wsolbench.cams.torchcam_family import TorchcamExtractor

__all__ = ["CAMS", "CamExtractor", "NativeCam", "TorchcamExtractor", "cam_from_features", "normalize_minmax",
           "resolve_stage", "scoremaps_for", "to_scoremaps"]

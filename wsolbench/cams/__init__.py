"""Class activation maps from the same forward pass as the logits.

``CAM_k = sum_c W[k, c] * F[c]`` (Zhou et al., CVPR 2016), with no bias and no
ReLU, as the community protocol computes it (wsolevaluation uses the channel
mean, which differs by the constant 1/C and is removed by the min-max
normalization). Maps are then resized to the evaluation resolution (bicubic by
default, as ``cv2.INTER_CUBIC`` in the protocol) and min-max normalized per
image; a constant or non-finite map becomes all zeros.
"""

from wsolbench.cams.native import cam_from_features, normalize_minmax, scoremaps_for

__all__ = ["cam_from_features", "normalize_minmax", "scoremaps_for"]

"""The ground truth a folder of score maps is evaluated against: a manifest split or community metadata.

Ground truth
------------
Either a wsolbench manifest split (:func:`wsolbench.manifest.load_manifest`)
or a split folder of the community metadata format
(:mod:`wsolbench.data.sources.wsolevaluation`). Boxes are rescaled from the
original size to the resolution with
:func:`~wsolbench.metrics.protocol.rescale_boxes`; masks are nearest-resized
(:func:`wsolbench.imageio.load_eval_mask` and
:func:`~wsolbench.imageio.load_eval_class_mask` for manifests, the reference
``get_mask`` reading for metadata).

Multi-class masks: the image-level label set
--------------------------------------------
Masks are class-index images (PASCAL VOC: value ``c + 1`` = class ``c``, 0
background, 255 void; palette PNGs are read as indices). Class ``c``'s map of
an image is scored only when ``c`` is in the image's label set (see
:mod:`wsolbench.metrics.multiclass` for positives, negatives and mPxAP):

* metadata: the labels of ``class_labels.txt`` (one ``id,label`` line per
  class of the image);
* manifest: the sample's ``label`` plus every class whose index appears in
  its mask (at the mask's own resolution), since a manifest line carries one
  label.

mPxAP averages PxAP over the classes with at least one positive pixel among
the images labelled with them, i.e. the classes present in the split's ground
truth. Pixels of a class missing from an image's label set are negatives for
that image's labelled classes; their number of (image, class) occurrences is
reported as ``n_unlabelled_mask_classes`` (0 for manifests).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench.data.sources.wsolevaluation import (
    LOCALIZATION,
    MetadataSplit,
    format_ids,
    read_grayscale_nonzero,
    read_metadata_split,
)
from wsolbench.data.sources.wsolevaluation import load_eval_mask as load_metadata_mask
from wsolbench.errors import ConfigError, DataError
from wsolbench.imageio import load_eval_class_mask, load_eval_mask, merge_ignore, read_index_mask
from wsolbench.manifest import Manifest, load_manifest
from wsolbench.metrics import rescale_boxes
from wsolbench.structs import MASK_IGNORE


class GroundTruth(abc.ABC):
    """One evaluated split, whatever its source. Subclasses read a manifest or metadata.

    Attributes:
        source: JSON-ready description (kind, path, split).
        image_ids: the split's ids, in order.
        has_boxes / has_masks: every image has boxes / a mask.
        has_labels: every image has at least one class label.
    """

    source: dict[str, Any]
    image_ids: tuple[str, ...]
    has_boxes: bool
    has_masks: bool
    has_labels: bool

    def describe(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.source.items())

    @abc.abstractmethod
    def labels(self, image_id: str) -> tuple[int, ...]:
        """The image's class labels (one for single-label data)."""

    @abc.abstractmethod
    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        """``(n, 4)`` int64 ground-truth boxes at ``(resolution, resolution)``."""

    @abc.abstractmethod
    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        """``(R, R)`` uint8 0 background / 1 foreground / 255 ignore."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """``K``: class indices are ``0 .. K - 1``."""

    @abc.abstractmethod
    def class_labels(self, image_id: str) -> tuple[int, ...]:
        """The image-level label set used by multi-class evaluation (module docstring)."""

    @abc.abstractmethod
    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        """``(R, R)`` uint8 class-index mask (``c + 1`` = class ``c``, 0 background, 255 void)."""

    def mask_files(self, image_id: str) -> list[Path]:
        """The files the image's mask is read from (instances, then the ignore map); none without masks."""
        return []

    def boxes_batch(self, image_ids: Sequence[str], resolution: int) -> list[np.ndarray]:
        """:meth:`boxes` of each image."""
        return [self.boxes(i, resolution) for i in image_ids]

    def masks_batch(self, image_ids: Sequence[str], resolution: int) -> np.ndarray:
        """``(B, R, R)`` uint8: :meth:`mask` of each image."""
        return np.stack([self.mask(i, resolution) for i in image_ids])


def read_class_index_mask(path: str | Path) -> np.ndarray:
    """``(H, W)`` uint8 class indices of a VOC-style mask (palette indices kept; see ``imageio.read_index_mask``)."""
    return read_index_mask(path)


def _read_metadata_ignore(path: Path) -> np.ndarray:
    # The metadata format's ignore maps are read like its masks: greyscale, non-zero (reference get_mask).
    return read_grayscale_nonzero(path, "ignore map")


class MetadataGroundTruth(GroundTruth):
    """A split folder of the community metadata format."""

    def __init__(self, split: MetadataSplit) -> None:
        self.split = split
        self.source = {"metadata": str(split.directory)}
        self.image_ids = split.image_ids
        if not self.image_ids:
            raise DataError(f"metadata {split.directory} lists no images")
        if split.kind is None:
            raise DataError(f"metadata {split.directory} has no {LOCALIZATION} with boxes or masks to evaluate")
        self.has_boxes = split.kind == "boxes"
        self.has_masks = split.kind == "masks"
        self.has_labels = split.has_labels
        self._samples = {s.image_id: s for s in split.samples}

    def labels(self, image_id: str) -> tuple[int, ...]:
        return self._samples[image_id].labels

    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        sample = self._samples[image_id]
        assert sample.size is not None  # read_metadata_split checks box splits have sizes
        return rescale_boxes(np.array(sample.boxes, dtype=np.float64), sample.size, (resolution, resolution))

    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        return load_metadata_mask(self.split, self._samples[image_id], resolution)

    def mask_files(self, image_id: str) -> list[Path]:
        sample = self._samples[image_id]
        if not sample.masks:
            return []
        ignore = self.split.ignore_path(sample)
        return self.split.mask_paths(sample) + ([] if ignore is None else [ignore])

    @property
    def num_classes(self) -> int:
        return self.split.num_classes

    def class_labels(self, image_id: str) -> tuple[int, ...]:
        return self._samples[image_id].labels

    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        sample = self._samples[image_id]
        paths = self.split.mask_paths(sample)
        if len(paths) != 1:
            raise DataError(f"{self.split.directory / LOCALIZATION}: image {image_id!r} has {len(paths)} mask "
                            "lines; multi-class evaluation takes one class-index mask per image")
        size = (int(resolution), int(resolution))
        mask = cv2.resize(read_class_index_mask(paths[0]), size, interpolation=cv2.INTER_NEAREST)
        return merge_ignore(mask, self.split.ignore_path(sample), read=_read_metadata_ignore)


class ManifestGroundTruth(GroundTruth):
    """One split of a wsolbench manifest."""

    def __init__(self, manifest: Manifest, split: str) -> None:
        self.manifest = manifest
        samples = manifest.split(split)
        self.source = {"manifest": str(manifest.directory), "split": split}
        if not samples:
            raise DataError(f"manifest {manifest.directory} split {split!r} has no images")
        self.image_ids = tuple(s.image_id for s in samples)
        self._samples = {s.image_id: s for s in samples}
        self.has_boxes = self._all_or_none([s.image_id for s in samples if not s.boxes], "boxes", len(samples))
        self.has_masks = self._all_or_none([s.image_id for s in samples if s.mask is None], "a mask", len(samples))
        self.has_labels = True

    def _all_or_none(self, lacking: list[str], what: str, total: int) -> bool:
        if lacking and len(lacking) < total:
            raise DataError(f"{self.describe()}: {len(lacking)} of {total} images have no {what} "
                            f"({format_ids(lacking)}); evaluate a split where all or none do")
        return not lacking

    def labels(self, image_id: str) -> tuple[int, ...]:
        return (self._samples[image_id].label,)

    def boxes(self, image_id: str, resolution: int) -> np.ndarray:
        s = self._samples[image_id]
        return rescale_boxes(np.array(s.boxes, dtype=np.float64), (s.width, s.height), (resolution, resolution))

    def mask(self, image_id: str, resolution: int) -> np.ndarray:
        return load_eval_mask(self.manifest, self._samples[image_id], resolution)

    def mask_files(self, image_id: str) -> list[Path]:
        sample = self._samples[image_id]
        return [p for p in (self.manifest.mask_path(sample), self.manifest.ignore_path(sample)) if p is not None]

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    def class_labels(self, image_id: str) -> tuple[int, ...]:
        sample = self._samples[image_id]
        path = self.manifest.mask_path(sample)
        if path is None:
            raise DataError(f"image {image_id!r} has no mask in manifest {self.manifest.directory}")
        values = np.unique(read_class_index_mask(path))
        classes = values[(values >= 1) & (values != MASK_IGNORE)] - 1
        beyond = classes[classes >= self.num_classes]
        if beyond.size:
            raise DataError(f"class-index mask {path} (image {image_id!r}) has value {int(beyond[0]) + 1}, but "
                            f"manifest {self.manifest.directory} has {self.num_classes} classes (values 1.."
                            f"{self.num_classes}, 0 background, {MASK_IGNORE} void)")
        return tuple(sorted({sample.label, *(int(c) for c in classes)}))

    def class_mask(self, image_id: str, resolution: int) -> np.ndarray:
        return load_eval_class_mask(self.manifest, self._samples[image_id], resolution)


def load_ground_truth(
    *,
    manifest: str | Path | None = None,
    split: str | None = None,
    metadata: str | Path | None = None,
    mask_root: str | Path | None = None,
) -> GroundTruth:
    """The ground truth of a manifest split (``manifest``, ``split`` default test) or a metadata folder."""
    check_ground_truth_options(manifest=manifest, split=split, metadata=metadata, mask_root=mask_root)
    if metadata is not None:
        return MetadataGroundTruth(read_metadata_split(metadata, mask_root=mask_root))
    return ManifestGroundTruth(load_manifest(manifest), split or "test")


def check_ground_truth_options(*, manifest: str | Path | None, split: str | None, metadata: str | Path | None,
                               mask_root: str | Path | None) -> None:
    """ConfigError unless exactly one of ``manifest`` / ``metadata`` is given, with only its own options."""
    if (manifest is None) == (metadata is None):
        raise ConfigError("give exactly one of --manifest DIR or --metadata DIR")
    if metadata is not None:
        if split is not None:
            raise ConfigError("--split applies to --manifest; --metadata takes the split folder itself "
                              "(e.g. metadata/CUB/test)")
    elif mask_root is not None:
        raise ConfigError("--mask-root applies to --metadata; a manifest's mask paths are relative to its root")

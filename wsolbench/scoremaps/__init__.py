"""Evaluate a folder of saved score maps (from any model) against a manifest or community metadata.

The package behind ``wsolbench evaluate-cams``, one concern per module:

* :mod:`~wsolbench.scoremaps.groundtruth`: the evaluated split (a manifest
  split or a metadata folder): boxes, masks, class-index masks and the
  image-level label sets of multi-class evaluation;
* :mod:`~wsolbench.scoremaps.cache`: the split's ground truth at the
  evaluation resolution in arrays, cached on disk across runs and commands;
* :mod:`~wsolbench.scoremaps.files`: where a score map lives, scanning a
  folder, reading and checking one map, reading batches ahead, the predictions file;
* :mod:`~wsolbench.scoremaps.evaluate`: the drivers (:func:`evaluate_scoremaps`,
  :func:`evaluate_multiclass_scoremaps`, :func:`evaluate_cams`), missing and
  extra maps, Top-1 Loc.

Each module's docstring states its part of the contract (file layout, how the
ground truth is read, what the report holds). The CLI's table text lives with
the command in :mod:`wsolbench.cli`.
"""

from wsolbench.scoremaps.cache import GroundTruthArrays, GroundTruthCache, default_cache_dir
from wsolbench.scoremaps.evaluate import (
    DEFAULT_BATCH_SIZE,
    evaluate_cams,
    evaluate_multiclass_scoremaps,
    evaluate_scoremaps,
)
from wsolbench.scoremaps.files import (
    SUFFIX,
    load_scoremap,
    read_predictions,
    scan_class_scoremaps,
    scan_scoremaps,
    scoremap_path,
    scoremap_root,
)
from wsolbench.scoremaps.groundtruth import (
    GroundTruth,
    ManifestGroundTruth,
    MetadataGroundTruth,
    load_ground_truth,
    read_class_index_mask,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SUFFIX",
    "GroundTruth",
    "GroundTruthArrays",
    "GroundTruthCache",
    "ManifestGroundTruth",
    "MetadataGroundTruth",
    "default_cache_dir",
    "evaluate_cams",
    "evaluate_multiclass_scoremaps",
    "evaluate_scoremaps",
    "load_ground_truth",
    "load_scoremap",
    "read_class_index_mask",
    "read_predictions",
    "scan_class_scoremaps",
    "scan_scoremaps",
    "scoremap_path",
    "scoremap_root",
]

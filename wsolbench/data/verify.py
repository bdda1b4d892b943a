"""``wsolbench data verify``: check a manifest and every file it names; report every problem.

Checks (each problem is one line naming the split file and line):

- the manifest's structure (:func:`~wsolbench.manifest.scan_manifest`): keys,
  labels in range, sizes, boxes inside the image with ``x0 <= x1``, paths that
  stay under the root, ids unique across splits;
- every image exists, decodes, and has the manifest's size;
- every box is not degenerate (zero width or height);
- every mask and ignore file exists, decodes as its kind, has the image's size;
  trimaps hold only 1/2/3, class-index masks only 0, 1..K and 255;
- no image file appears twice (in two splits, or twice in one).

Warnings (printed, not failures): a mask with no foreground pixel, a ``val`` or
``test`` split without boxes or masks (it cannot choose or score a CAM threshold).

Torch-free (numpy, OpenCV, Pillow).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsolbench.data.sources.common import default_jobs, parallel_map
from wsolbench.errors import DataError, ManifestError
from wsolbench.imageio import (
    TRIMAP_BACKGROUND,
    TRIMAP_FOREGROUND,
    TRIMAP_IGNORE,
    decode_mask,
    read_image,
    read_index_mask,
    read_mask,
)
from wsolbench.manifest import Manifest, Sample, scan_manifest
from wsolbench.progress import NullProgress, Progress
from wsolbench.structs import MASK_IGNORE


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_manifest` found: ``problems`` fail the check, ``warnings`` do not."""

    directory: Path
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    counts: dict[str, int]
    files: int  # image, mask and ignore files looked at

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: ``OK: manifest X: 3 splits (train 10, val 4, test 4), 26 files`` or the problem count."""
        splits = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        head = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        tail = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        return (f"{head}: manifest {self.directory}: {len(self.counts)} splits ({splits}), {self.files} files "
                f"checked{tail}")


def _check_mask(manifest: Manifest, sample: Sample, where: str, problems: list[str], warnings: list[str]) -> int:
    """Problems of one sample's mask and ignore files; returns how many files were read."""
    files = 0
    expected = (sample.height, sample.width)
    mask_path = manifest.mask_path(sample)
    if mask_path is not None:
        files += 1
        try:
            if sample.mask_kind in ("trimap", "class_index"):
                values = read_index_mask(mask_path)
                allowed = ({TRIMAP_FOREGROUND, TRIMAP_BACKGROUND, TRIMAP_IGNORE} if sample.mask_kind == "trimap"
                           else set(range(manifest.num_classes + 1)) | {MASK_IGNORE})
                unknown = sorted(set(np.unique(values).tolist()) - allowed)
                if unknown:
                    problems.append(f"{where}: {sample.mask_kind} mask {mask_path} has values {unknown[:8]} "
                                    f"(allowed: {_describe(sample.mask_kind, manifest.num_classes)})")
            decoded = decode_mask(mask_path, sample.mask_kind, sample.label)
        except DataError as exc:
            problems.append(f"{where}: {exc}")
        else:
            if decoded.shape != expected:
                problems.append(f"{where}: mask {mask_path} is {decoded.shape[1]}x{decoded.shape[0]}, the image "
                                f"{sample.width}x{sample.height}")
            elif not (decoded == 1).any():
                warnings.append(f"{where}: mask {mask_path} has no foreground pixel"
                                + (f" of class {sample.label}" if sample.mask_kind == "class_index" else ""))
    ignore_path = manifest.ignore_path(sample)
    if ignore_path is not None:
        files += 1
        try:
            ignore = read_mask(ignore_path)
        except DataError as exc:
            problems.append(f"{where}: {exc}")
        else:
            if ignore.shape != expected:
                problems.append(f"{where}: ignore map {ignore_path} is {ignore.shape[1]}x{ignore.shape[0]}, the "
                                f"image {sample.width}x{sample.height}")
    return files


def _describe(kind: str, num_classes: int) -> str:
    if kind == "trimap":
        return "1 foreground, 2 background, 3 ignore"
    return f"0 background, 1..{num_classes} classes, {MASK_IGNORE} void"


def _check_sample(manifest: Manifest, sample: Sample, where: str, decode: bool) -> tuple[list[str], list[str], int]:
    problems: list[str] = []
    warnings: list[str] = []
    path = manifest.image_path(sample)
    if decode:
        try:
            image = read_image(path)
        except DataError as exc:
            problems.append(f"{where}: {exc}")
        else:
            height, width = image.shape[:2]
            if (width, height) != (sample.width, sample.height):
                problems.append(f"{where}: image {path} is {width}x{height}, the manifest says "
                                f"{sample.width}x{sample.height}")
    elif not path.is_file():
        problems.append(f"{where}: image {path} does not exist")
    for box in sample.boxes:
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            problems.append(f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is degenerate (zero width or height)")
    files = 1 + _check_mask(manifest, sample, where, problems, warnings)
    return problems, warnings, files


def verify_manifest(directory: str | Path, *, decode: bool = True, jobs: int | None = None,
                    progress: Progress | None = None) -> VerifyReport:
    """Check ``directory`` and every file it names; collect all problems (see the module docstring).

    ``decode`` False only checks that images exist (much faster on a large set);
    masks are always decoded. ``jobs`` threads read files (default: up to 8).
    """
    directory = Path(directory)
    progress = progress or NullProgress()
    try:
        scan = scan_manifest(directory)
    except ManifestError as exc:  # the header itself: nothing else can be checked
        return VerifyReport(directory, (str(exc),), (), {}, 0)
    manifest = scan.manifest
    problems: list[str] = list(scan.problems)
    warnings: list[str] = []
    tasks: list[tuple[Sample, str]] = []
    first_seen: dict[str, str] = {}
    for split, samples in manifest.splits.items():
        file = directory / f"{split}.jsonl"
        for sample, lineno in zip(samples, scan.lines[split]):
            where = f"manifest {file} line {lineno}"
            tasks.append((sample, where))
            if sample.path in first_seen:
                problems.append(f"{where}: image {sample.path} is also listed at {first_seen[sample.path]}"
                                + (" (the splits overlap)" if not first_seen[sample.path].startswith(
                                    f"{split}.jsonl") else ""))
            else:
                first_seen[sample.path] = f"{split}.jsonl line {lineno}"
        if split in ("val", "test") and samples and not any(s.boxes or s.mask for s in samples):
            warnings.append(f"manifest {file}: split {split!r} has no boxes or masks (it cannot choose or score "
                            "a CAM threshold)")

    files = 0
    jobs = jobs or default_jobs()
    with progress.phase(f"verifying {directory}", len(tasks)) as advance:
        for found, warned, n in parallel_map(lambda t: _check_sample(manifest, t[0], t[1], decode), tasks,
                                             jobs=jobs):
            problems += found
            warnings += warned
            files += n
            advance(1)
    counts = {split: len(samples) for split, samples in manifest.splits.items()}
    return VerifyReport(directory, tuple(problems), tuple(warnings), counts, files)


"""A torch ``Dataset`` over one split of a manifest, with torchvision transforms v2.

Each item is a dict: ``image`` (3, S, S) float32 normalized, ``label`` (int),
``index`` (position in the split, to look up the sample's boxes and id), and for
evaluation splits with masks ``mask`` (R, R) uint8 (0 background, 1 foreground,
255 ignore) at the evaluation resolution. Ground-truth boxes stay in the
manifest, in original pixels; the metrics rescale them (community protocol).

Multi-label datasets (``multi_label=True``, PASCAL VOC): ``target`` (K,) float32 is
the image's label set as a normalized multi-hot distribution (what the objectives
train on) and ``labels`` (K,) uint8 the multi-hot set itself; with
``class_masks`` also ``class_mask`` (R, R) uint8, the class-index mask (``c + 1``
class ``c``, 0 background, 255 void) that mPxAP scores every class of the set on.

Transforms (from :class:`~wsolbench.config.DataConfig`):

- train: ``crop`` ``none`` resizes to ``input_size`` (``resize_size`` unused);
  ``random`` resizes to ``resize_size`` (default ``input_size``) then takes a
  random ``input_size`` crop (the community protocol: 256 then 224);
  ``random_resized`` optionally resizes to ``resize_size``, then
  ``RandomResizedCrop(input_size)``; then a random horizontal flip (``hflip``).
- eval: resize to ``input_size`` x ``input_size``, no crop (the aspect ratio is
  not kept, as the protocol does), so the whole image and its boxes are seen.

Bad images: a missing or undecodable image (or mask) never ends a run silently.
``on_bad_image="fail"`` raises :class:`BadImageError` (a DataError naming the
file; one line even from a worker process). ``"skip"`` returns a marker item
that :meth:`ManifestDataset.collate` drops: the batch then carries
``skipped`` (how many items were dropped, always present) and ``bad`` (their
messages), and has no ``image`` key when every item of it was bad.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2

from wsolbench.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig
from wsolbench.errors import DataError
from wsolbench.imageio import load_eval_class_mask, load_eval_mask, read_image
from wsolbench.manifest import Manifest, Sample

logger = logging.getLogger(__name__)

ON_BAD_IMAGE = ("fail", "skip")


class BadImageError(DataError):
    """A missing or corrupt image (or mask) met while loading; the message names the file.

    Raised in a DataLoader worker, torch re-raises it in the main process as
    ``BadImageError(<header + whole traceback>)``; the constructor keeps only the
    original one-line message (plus which worker), so the CLI prints one line.
    """

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and "Original Traceback" in message:
            first = message.splitlines()[0]
            where = first[len(f"Caught {type(self).__name__} "):].rstrip(".")
            prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
            lines = [line for line in message.splitlines() if line.startswith(prefix)]
            if lines:
                message = f"{lines[-1][len(prefix):]} ({where})"
        super().__init__(message)


def _normalize() -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(data: DataConfig | int, hflip: bool = True, *, resize_size: int | None = None,
                    crop: str = "none") -> v2.Transform:
    """The training transform of ``data`` (a DataConfig), or of ``input_size`` and the keywords.

    Input: ``(H, W, 3)`` uint8 RGB numpy array; output ``(3, S, S)`` float32 normalized.
    """
    if isinstance(data, DataConfig):
        input_size, hflip, resize_size, crop = data.input_size, data.hflip, data.resize_size, data.crop
    else:
        input_size = int(data)
    size = (input_size, input_size)
    steps: list[v2.Transform] = [v2.ToImage()]
    if crop == "none":
        steps.append(v2.Resize(size, antialias=True))
    elif crop == "random":
        resize = resize_size or input_size
        steps += [v2.Resize((resize, resize), antialias=True), v2.RandomCrop(size)]
    elif crop == "random_resized":
        if resize_size:
            steps.append(v2.Resize((resize_size, resize_size), antialias=True))
        steps.append(v2.RandomResizedCrop(size, antialias=True))
    else:
        raise ValueError(f"crop must be none, random or random_resized, got {crop!r}")
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _normalize())


def eval_transform(data: DataConfig | int) -> v2.Transform:
    """Resize to the input size (aspect not kept, as the protocol does), to float, normalize."""
    input_size = data.input_size if isinstance(data, DataConfig) else int(data)
    return v2.Compose([v2.ToImage(), v2.Resize((input_size, input_size), antialias=True), *_normalize()])


class ManifestDataset(Dataset):
    """One split of a manifest. ``mask_resolution`` set: also load masks at that size.

    ``cache_images`` keeps decoded images in memory (per worker process), for small
    datasets. ``on_bad_image``: ``fail`` raises :class:`BadImageError`; ``skip``
    returns ``{"bad": path, "error": message, "index": i}`` for :meth:`collate` to drop.
    """

    def __init__(self, manifest: Manifest, split: str, transform: v2.Transform,
                 mask_resolution: int | None = None, cache_images: bool = False,
                 on_bad_image: str = "fail", multi_label: bool = False) -> None:
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be fail or skip, got {on_bad_image!r}")
        self.manifest = manifest
        self.split = split
        self.samples: Sequence[Sample] = manifest.split(split)
        self.transform = transform
        self.mask_resolution = mask_resolution
        self.has_masks = mask_resolution is not None and bool(self.samples) and all(s.mask for s in self.samples)
        self.multi_label = multi_label
        self.has_class_masks = (multi_label and self.has_masks
                                and all(s.mask_kind == "class_index" for s in self.samples))
        self.on_bad_image = on_bad_image
        self._cache: dict[int, np.ndarray] | None = {} if cache_images else None

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = self._cache.get(index) if self._cache is not None else None
        if image is None:
            image = read_image(self.manifest.image_path(sample))
            if self._cache is not None:
                self._cache[index] = image
        item: dict[str, Any] = {"image": self.transform(image), "label": sample.label, "index": index}
        if self.has_masks:
            assert self.mask_resolution is not None
            item["mask"] = torch.from_numpy(load_eval_mask(self.manifest, sample, self.mask_resolution))
        if self.multi_label:
            hot = torch.zeros(self.manifest.num_classes, dtype=torch.uint8)
            hot[list(sample.label_set)] = 1
            item["labels"] = hot
            item["target"] = hot.float() / hot.sum()
        if self.has_class_masks:
            assert self.mask_resolution is not None
            item["class_mask"] = torch.from_numpy(load_eval_class_mask(self.manifest, sample, self.mask_resolution))
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self._load(index)
        except DataError as exc:
            sample = self.samples[index]
            where = f"{self.split} split, image id {sample.image_id!r}"
            if self.on_bad_image == "fail":
                raise BadImageError(f"{exc} ({where}; data.on_bad_image=skip skips bad images and counts "
                                    "them)") from None
            logger.warning("skipping a bad image: %s (%s)", exc, where)
            return {"bad": str(self.manifest.image_path(sample)), "error": f"{exc} ({where})", "index": index}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """``default_collate`` of the good items, plus ``skipped`` (int) and ``bad`` (messages) when any.

        Picklable (a bound method of a picklable dataset), so it works with worker processes.
        """
        good = [item for item in items if "bad" not in item]
        bad = [item["error"] for item in items if "bad" in item]
        batch: dict[str, Any] = default_collate(good) if good else {}
        batch["skipped"] = len(bad)
        if bad:
            batch["bad"] = bad
        return batch


def make_loader(dataset: ManifestDataset, *, batch_size: int, shuffle: bool, seed: int,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (a seeded generator, not the global RNG)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=False,
                      persistent_workers=num_workers > 0, collate_fn=dataset.collate)

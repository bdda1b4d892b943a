"""A torch ``Dataset`` over one split of a manifest, with torchvision transforms v2.

Each item is a dict: ``image`` (3, S, S) float32 normalized, ``label`` (int),
``index`` (position in the split, to look up the sample's boxes and id), and for
evaluation splits with masks ``mask`` (R, R) uint8 (0 background, 1 foreground,
255 ignore) at the evaluation resolution. Ground-truth boxes stay in the
manifest, in original pixels; the metrics rescale them (community protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from wsolbench.config import IMAGENET_MEAN, IMAGENET_STD
from wsolbench.manifest import Manifest, Sample, load_eval_mask, read_image


def train_transform(input_size: int, hflip: bool = True) -> v2.Transform:
    """Resize to the input size, random horizontal flip, to float, normalize."""
    steps: list[v2.Transform] = [v2.ToImage(), v2.Resize((input_size, input_size), antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def eval_transform(input_size: int) -> v2.Transform:
    """Resize to the input size (aspect not kept, as the protocol does), to float, normalize."""
    return v2.Compose([v2.ToImage(), v2.Resize((input_size, input_size), antialias=True),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ManifestDataset(Dataset):
    """One split of a manifest. ``mask_resolution`` set: also load masks at that size.

    ``cache_images`` keeps decoded images in memory (per worker process), for small datasets.
    """

    def __init__(self, manifest: Manifest, split: str, transform: v2.Transform,
                 mask_resolution: int | None = None, cache_images: bool = False) -> None:
        self.manifest = manifest
        self.split = split
        self.samples: Sequence[Sample] = manifest.split(split)
        self.transform = transform
        self.mask_resolution = mask_resolution
        self.has_masks = mask_resolution is not None and all(s.mask for s in self.samples)
        self._cache: dict[int, np.ndarray] | None = {} if cache_images else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
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
        return item


def make_loader(dataset: ManifestDataset, *, batch_size: int, shuffle: bool, seed: int,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (a seeded generator, not the global RNG)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=False,
                      persistent_workers=num_workers > 0)


def gt_boxes(samples: Sequence[Sample], indices: Sequence[int]) -> list[np.ndarray]:
    """Original-pixel boxes ``(n, 4)`` float64 of the given samples."""
    return [np.asarray(samples[i].boxes, dtype=np.float64).reshape(-1, 4) for i in indices]

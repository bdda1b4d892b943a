"""The training order and augmentation stream: functions of the seed and epoch only.

:class:`EpochSampler` yields ``(epoch, index)`` keys in an order that depends only
on ``(seed, epoch)``; it can start mid-epoch (resume) and shard across ranks
(distributed training). :class:`SeededAugmentation` turns each key into the item
with its random augmentation seeded by ``(seed, epoch, index)``, so the stream of
crops and flips does not depend on the objective, on worker processes, on an
interruption and resume, or on anything else a run does with the global RNG.
Two runs that differ only in their objective therefore see identical batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from wsolbench.structs import mix_seed



class EpochSampler(Sampler):
    """``(epoch, index)`` keys: a permutation seeded by ``(seed, epoch)``, sharded and resumable.

    With ``world_size > 1`` the permutation is padded (by wrapping) to a multiple of
    ``world_size`` and rank ``r`` takes positions ``r, r + world_size, ...``.
    ``set_epoch(epoch, start)`` skips this rank's first ``start`` keys.
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if size < 1:
            raise ValueError("EpochSampler needs at least one item")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        """This rank's whole index order for ``epoch``."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            perm = torch.randperm(self.size, generator=gen).tolist()
        else:
            perm = list(range(self.size))
        total = math.ceil(self.size / self.world_size) * self.world_size
        perm += perm[: total - len(perm)]
        return perm[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.order(self.epoch)[self.start:]:
            yield self.epoch, index

    def __len__(self) -> int:
        return max(0, math.ceil(self.size / self.world_size) - self.start)


class SeededAugmentation(Dataset):
    """Wraps a dataset indexed by int; a key ``(epoch, index)`` runs its transform under a seed of its own."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, epoch, index))
            return self.dataset[index]

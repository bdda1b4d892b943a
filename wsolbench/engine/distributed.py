"""Data-parallel training of one run over several processes (``torchrun``).

``torchrun --nproc_per_node=N -m wsolbench.cli train ...`` starts N processes
with ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set; each trains on its shard of
every epoch (``EpochSampler`` with ``rank`` / ``world_size``) inside
DistributedDataParallel, evaluates its shard of val and test, and the metric
accumulators are merged across ranks, so the numbers cover every image once.
NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistInfo:
    """The process's place in a ``torchrun`` launch (a single process when not launched by it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def merge_across_ranks(info: DistInfo, acc: Any) -> Any:
    """Every rank's accumulator merged (``acc.merge``) into one, on every rank."""
    if not info.enabled:
        return acc
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, acc)
    merged = gathered[0]
    for other in gathered[1:]:
        merged.merge(other)
    return merged


def wrap(method: Any, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    """``method`` (a WsolMethod) inside DistributedDataParallel on the current process group.

    Unused parameters are searched for when the method says some may get no gradient in a step, and when
    it trains in several phases (each phase's forward uses only part of the parameters)."""
    return torch.nn.parallel.DistributedDataParallel(
        method, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=method.find_unused_parameters or len(method.phases) > 1)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(info: DistInfo, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. 'the loss diverged, stop')."""
    if not info.enabled:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])

"""One training epoch as a plain function, resumable at any step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from wsolbench.engine.device import AmpPolicy
from wsolbench.errors import WsolbenchError
from wsolbench.objectives import predictive_entropy


class TrainingDiverged(WsolbenchError):
    """The loss became NaN or infinite; the message names the epoch and step."""

    exit_code = 1


@dataclass
class EpochMeter:
    """Running sums of one epoch; saved in step checkpoints so a resumed epoch reports the same numbers."""

    loss_sum: float = 0.0
    correct: int = 0
    entropy_sum: float = 0.0
    seen: int = 0
    skipped: int = 0  # bad images dropped under on_bad_image=skip
    seconds: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # sums of the method's named losses

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict | None) -> EpochMeter:
        return cls(**state) if state else cls()


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean total loss over the epoch's images
    top1: float  # training accuracy, percent
    entropy: float  # mean predictive entropy H(p), nats
    lr: float  # learning rate of the first parameter group at the end of the epoch
    images: int
    skipped: int
    seconds: float
    parts: dict[str, float]  # mean of each named loss


def train_one_epoch(model: nn.Module, loader: DataLoader, *, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device,
                    amp: AmpPolicy, scaler: torch.amp.GradScaler, epoch: int, start_step: int = 0,
                    meter: EpochMeter | None = None, on_batch: Callable[[int], None] | None = None,
                    checkpoint_every: int = 0,
                    on_checkpoint: Callable[[int, EpochMeter], None] | None = None) -> EpochStats:
    """Train for the rest of one pass over ``loader`` (which already skips ``start_step`` batches).

    ``model(x, y)`` returns the method's dict (``loss``, named parts, ``logits``): a
    :class:`~wsolbench.methods.WsolMethod`, possibly wrapped in DistributedDataParallel.
    ``on_checkpoint(step, meter)`` runs every ``checkpoint_every`` steps (step checkpoints).
    Raises :class:`TrainingDiverged` on a non-finite loss, before the step is taken. The only
    host-device synchronisation per step is reading the loss; the other sums stay on the device.
    """
    model.train()
    meter = meter or EpochMeter()
    start = time.perf_counter() - meter.seconds
    non_blocking = device.type == "cuda"
    step = start_step
    distributed = dist.is_available() and dist.is_initialized()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # correct, entropy since the last flush
    part_sums: dict[str, torch.Tensor] = {}

    def flush() -> None:
        correct, entropy = sums.tolist()
        meter.correct += int(round(correct))
        meter.entropy_sum += entropy
        sums.zero_()
        for name, total in part_sums.items():
            meter.parts[name] = meter.parts.get(name, 0.0) + float(total)
        part_sums.clear()
        meter.seconds = time.perf_counter() - start

    for batch in loader:
        skipped = int(batch.get("skipped", 0))
        meter.skipped += skipped
        if "image" not in batch:  # every image of this batch was bad and skipped
            step += 1
            continue
        x = batch["image"].to(device, non_blocking=non_blocking)
        y = batch["label"].to(device, non_blocking=non_blocking)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with amp.autocast():
            out = model(x, y)
        loss = out["loss"]
        value = loss.item()
        finite = math.isfinite(value)
        if distributed:  # every rank stops together, or the others would wait in backward forever
            flag = torch.tensor([1.0 if finite else 0.0], device=loss.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite:
            where = "" if not math.isfinite(value) else " on another rank"
            raise TrainingDiverged(f"training loss became non-finite{where} at epoch {epoch}, step {step}"
                                   + ("" if math.isfinite(value) else f" ({value})"))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        with torch.no_grad():
            logits = out["logits"].detach().float()
            n = y.shape[0]
            meter.loss_sum += value * n
            sums[0] += (logits.argmax(dim=1) == y).sum()
            sums[1] += predictive_entropy(logits).double().sum()
            for name, part in out.items():
                if name not in ("loss", "logits") and torch.is_tensor(part) and part.ndim == 0:
                    part_sums[name] = part_sums.get(name, 0.0) + part.detach().double() * n
        meter.seen += n
        step += 1
        if on_batch is not None:
            on_batch(n + skipped)
        if on_checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
            flush()
            on_checkpoint(step, meter)
    flush()
    seen = max(meter.seen, 1)
    return EpochStats(epoch=epoch, loss=meter.loss_sum / seen, top1=100.0 * meter.correct / seen,
                      entropy=meter.entropy_sum / seen, lr=optimizer.param_groups[0]["lr"], images=meter.seen,
                      skipped=meter.skipped, seconds=meter.seconds,
                      parts={k: v / seen for k, v in meter.parts.items()})

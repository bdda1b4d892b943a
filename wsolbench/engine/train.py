"""One training epoch as a plain function."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from wsolbench.engine.device import AmpPolicy
from wsolbench.errors import WsolbenchError
from wsolbench.methods import WsolMethod
from wsolbench.objectives import predictive_entropy


class TrainingDiverged(WsolbenchError):
    """The loss became NaN or infinite; the message names the epoch and step."""

    exit_code = 1


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean total loss over the epoch's images
    top1: float  # training accuracy, percent
    entropy: float  # mean predictive entropy H(p), nats
    lr: float  # learning rate at the end of the epoch
    images: int
    seconds: float


def train_one_epoch(method: WsolMethod, loader: DataLoader, *, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device,
                    amp: AmpPolicy, scaler: torch.amp.GradScaler, epoch: int,
                    on_batch: Callable[[int], None] | None = None) -> EpochStats:
    """Train ``method`` for one pass over ``loader``; raises TrainingDiverged on a non-finite loss."""
    method.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    entropy_sum = torch.zeros((), device=device, dtype=torch.float64)
    seen = 0
    non_blocking = device.type == "cuda"
    for step, batch in enumerate(loader):
        x = batch["image"].to(device, non_blocking=non_blocking)
        y = batch["label"].to(device, non_blocking=non_blocking)
        with amp.autocast():
            out = method.training_step(x, y)
        loss = out["loss"]
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"training loss became {loss.item()} at epoch {epoch}, step {step}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        with torch.no_grad():
            logits = out["logits"].detach().float()
            n = y.shape[0]
            loss_sum += loss.detach().double() * n
            correct += (logits.argmax(dim=1) == y).sum()
            entropy_sum += predictive_entropy(logits).double().sum()
        seen += n
        if on_batch is not None:
            on_batch(n)
    seen = max(seen, 1)
    return EpochStats(epoch=epoch, loss=loss_sum.item() / seen, top1=100.0 * correct.item() / seen,
                      entropy=entropy_sum.item() / seen, lr=optimizer.param_groups[0]["lr"],
                      images=seen, seconds=time.perf_counter() - start)

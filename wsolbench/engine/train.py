"""One training epoch as a plain function, resumable at any step; one optimizer step per phase per batch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from wsolbench.engine.device import AmpPolicy
from wsolbench.errors import WsolbenchError
from wsolbench.methods import step_context
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


@dataclass
class Phase:
    """One optimization phase of a method: its name, optimizer and per-batch LR schedule."""

    name: str
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def _to_device(batch: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    out = {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()
           if k in ("image", "label", "target") and torch.is_tensor(v)}
    if device.type == "cuda":
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    out.setdefault("target", out["label"])
    return out


def train_one_epoch(model: nn.Module, loader: DataLoader, *, phases: Sequence[Phase], device: torch.device,
                    amp: AmpPolicy, scaler: torch.amp.GradScaler, epoch: int, seed: int, num_classes: int,
                    start_step: int = 0, meter: EpochMeter | None = None,
                    on_batch: Callable[[int], None] | None = None, checkpoint_every: int = 0,
                    on_checkpoint: Callable[[int, EpochMeter], None] | None = None) -> EpochStats:
    """Train for the rest of one pass over ``loader`` (which already skips ``start_step`` batches).

    ``model(batch, ctx)`` returns the method's dict (``loss``, named parts, ``logits``): a
    :class:`~wsolbench.methods.WsolMethod`, possibly wrapped in DistributedDataParallel. For every
    batch each phase runs once, in order: forward with its :class:`~wsolbench.methods.StepContext`
    (a generator seeded from (seed, epoch, step, phase)), backward, its optimizer and schedule step.
    Accuracy and entropy are read off the first phase's logits; the loss is the sum over phases.
    ``on_checkpoint(step, meter)`` runs every ``checkpoint_every`` steps (step checkpoints).
    Raises :class:`TrainingDiverged` on a non-finite loss, before the step is taken. The only
    host-device synchronisation per step is reading the loss; the other sums stay on the device.
    """
    model.train()
    meter = meter or EpochMeter()
    start = time.perf_counter() - meter.seconds
    step = start_step
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
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

    for raw in loader:
        skipped = int(raw.get("skipped", 0))
        meter.skipped += skipped
        if "image" not in raw:  # every image of this batch was bad and skipped
            step += 1
            continue
        batch = _to_device(raw, device)
        y = batch["label"]
        n = y.shape[0]
        total = 0.0
        for k, phase in enumerate(phases):
            ctx = step_context(seed=seed, epoch=epoch, step=step, phase=phase.name, num_classes=num_classes,
                               rank=rank)
            with amp.autocast():
                out = model(batch, ctx)
            loss = out["loss"]
            value = loss.item()
            _stop_if_diverged(value, loss.device, distributed, epoch, step, phase.name, len(phases))
            phase.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(phase.optimizer)
            scaler.update()
            phase.scheduler.step()
            total += value
            prefix = "" if len(phases) == 1 else f"{phase.name}/"
            with torch.no_grad():
                if k == 0:
                    logits = out["logits"].detach().float()
                    sums[0] += (logits.argmax(dim=1) == y).sum()
                    sums[1] += predictive_entropy(logits).double().sum()
                for name, part in out.items():
                    if name not in ("loss", "logits") and torch.is_tensor(part) and part.ndim == 0:
                        key = prefix + name
                        part_sums[key] = part_sums.get(key, 0.0) + part.detach().double() * n
        meter.loss_sum += total * n
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
                      entropy=meter.entropy_sum / seen, lr=phases[0].optimizer.param_groups[0]["lr"],
                      images=meter.seen, skipped=meter.skipped, seconds=meter.seconds,
                      parts={k: v / seen for k, v in meter.parts.items()})


def _stop_if_diverged(value: float, device: torch.device, distributed: bool, epoch: int, step: int, phase: str,
                      n_phases: int) -> None:
    """Raise TrainingDiverged on a non-finite loss; under DDP every rank stops together (or the others
    would wait in backward forever)."""
    finite = math.isfinite(value)
    if distributed:
        flag = torch.tensor([1.0 if finite else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = bool(flag.item())
    if not finite:
        where = "" if not math.isfinite(value) else " on another rank"
        in_phase = f" (phase {phase})" if n_phases > 1 else ""
        raise TrainingDiverged(f"training loss became non-finite{where} at epoch {epoch}, step {step}{in_phase}"
                               + ("" if math.isfinite(value) else f" ({value})"))

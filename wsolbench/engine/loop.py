"""The epoch loop with its callbacks: step and epoch checkpoints, best-on-val, TensorBoard, a line per epoch.

:func:`fit` trains from a :class:`~wsolbench.engine.state.TrainingState` to the last
epoch. After each epoch the callbacks run in order on the epoch's history row
(``on_epoch_end``); every ``checkpoint_every`` steps ``on_step`` runs. A callback
never changes what is trained, only what is saved or logged, except that
:class:`BestOnVal` adds ``val_score`` to the row (which :class:`EpochLog`, after
it, reports).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from wsolbench.data.sampling import EpochSampler
from wsolbench.engine.device import AmpPolicy
from wsolbench.engine.state import TrainingState, save_training, save_weights
from wsolbench.engine.train import EpochMeter, Phase, train_one_epoch
from wsolbench.errors import ConfigError
from wsolbench.progress import Progress


class Callback:
    """Hooks of the epoch loop; the defaults do nothing."""

    def on_step(self, state: TrainingState) -> None:
        """A step checkpoint: ``state`` is mid-epoch (``state.step`` batches done)."""

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        """``row`` is the finished epoch's history entry, ``state`` already points at the next epoch."""

    def close(self) -> None:
        """The loop ended (normally or not)."""


class Checkpointer(Callback):
    """Writes the training checkpoint (rank 0 only): every ``checkpoint_every`` steps and after each epoch."""

    def __init__(self, path: Path, *, method: nn.Module, phases: Sequence[Phase], scaler: torch.amp.GradScaler,
                 config_hash: str, enabled: bool = True) -> None:
        self.path, self.method, self.phases, self.scaler = path, method, phases, scaler
        self.config_hash, self.enabled = config_hash, enabled

    def _save(self, state: TrainingState) -> None:
        if self.enabled:
            save_training(self.path, method=self.method, phases=self.phases, scaler=self.scaler, state=state,
                          config_hash=self.config_hash)

    def on_step(self, state: TrainingState) -> None:
        self._save(state)

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        self._save(state)


class BestOnVal(Callback):
    """Scores val after each epoch (``row["val_score"]``); with ``keep_best`` saves the best epoch's whole
    method state to ``path`` (first best on ties)."""

    def __init__(self, score: Callable[[], float], *, method: nn.Module, path: Path, keep_best: bool,
                 write: bool = True) -> None:
        self.score, self.method, self.path, self.keep_best, self.write = score, method, path, keep_best, write

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        row["val_score"] = self.score()
        if self.keep_best and (state.best is None or row["val_score"] > state.best["score"]):
            state.best = {"epoch": row["epoch"], "score": row["val_score"]}
            if self.write:
                save_weights(self.path, self.method, epoch=row["epoch"])


class TensorBoard(Callback):
    """Per-epoch scalars under ``<run>/tensorboard`` (``train/loss``, ``train/top1``, ``train/entropy``,
    ``train/lr``, ``val/localization``)."""

    KEYS = ("loss", "top1", "entropy", "lr", "val_score")

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard needs the tensorboard package: pip install 'wsolbench[tb]'") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        for key in self.KEYS:
            if key in row:
                self.writer.add_scalar(f"train/{key}" if key != "val_score" else "val/localization", row[key],
                                       row["epoch"])

    def close(self) -> None:
        self.writer.close()


class EpochLog(Callback):
    """One line per finished epoch through ``log`` (the progress protocol's: stderr in the CLI), e.g.
    ``cam-ce: epoch 2/5  loss 0.8123  train top-1 71.2 %  lr 0.01  val MaxBoxAcc 55.3 %  12.4 s``: the
    epoch's mean training loss, training top-1 and last learning rate, the val score when a callback before
    this one added it (``val_name()`` names it), and the epoch's training seconds."""

    def __init__(self, log: Callable[[str], None], *, name: str, epochs: int,
                 val_name: Callable[[], str] = lambda: "score", enabled: bool = True) -> None:
        self.log, self.name, self.epochs, self.val_name, self.enabled = log, name, epochs, val_name, enabled

    def on_epoch_end(self, state: TrainingState, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        parts = [f"{self.name}: epoch {row['epoch']}/{self.epochs}", f"loss {row['loss']:.4f}",
                 f"train top-1 {row['top1']:.1f} %", f"lr {row['lr']:.3g}"]
        if "val_score" in row:
            parts.append(f"val {self.val_name()} {row['val_score']:.1f} %")
        parts.append(f"{row['seconds']:.1f} s")
        self.log("  ".join(parts))


def fit(model: nn.Module, loader: DataLoader, sampler: EpochSampler, *, state: TrainingState,
        phases: Sequence[Phase], scaler: torch.amp.GradScaler, epochs: int, batch_size: int, seed: int,
        num_classes: int, device: torch.device, amp: AmpPolicy, progress: Progress, name: str,
        checkpoint_every: int = 0, callbacks: Sequence[Callback] = ()) -> TrainingState:
    """Train epochs ``state.epoch .. epochs``, resuming mid-epoch at ``state.step``; returns the final state.

    ``state.history`` gets one row per epoch (:class:`~wsolbench.engine.train.EpochStats` fields plus what
    the callbacks add). Callbacks are closed however the loop ends.
    """

    def on_checkpoint(step: int, meter: EpochMeter) -> None:
        mid = dataclasses.replace(state, step=step, meter=meter)
        for callback in callbacks:
            callback.on_step(mid)

    try:
        while state.epoch <= epochs:
            epoch = state.epoch
            sampler.set_epoch(epoch, start=state.step * batch_size)
            with progress.phase(f"{name}: epoch {epoch}/{epochs}", len(sampler)) as advance:
                stats = train_one_epoch(
                    model, loader, phases=phases, device=device, amp=amp, scaler=scaler, epoch=epoch, seed=seed,
                    num_classes=num_classes, start_step=state.step, meter=state.meter, on_batch=advance,
                    checkpoint_every=checkpoint_every, on_checkpoint=on_checkpoint)
            row = dataclasses.asdict(stats)
            state.history.append(row)
            state.epoch, state.step, state.meter = epoch + 1, 0, None
            for callback in callbacks:
                callback.on_epoch_end(state, row)
    finally:
        for callback in callbacks:
            callback.close()
    return state

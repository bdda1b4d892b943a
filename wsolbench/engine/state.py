"""The training state of one run, and its whole-method checkpoints.

A training checkpoint holds everything a run needs to continue exactly where it
stopped: the method's whole state (``method.state_dict()``: the backbone, attached
taps and every module the method owns), each phase's optimizer and scheduler,
the gradient scaler, the position (epoch, step within the epoch), the epoch's
running sums, the history so far, the best-on-val state, and the torch RNG
states. Random masks come from generators seeded by (seed, epoch, step, phase)
and the data order and augmentation are functions of (seed, epoch, index), so
they need no saved state. Loading is strict: a key the method does not have, or
one it has and the file lacks, is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wsolbench.engine import checkpoint as ckpt
from wsolbench.engine.train import EpochMeter, Phase
from wsolbench.errors import ConfigError, DataError


@dataclass
class TrainingState:
    """Where a run is: the next ``epoch`` (1-based) and ``step`` within it, the running ``meter`` of a
    half-done epoch, the per-epoch ``history`` and the ``best`` epoch on val so far."""

    epoch: int = 1
    step: int = 0
    meter: EpochMeter | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def load_method_state(method: nn.Module, state: dict[str, Any], path: Path) -> None:
    """``method.load_state_dict(state, strict=True)`` with a one-line error naming the mismatched keys."""
    own = set(method.state_dict())
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) "
                         f"({', '.join(unexpected[:3])}{', ...' if len(unexpected) > 3 else ''})")
        raise DataError(f"checkpoint {path} does not fit this method: {'; '.join(parts)}")
    try:
        method.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"checkpoint {path} does not fit this method: {str(exc).splitlines()[-1].strip()}") from None


def save_training(path: Path, *, method: nn.Module, phases: Sequence[Phase], scaler: torch.amp.GradScaler,
                  state: TrainingState, config_hash: str) -> Path:
    return ckpt.save(path, {
        "method": method.state_dict(),
        "phases": {p.name: {"optimizer": p.optimizer.state_dict(), "scheduler": p.scheduler.state_dict()}
                   for p in phases},
        "scaler": scaler.state_dict(), "epoch": state.epoch, "step": state.step,
        "meter": state.meter.state_dict() if state.meter is not None else None,
        "history": state.history, "best": state.best, "rng": ckpt.rng_state(), "config_hash": config_hash})


def restore_training(path: Path, *, method: nn.Module, phases: Sequence[Phase], scaler: torch.amp.GradScaler,
                     config_hash: str) -> TrainingState:
    """Load a training checkpoint into ``method``, the phases and the scaler; returns the position."""
    saved = ckpt.load(path)
    if saved.get("config_hash") != config_hash:
        raise ConfigError(f"checkpoint {path} was made by config {saved.get('config_hash')}, not {config_hash}")
    if "method" not in saved:
        raise DataError(f"checkpoint {path} predates whole-method checkpoints: start over with --rerun")
    load_method_state(method, saved["method"], path)
    names = [p.name for p in phases]
    if sorted(saved.get("phases", {})) != sorted(names):
        raise DataError(f"checkpoint {path} has phases {sorted(saved.get('phases', {}))}, the method {names}")
    for phase in phases:
        phase.optimizer.load_state_dict(saved["phases"][phase.name]["optimizer"])
        phase.scheduler.load_state_dict(saved["phases"][phase.name]["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    ckpt.set_rng_state(saved["rng"])
    return TrainingState(epoch=saved["epoch"], step=saved["step"], meter=EpochMeter.from_state(saved.get("meter")),
                         history=list(saved["history"]), best=saved.get("best"))


def save_weights(path: Path, method: nn.Module, **extra: Any) -> Path:
    """The method's whole state (``model.pt``, ``best.pt``), with ``extra`` plain fields."""
    return ckpt.save(path, {"method": method.state_dict(), **extra})


def load_weights(method: nn.Module, path: Path) -> dict[str, Any]:
    """Load ``model.pt`` / ``best.pt`` into ``method`` (strict); returns the file's other fields."""
    saved = ckpt.load(path)
    if "method" not in saved:
        raise DataError(f"checkpoint {path} holds no method state (made by an older wsolbench: --rerun the run)")
    load_method_state(method, saved["method"], path)
    return {k: v for k, v in saved.items() if k != "method"}

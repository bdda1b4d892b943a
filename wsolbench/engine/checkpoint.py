"""Checkpoint files: written atomically, loaded with ``weights_only=True``.

Nothing is pickled: a file holds tensors and plain containers only, and loading
refuses anything else. What a training checkpoint holds is in
:mod:`wsolbench.engine.state`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from wsolbench._io import atomic_write
from wsolbench.errors import DataError


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (a reader sees the old or the new checkpoint, whole)."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; DataError names the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"checkpoint {path} cannot be loaded: {first}") from None

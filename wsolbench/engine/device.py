"""Device selection and the mixed-precision policy."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from wsolbench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available (use --device cpu or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
        return device
    return torch.device("cpu")


@dataclass(frozen=True)
class AmpPolicy:
    """Mixed precision on CUDA: bf16 where supported, else fp16 with a gradient scaler; off on CPU."""

    device_type: str
    dtype: torch.dtype | None

    @classmethod
    def for_device(cls, device: torch.device) -> AmpPolicy:
        if device.type != "cuda":
            return cls(device.type, None)
        bf16 = torch.cuda.is_bf16_supported()
        return cls("cuda", torch.bfloat16 if bf16 else torch.float16)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)

    def describe(self) -> str | None:
        return None if self.dtype is None else str(self.dtype).removeprefix("torch.")

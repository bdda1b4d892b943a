"""A tiny progress protocol, so library code reports progress without knowing about terminals.

The CLI passes a rich-based implementation; tests and library users get
:class:`NullProgress` by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def phase(self, description: str, total: int) -> contextlib.AbstractContextManager[Advance]:
        """A context yielding ``advance(n)`` for one phase of ``total`` units."""

    def log(self, message: str) -> None:
        """A one-line status message (to stderr in the CLI)."""


class NullProgress:
    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Advance]:
        yield lambda n: None

    def log(self, message: str) -> None:
        pass

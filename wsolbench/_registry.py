"""One ``Registry`` type for every pluggable kind (backbones, objectives, methods, ...).

The CLI's choices and the tests' parametrization read registries, so adding a new
entry is one new decorated definition and nothing else to edit.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from wsolbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping; registering a name twice raises.

    ``on_register(name, obj)`` runs after each registration (e.g. to publish a class's
    ``Config`` to the torch-free config schemas, :mod:`wsolbench.config.axes`).
    """

    def __init__(self, kind: str, on_register: Callable[[str, T], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._on_register = on_register

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            if self._on_register is not None:
                self._on_register(name, obj)
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Registry({self.kind!r}, {self.names()!r})"


def create(registry: Registry[Any], name: str, /, **kwargs: Any) -> Any:
    """Look ``name`` up and call it with ``kwargs``."""
    return registry.get(name)(**kwargs)

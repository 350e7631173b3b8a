"""Build a function's dependencies once per container, in one place, and let tests replace them there.

A Lambda container serves many invocations: clients, the model store and the token verifier are built on the
first invocation that needs them (not at import, so a cold start pays only for what its first request uses)
and kept. Tests call `override()` with their own object instead of clearing caches module by module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by `factory` on first `get()`, then kept (thread-safe)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False

    def get(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self._factory()
                    self._built = True
        return self._value  # type: ignore[return-value]

    def override(self, value: T) -> None:
        with self._lock:
            self._value, self._built = value, True

    def reset(self) -> None:
        with self._lock:
            self._value, self._built = None, False

"""Named registries: a choice among kinds (model family, LR schedule, evaluator) is a lookup.

Adding a kind means registering it once, in its own module; everything that used to branch on
the kind's name asks the registry instead, so an unknown name fails loudly with the known ones
(never silently falls through to a default branch). Imports nothing heavy (no torch, no Ray):
spec validation and `vlscale --help` use registries too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from vlscale.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order.

    `kind` names the kind in error messages ("model type", "schedule", "evaluator").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: T | None = None):
        """Register `entry` under `name` (returns it), or used as a decorator without `entry`.

        A name registered twice is a bug (two modules claiming one kind), so it raises
        ValueError rather than letting the later module win silently.
        """
        def add(value: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> T:
        """Remove and return the entry of `name` (tests that register a kind clean up with it)."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry of `name`; UserError naming the known ones for an unknown name."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UserError(f"unknown {self.kind} {name!r}: known: "
                            f"{', '.join(self._entries) or '(none)'}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

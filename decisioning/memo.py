"""``Memo``: results of a pure function of long-lived objects (the catalog, a policy) and a few
small values, remembered so a request does not recompute them.

Keys use the objects' identity (hashing a whole catalog would cost more than the work saved);
each entry keeps its objects alive, so an id seen here always means the same object. A catalog
or policy is never changed in place: a new file makes a new object, and so new entries.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Memo(Generic[T]):
    def __init__(self, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], T]] = {}

    def get(self, objects: tuple[Any, ...], values: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """The remembered result for (``objects`` by identity, ``values``), else ``compute()``."""
        key = (*[id(o) for o in objects], *values)
        entry = self._entries.get(key)
        if entry is None or any(a is not b for a, b in zip(entry[0], objects)):
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # simple bound: the working set comes back within requests
            entry = self._entries[key] = (objects, compute())
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)

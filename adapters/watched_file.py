"""A value loaded from a file and re-read when the file changes: the levers file (``PolicyHolder``)
and the catalog (``CatalogFile``) are both this.

``refresh`` looks at the file's modification time and size; when they changed it loads and
validates the whole file. A file that fails validation is refused (``refused``, ``refusal``) and
the value in force keeps serving until the file is fixed; a file that changed while it was read
(a writer at work) is looked at again on the next check, neither served nor refused. A bad file
at start raises the loader's error, so the process refuses to start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
Stamp = tuple[int, int]


def file_stamp(path: Path) -> Stamp | None:
    """(modification time in ns, size in bytes), or None when the file cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class WatchedFile(Generic[T]):
    """Subclasses give ``load`` and ``error`` (what ``load`` raises for a bad file), and may log in
    ``on_refused`` / ``on_swapped`` and skip an unchanged value in ``same``."""

    error: type[Exception] = ValueError

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = file_stamp(path)
        self.current: T = self.load(path)
        self.failed_stamp: Stamp | None = None
        self.refusal: str | None = None

    def load(self, path: Path) -> T:
        raise NotImplementedError

    def same(self, old: T, new: T) -> bool:
        return False

    def on_refused(self, exc: Exception) -> None:
        pass

    def on_swapped(self, old: T, new: T) -> None:
        pass

    @property
    def refused(self) -> bool:
        return self.failed_stamp is not None

    def refresh(self) -> bool:
        """Load the file if it changed since the last look; True if the value was swapped."""
        stamp = file_stamp(self.path)
        if stamp is None or stamp == self._stamp or stamp == self.failed_stamp:
            return False
        try:
            new = self.load(self.path)
        except self.error as exc:
            if file_stamp(self.path) != stamp:
                return False  # still being written: look again next time
            self.failed_stamp, self.refusal = stamp, str(exc)
            self.on_refused(exc)
            return False
        if file_stamp(self.path) != stamp:
            return False  # changed while it was read: look again next time
        self._stamp, self.failed_stamp, self.refusal = stamp, None, None
        if self.same(self.current, new):
            return False
        old, self.current = self.current, new
        self.on_swapped(old, new)
        return True

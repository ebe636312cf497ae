"""The product catalog a process serves, re-read when its file changes (no restart).

The bank edits its catalog CSV (``NBO_CATALOG__PATH``; default the packaged
``domain/data/catalog.csv``): a product retired (its row removed), a product launched (a new
row), a rule changed (age band, minimum assets, channels, cool-down, value, texts). Every
``NBO_CATALOG__POLL_S`` the API and the stream workers check the file's modification time and
size and, when they changed, validate the whole file with ``domain.catalog.load_catalog`` and
swap in the new catalog if its content differs; a file that changed while it was read is looked
at again on the next check. A file that fails validation is refused with
the file, line and column in the log (``refusal``), and the catalog in force keeps serving
until the file is fixed; a bad file at start stops the process (``CatalogError``).

``StaticCatalog`` is the same port over a catalog that never changes (tests, tools that load the
catalog once).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from domain.catalog import DEFAULT_CATALOG_PATH, Catalog, CatalogError, load_catalog

log = logging.getLogger("nbo.catalog")


def describe_change(old: Catalog, new: Catalog) -> str:
    """One line for the log: the new catalog's size and hash, the products launched and retired."""
    launched = [pid for pid in new.ids if pid not in old]
    retired = [pid for pid in old.ids if pid not in new]
    parts = [f"{len(new)} products, sha256 {new.content_hash()[:12]} (was {old.content_hash()[:12]})"]
    if launched:
        parts.append("launched " + ", ".join(launched))
    if retired:
        parts.append("retired " + ", ".join(retired))
    if not launched and not retired:
        parts.append("same products, rules or texts changed")
    return "; ".join(parts)


class CatalogFile:
    """The ``CatalogSource`` over a CSV file (``path``; default the packaged catalog)."""

    def __init__(self, path: Path | None = None) -> None:
        """Loads the file now; a bad file raises ``CatalogError`` (the process refuses to start)."""
        self.path = Path(path) if path is not None else DEFAULT_CATALOG_PATH
        self._stamp = self._read_stamp()
        self.current: Catalog = load_catalog(self.path)
        self.failed_stamp: tuple[int, int] | None = None
        self.refusal: str | None = None

    @property
    def refused(self) -> bool:
        return self.failed_stamp is not None

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh(self) -> bool:
        """Load the file if it changed since the last look; True if the catalog was swapped."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp or stamp == self.failed_stamp:
            return False
        try:
            catalog = load_catalog(self.path)
        except CatalogError as exc:
            if self._read_stamp() != stamp:
                return False  # still being written: look again next time
            self.failed_stamp, self.refusal = stamp, str(exc)
            log.error("keeping the catalog in force (%d products, sha256 %s): %s", len(self.current),
                      self.current.content_hash()[:12], exc)
            return False
        if self._read_stamp() != stamp:
            return False  # changed while it was read (a writer at work): look again next time
        self._stamp, self.failed_stamp, self.refusal = stamp, None, None
        if catalog.content_hash() == self.current.content_hash():
            return False  # saved again, same content (comments and line ends do not count)
        old, self.current = self.current, catalog
        log.warning("catalog reloaded from %s: %s", self.path, describe_change(old, catalog))
        return True


class StaticCatalog:
    """The ``CatalogSource`` of one catalog that never changes (``refresh`` finds nothing)."""

    refused = False
    refusal: str | None = None

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog

    def refresh(self) -> bool:
        return False

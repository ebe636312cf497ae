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
from pathlib import Path

from adapters.watched_file import WatchedFile
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


class CatalogFile(WatchedFile[Catalog]):
    """The ``CatalogSource`` over a CSV file (``path``; default the packaged catalog)."""

    error = CatalogError

    def __init__(self, path: Path | None = None) -> None:
        """Loads the file now; a bad file raises ``CatalogError`` (the process refuses to start)."""
        super().__init__(Path(path) if path is not None else DEFAULT_CATALOG_PATH)

    def load(self, path: Path) -> Catalog:
        return load_catalog(path)

    def same(self, old: Catalog, new: Catalog) -> bool:
        return old.content_hash() == new.content_hash()  # saved again: comments and line ends do not count

    def on_refused(self, exc: Exception) -> None:
        log.error("keeping the catalog in force (%d products, sha256 %s): %s", len(self.current),
                  self.current.content_hash()[:12], exc)

    def on_swapped(self, old: Catalog, new: Catalog) -> None:
        log.warning("catalog reloaded from %s: %s", self.path, describe_change(old, new))


class StaticCatalog:
    """The ``CatalogSource`` of one catalog that never changes (``refresh`` finds nothing)."""

    refused = False
    refusal: str | None = None

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog

    def refresh(self) -> bool:
        return False

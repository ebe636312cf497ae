"""The model the API ranks with, swapped without restart when a new version is promoted.

Polls the registry's current version; loads a new one off the event loop; keeps serving the old
model when the new artifact is corrupt or does not match the catalog. Before any model was
trained it serves ``PriorModel`` (version ``popularity``).

Given a ``CatalogSource``, the holder follows the catalog in force: a version is promoted only
if it was trained for the catalog in use then (same content hash). When the catalog changes
under a served model, the model keeps serving: it maps products by id, so the products it knows
keep their scores, a retired product is no longer a candidate (eligibility walks the catalog),
and a launched one gets the cold-start propensity of ``decisioning.scoring``. The popularity
model is rebuilt for the new catalog. A model trained for the old catalog is still refused at
the next start (retrain and promote for the new one)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Callable

from domain.catalog import Catalog
from adapters.model_registry import ModelRegistry, RegistryError
from adapters.ports import CatalogSource, ModelRegistry as ModelRegistryPort
from decisioning.scores import RankingModel
from recommender.model import PriorModel

log = logging.getLogger("nbo.api.models")


class ModelHolder:
    """The ``ModelSource`` over a ``ModelRegistry`` (the file registry in production, a
    ``MemoryRegistry`` in tests; a directory is read as the file registry there)."""

    def __init__(self, registry: ModelRegistryPort | Path, catalog: Catalog | CatalogSource) -> None:
        self.catalogs: CatalogSource | None = None if isinstance(catalog, Catalog) else catalog
        self.catalog: Catalog = catalog if isinstance(catalog, Catalog) else catalog.current
        self.registry: ModelRegistryPort = (ModelRegistry(registry, self.catalog) if isinstance(registry, Path)
                                            else registry)
        self.current: RankingModel = PriorModel(self.catalog)
        self.failed_version: str | None = None
        self._lock = threading.Lock()  # the model and the catalog watchers may both call refresh
        self.refresh()

    @property
    def version(self) -> str:
        return self.current.version

    def refresh(self) -> bool:
        """Follow the catalog in force, then load the promoted version if it changed; True if the
        model was swapped."""
        with self._lock:
            swapped = self._follow_catalog()
            return self._load_promoted() or swapped

    def _follow_catalog(self) -> bool:
        catalog = self.catalogs.current if self.catalogs is not None else self.catalog
        if catalog is self.catalog:
            return False
        self.catalog, self.failed_version = catalog, None  # a refused version may fit the new catalog
        if self.current.version == "popularity":
            self.current = PriorModel(catalog)
            return True
        log.warning("catalog changed (sha256 %s): model %s keeps serving the products it knows; retrain and "
                    "promote for this catalog", catalog.content_hash()[:12], self.current.version)
        return False

    def _load_promoted(self) -> bool:
        registry = self.registry
        wanted = registry.current_version()
        if wanted is None or wanted == self.current.version or wanted == self.failed_version:
            return False
        try:
            model = registry.load(wanted, self.catalog)
        except RegistryError as exc:
            self.failed_version = wanted
            log.error("keeping model %s: version %s cannot be served (%s)", self.current.version, wanted, exc)
            return False
        self.current = model
        log.warning("now serving model %s", wanted)
        return True


async def poll(refresh: Callable[[], object], every_s: float, what: str) -> None:
    """Call ``refresh`` (off the event loop) every ``every_s`` seconds, for ever; a failure is
    logged and the next round tries again (the model and the policy watchers)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(refresh)
        except Exception:  # never let the watcher die
            log.exception("%s refresh failed", what)

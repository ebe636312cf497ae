"""The model the API ranks with, swapped without restart when a new version is promoted.

Polls the registry's current version; loads a new one off the event loop; keeps serving the old
model when the new artifact is corrupt or does not match the catalog. Before any model was
trained it serves ``PriorModel`` (version ``popularity``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from domain.catalog import Catalog
from adapters.model_registry import ModelRegistry, RegistryError
from adapters.ports import ModelRegistry as ModelRegistryPort
from decisioning.scores import RankingModel
from recommender.model import PriorModel

log = logging.getLogger("nbo.api.models")


class ModelHolder:
    """The ``ModelSource`` over a ``ModelRegistry`` (the file registry in production, a
    ``MemoryRegistry`` in tests; a directory is read as the file registry there)."""

    def __init__(self, registry: ModelRegistryPort | Path, catalog: Catalog) -> None:
        self.catalog = catalog
        self.registry: ModelRegistryPort = (ModelRegistry(registry, catalog) if isinstance(registry, Path)
                                            else registry)
        self.current: RankingModel = PriorModel(catalog)
        self.failed_version: str | None = None
        self.refresh()

    @property
    def version(self) -> str:
        return self.current.version

    def refresh(self) -> bool:
        """Load the promoted version if it changed; True if the model was swapped."""
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

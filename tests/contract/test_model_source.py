"""``ModelSource``: the API's model watcher (``ModelHolder``) behaves the same over the file
registry and the in-memory one: popularity before any promotion, the promoted version after a
refresh, and the model in force kept when a promoted version cannot be served."""

from __future__ import annotations

from adapters.model_watch import ModelHolder
from portkit import CATALOG
from test_model_registry import OTHER_CATALOG, trained


def test_popularity_until_a_version_is_promoted_then_that_version(registry):
    holder = ModelHolder(registry, CATALOG)
    assert holder.version == "popularity"
    assert holder.refresh() is False

    registry.save(trained(0), version="v1")
    assert holder.refresh() is False  # saved is not promoted
    registry.promote("v1")
    assert holder.refresh() is True
    assert holder.version == "v1"
    assert holder.refresh() is False  # nothing new

    registry.save(trained(1), version="v2")
    registry.promote("v2")
    assert holder.refresh() is True
    assert holder.version == "v2"


def test_a_version_trained_for_another_catalog_leaves_the_model_in_force(registry):
    """The API serves the catalog it was started with; a model promoted for another is refused."""
    holder = ModelHolder(registry, OTHER_CATALOG)
    registry.save(trained(0), version="for-the-packaged-catalog")
    registry.promote("for-the-packaged-catalog")
    assert holder.refresh() is False
    assert holder.version == "popularity"
    assert holder.failed_version == "for-the-packaged-catalog"
    assert holder.refresh() is False  # not retried until another version is promoted

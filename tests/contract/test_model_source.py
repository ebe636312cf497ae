"""``ModelSource``: the API's model watcher (``ModelHolder``) behaves the same over the file
registry and the in-memory one: popularity before any promotion, the promoted version after a
refresh, the model in force kept when a promoted version cannot be served, and kept across a
change of the catalog in force (``CatalogSource``) until a version for the new catalog is promoted."""

from __future__ import annotations

from adapters.fakes import MemoryCatalogSource
from adapters.model_watch import ModelHolder
from bank_catalog import GREEN_BOND_FUND, trained_for
from domain.catalog import parse_catalog
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


def test_the_served_model_follows_a_catalog_change_and_a_version_for_the_new_catalog_is_served(registry):
    """The API's catalog changes under a promoted model (a product retired, one launched): the
    model keeps serving; a version trained for the new catalog is promoted and served; one for
    the old catalog is refused from then on."""
    source = MemoryCatalogSource(CATALOG)
    holder = ModelHolder(registry, source)
    registry.save(trained(0), version="for-the-packaged-catalog")
    registry.promote("for-the-packaged-catalog")
    assert holder.refresh() is True

    lines = CATALOG.canonical_text.splitlines()
    changed = "\n".join([line for line in lines if not line.startswith("bond_fund,")] + [GREEN_BOND_FUND]) + "\n"
    source.set(changed)
    assert source.refresh() is True
    assert holder.refresh() is False and holder.version == "for-the-packaged-catalog"  # kept: maps by id

    new = parse_catalog(changed)
    registry.save(trained_for(new), {"catalog_hash": new.content_hash()}, version="for-the-new-catalog")
    registry.promote("for-the-new-catalog", new)
    assert holder.refresh() is True and holder.version == "for-the-new-catalog"
    assert holder.current.product_ids == new.ids

    registry.save(trained(1), version="old-catalog-again")
    registry.promote("old-catalog-again")  # the registry's own catalog is the packaged one
    assert holder.refresh() is False and holder.version == "for-the-new-catalog"
    assert holder.failed_version == "old-catalog-again"

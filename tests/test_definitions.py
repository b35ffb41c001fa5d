import dagster as dg

from geotriplet_assets.definitions import ALL_ASSETS, build_definitions
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS


def test_the_code_location_loads_with_every_asset_check_and_resource() -> None:
    definitions = build_definitions()
    repository = definitions.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == {
        "image_catalog",
        "backbone_embeddings",
        "targets",
        "dataset_splits",
        "geo_neighbours",
        "hyperparameter_search",
        "projection_head",
        "serving_model",
        "search_index",
        "retrieval_report",
    }
    assert "settings" in definitions.resources


def test_lineage_runs_from_catalogue_to_head() -> None:
    graph = build_definitions().get_repository_def().asset_graph

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("backbone_embeddings") == {"image_catalog"}
    assert parents("targets") == {"image_catalog", "backbone_embeddings"}
    assert parents("geo_neighbours") == {"targets", "dataset_splits"}
    assert "hyperparameter_search" in parents("projection_head")
    assert parents("serving_model") == {"projection_head"}
    assert "serving_model" in parents("search_index")
    assert parents("retrieval_report") == {"search_index"}


def test_assets_carry_groups_kinds_and_descriptions() -> None:
    for asset in ALL_ASSETS:
        spec = next(iter(asset.specs))
        assert spec.group_name in {"catalogue", "features", "geography", "training", "serving"}
        assert spec.kinds, f"{spec.key} has no kinds"
        assert spec.description, f"{spec.key} has no description"
    embeddings = next(a for a in ALL_ASSETS if a.key == dg.AssetKey("backbone_embeddings"))
    assert embeddings.partitions_def == DATASET_PARTITIONS


def test_the_checks_that_guard_training_are_blocking() -> None:
    repository = build_definitions().get_repository_def()
    blocking = {
        spec.name
        for checks in repository.asset_checks_defs_by_key.values()
        for spec in checks.check_specs
        if spec.blocking
    }
    assert blocking == {
        "embeddings_finite_and_nonzero",
        "every_image_accounted_for",
        "splits_disjoint_and_buffered",
        "neighbours_sorted_and_consistent",
        "serving_model_matches_pytorch",
    }

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.search import GeoFilter, SearchQuery
from geotriplet_assets.geodesy import great_circle_m
from tests.factories.brute_force_search import brute_force
from tests.factories.bundles import CITY_CENTRE, write_bundle
from tests.factories.service_app import ServiceData


def _hits(bundle: LoadedBundle, query: SearchQuery) -> list[tuple[int, float]]:
    return [(hit.row, hit.score) for hit in bundle.search([query])[0]]


def _assert_same(actual: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert actual == expected


def _queries(bundle: LoadedBundle) -> list[SearchQuery]:
    rows = [3, 17, 250, 777, 1234]
    centre = GeoFilter(CITY_CENTRE[0], CITY_CENTRE[1], 1500.0)
    queries = []
    for row in rows:
        vector = bundle.vector(row)
        building = bundle.building(row)
        record = bundle.image_record(row)
        around = GeoFilter(record["lat"], record["lon"], 800.0)
        queries += [
            SearchQuery(vector, k=10),
            SearchQuery(vector, k=10, exclude_rows=frozenset({row})),
            SearchQuery(vector, k=7, group_by_building=True),
            SearchQuery(vector, k=5, exclude_rows=frozenset({row}), exclude_building=building),
            SearchQuery(vector, k=12, geo=centre),
            SearchQuery(vector, k=6, geo=centre, group_by_building=True),
            SearchQuery(
                vector,
                k=9,
                geo=around,
                exclude_rows=frozenset({row}),
                exclude_building=building,
            ),
        ]
    return queries


def test_every_query_form_equals_brute_force(city_bundle: LoadedBundle) -> None:
    for query in _queries(city_bundle):
        _assert_same(_hits(city_bundle, query), brute_force(city_bundle, query))


def test_a_batch_answers_as_its_queries_one_by_one(city_bundle: LoadedBundle) -> None:
    queries = _queries(city_bundle)
    batch = city_bundle.search(queries)
    assert batch == [city_bundle.search([query])[0] for query in queries]


def test_filtered_search_through_faiss_selector_equals_brute_force(
    service_data: ServiceData,
) -> None:
    # No candidate set is small enough for the exact path: FAISS searches with a selector.
    bundle = load_bundle(service_data.bundle_path, exact_filter_max_candidates=0)
    for query in _queries(bundle):
        _assert_same(_hits(bundle, query), brute_force(bundle, query))


def test_grouping_returns_one_hit_per_building(city_bundle: LoadedBundle) -> None:
    hits = city_bundle.search([SearchQuery(city_bundle.vector(40), k=50, group_by_building=True)])
    buildings = [(hit.dataset_id, hit.target_id) for hit in hits[0]]
    assert len(buildings) == 50
    assert len(set(buildings)) == 50
    ungrouped = city_bundle.search([SearchQuery(city_bundle.vector(40), k=50)])[0]
    assert len({(hit.dataset_id, hit.target_id) for hit in ungrouped}) < 50


def test_exclusions_refetch_until_k_hits(city_bundle: LoadedBundle) -> None:
    # Exclude the 40 best rows: the first fetch (k + 40) cannot hold k survivors.
    query_vector = city_bundle.vector(5)
    best = [hit.row for hit in city_bundle.search([SearchQuery(query_vector, k=40)])[0]]
    query = SearchQuery(query_vector, k=20, exclude_rows=frozenset(best), group_by_building=True)
    hits = _hits(city_bundle, query)
    assert len(hits) == 20
    assert not set(best) & {row for row, _ in hits}
    _assert_same(hits, brute_force(city_bundle, query))


def test_k_beyond_the_matching_rows_returns_them_all(city_bundle: LoadedBundle) -> None:
    record = city_bundle.image_record(100)
    geo = GeoFilter(record["lat"], record["lon"], 30.0)
    hits = city_bundle.search([SearchQuery(city_bundle.vector(100), k=100, geo=geo)])[0]
    distances = great_circle_m(
        city_bundle.images.lat, city_bundle.images.lon, record["lat"], record["lon"]
    )
    assert 0 < len(hits) == int((distances <= 30.0).sum()) < 100
    everything = city_bundle.search([SearchQuery(city_bundle.vector(100), k=city_bundle.count)])
    assert sorted(hit.row for hit in everything[0]) == list(range(city_bundle.count))


def test_a_circle_without_images_gives_no_hits(city_bundle: LoadedBundle) -> None:
    geo = GeoFilter(-33.86, 151.21, 5000.0)
    assert city_bundle.search([SearchQuery(city_bundle.vector(0), k=5, geo=geo)]) == [[]]


def test_ties_are_broken_by_row(service_data: ServiceData, tmp_path) -> None:
    city = service_data.city
    vectors = city.vectors.copy()
    vectors[10:20] = vectors[10]  # ten identical vectors
    path = write_bundle(
        tmp_path, model_path=service_data.model_path, vectors=vectors, images=city.images
    )
    for exact_limit in (50_000, 0):
        bundle = load_bundle(path, exact_filter_max_candidates=exact_limit)
        geo = GeoFilter(CITY_CENTRE[0], CITY_CENTRE[1], 10_000.0)
        for query in (SearchQuery(vectors[10], k=10), SearchQuery(vectors[10], k=10, geo=geo)):
            assert [hit.row for hit in bundle.search([query])[0]] == list(range(10, 20))


@pytest.mark.parametrize(
    ("index_type", "params"),
    [
        ("hnsw", {"hnsw_m": 16, "hnsw_ef_construction": 100, "hnsw_ef_search": 200}),
        ("ivfpq", {"ivf_nlist": 8, "ivf_nprobe": 8, "pq_m": 4}),
    ],
)
def test_approximate_indexes_respect_filters_and_rank_exactly(
    service_data: ServiceData, tmp_path, index_type: str, params: dict
) -> None:
    city = service_data.city
    path = write_bundle(
        tmp_path,
        model_path=service_data.model_path,
        vectors=city.vectors,
        images=city.images,
        index_type=index_type,
        index_params=params,
    )
    bundle = load_bundle(path, exact_filter_max_candidates=0)
    assert bundle.index_type == index_type
    recalls = []
    for query in _queries(bundle):
        hits = bundle.search([query])[0]
        expected = brute_force(bundle, query)
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(
            scores, np.asarray(bundle.vectors)[[hit.row for hit in hits]] @ query.vector, atol=1e-6
        )
        assert not {hit.row for hit in hits} & query.exclude_rows
        if query.geo is not None:
            distance = great_circle_m(
                [hit.lat for hit in hits], [hit.lon for hit in hits], query.geo.lat, query.geo.lon
            )
            assert (distance <= query.geo.radius_m).all()
        if query.group_by_building:
            assert len({(h.dataset_id, h.target_id) for h in hits}) == len(hits)
        recalls.append(len({h.row for h in hits} & {row for row, _ in expected}) / len(expected))
    assert np.mean(recalls) > 0.8


def test_ivfpq_candidates_are_widened_by_the_bundle_s_rerank_factor(
    service_data: ServiceData, tmp_path
) -> None:
    city = service_data.city
    recalls = {}
    for rerank in (1, 10):
        path = write_bundle(
            tmp_path / str(rerank),
            model_path=service_data.model_path,
            vectors=city.vectors,
            images=city.images,
            index_type="ivfpq",
            index_params={"ivf_nlist": 8, "ivf_nprobe": 8, "pq_m": 2, "ivf_rerank": rerank},
        )
        bundle = load_bundle(path)
        assert bundle.manifest.index.params["rerank"] == rerank
        queries = [SearchQuery(bundle.vector(row), k=10) for row in range(0, 1500, 50)]
        found = [{hit.row for hit in hits} for hits in bundle.search(queries)]
        expected = [{row for row, _ in brute_force(bundle, query)} for query in queries]
        recalls[rerank] = np.mean([len(f & e) / 10 for f, e in zip(found, expected, strict=True)])
    assert recalls[1] < 0.9 and recalls[10] > recalls[1] + 0.1


def test_a_malformed_query_is_refused(city_bundle: LoadedBundle) -> None:
    with pytest.raises(ValueError, match="shape"):
        city_bundle.search([SearchQuery(np.zeros(3, dtype=np.float32), k=1)])
    with pytest.raises(ValueError, match="non-finite"):
        city_bundle.search([SearchQuery(np.full(city_bundle.dim, np.nan, np.float32), k=1)])
    with pytest.raises(ValueError, match="k must be"):
        city_bundle.search([SearchQuery(city_bundle.vector(0), k=0)])


def test_selector_search_works_after_faiss_torch_utils_replaced_index_search() -> None:
    import faiss

    # pytorch-metric-learning imports this too; it replaces Index.search with a wrapper
    import faiss.contrib.torch_utils

    from geotriplet_assets.bundle.search import faiss_search

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    index = faiss.IndexFlatIP(8)
    index.add(vectors)
    allowed = np.arange(0, 200, 7)
    selector = faiss.IDSelectorBatch(allowed)
    _, rows = faiss_search(index, vectors[:1], 3, faiss.SearchParameters(sel=selector))
    expected = allowed[np.argsort(-(vectors[allowed] @ vectors[0]), kind="stable")[:3]]
    assert rows[0].tolist() == expected.tolist()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell 1 thread apart")
def test_search_threads_apply_in_the_thread_that_searches(service_data: ServiceData) -> None:
    import faiss

    bundle = load_bundle(service_data.bundle_path, search_threads=1)
    seen: list[int] = []

    def request_thread() -> None:
        bundle.search([SearchQuery(bundle.vector(0), k=3)])
        seen.append(faiss.omp_get_max_threads())

    worker = threading.Thread(target=request_thread)
    worker.start()
    worker.join()
    assert seen == [1]

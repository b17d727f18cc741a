"""Metadata filters evaluated in Python agree with Chroma's own, and a filtered query returns what
Chroma's filtered query returns, asking Chroma to filter only when the filter is selective."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from prism.errors import InputError
from prism.settings import Settings
from prism.store import FILTER_PROBE_MAX, Store, VectorEntry
from prism.where import Unsupported, matches

GENRES = ["Drama", "Comedy", "Horror"]


def record(i: int) -> dict:
    """Varied metadata: some keys missing, ints and floats, booleans, lists, strings."""
    meta = {"year": 1950 + (i * 7) % 60, "genres": GENRES[: 1 + i % 3], "title": f"Film {i % 5}",
            "score": i / 4, "seen": i % 2 == 0}
    if i % 3:
        meta["rank"] = i % 4
    if i % 5 == 0:
        del meta["genres"]
    return meta


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    store = Store(Settings(home=tmp_path_factory.mktemp("where")))
    rng = np.random.default_rng(0)
    store.put_vectors("where", [VectorEntry(id=str(i), item_id=str(i), field="document", text="", vector=v,
                                            metadata=record(i)) for i, v in enumerate(rng.normal(size=(40, 8)))])
    return store.collection("where")


keys = st.sampled_from(["year", "genres", "title", "score", "seen", "rank", "absent"])
scalars = st.one_of(st.integers(1940, 2015), st.sampled_from([0, 1, 2, 3, 0.5, 1.0, 2.25]), st.booleans(),
                    st.sampled_from([*GENRES, "Film 1", "Film 3", "x"]))
field_filters = st.builds(
    lambda key, op, value: {key: value if op is None else {op: value}}, keys,
    st.sampled_from([None, "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$contains", "$not_contains"]), scalars) | \
    st.builds(lambda key, op, values: {key: {op: values}}, keys, st.sampled_from(["$in", "$nin"]),
              st.lists(scalars, min_size=1, max_size=3))
filters = st.recursive(field_filters, lambda inner: st.builds(lambda op, parts: {op: parts},
                                                              st.sampled_from(["$and", "$or"]),
                                                              st.lists(inner, min_size=2, max_size=3)), max_leaves=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=filters)
def test_a_filter_evaluated_here_keeps_exactly_what_chroma_keeps(collection, where):
    try:
        ours = {str(i) for i in range(40) if matches(record(i), where)}
    except Unsupported:
        assume(False)  # Chroma decides these (and rejects the invalid ones)
    assert ours == set(collection.get(where=where)["ids"]), where


def test_what_python_does_not_evaluate_exactly_is_left_to_chroma():
    for where in ({"genres": "Drama"}, {"title": {"$gt": "b"}}, {"year": {"$in": [1990.0, 1991]}},
                  {"year": {"$gt": 1990, "$lt": 2000}}, {"$not": [{"year": 1990}]}, {"$and": []}, {}):
        with pytest.raises(Unsupported):
            matches(record(1), where)


def filmstore(tmp_path, **settings_update) -> tuple[Store, np.ndarray]:
    """1,000 committed 16-d entries; year 1900-1999 by id, and one ``rare`` entry (id 7)."""
    store = Store(Settings(home=tmp_path, **settings_update))
    vectors = np.random.default_rng(1).normal(size=(1000, 16)).astype(np.float32)
    store.put_vectors("films", [VectorEntry(id=f"{i}|document", item_id=str(i), field="document", text=f"plot {i}",
                                            vector=v, metadata={"year": 1900 + i % 100, "rare": i == 7})
                                for i, v in enumerate(vectors)])
    store.put_items([{"id": str(i), "document": "", "metadata": {"title": str(i)}} for i in range(1000)])
    return store, vectors


def spy(store: Store, space: str) -> tuple[list, list, object]:
    """Record the filters of a collection's queries and filtered gets; also return its real query."""
    collection = store.collection(space)
    queries, gets = [], []
    query, get = collection.query, collection.get
    collection.query = lambda **kw: queries.append((kw.get("where"), kw.get("ids") is not None)) or query(**kw)
    collection.get = lambda **kw: ("where" in kw and gets.append(kw["where"])) or get(**kw)  # filtered gets
    return queries, gets, query


def test_a_broad_filter_is_applied_to_more_unfiltered_neighbours_and_a_selective_one_by_chroma(tmp_path):
    store, vectors = filmstore(tmp_path)
    queries, gets, query = spy(store, "films")

    # 80 % pass: one probe; 10 %: larger probes (here the second fell just short: three in all);
    # 1 in 1000: Chroma finds the entries the filter lets through, and only those are searched.
    broad, middling, selective = {"year": {"$gte": 1920}}, {"year": {"$lt": 1910}}, {"rare": True}
    for where, probes, chroma_filters in ((broad, 1, False), (middling, 3, False), (selective, 1, True)):
        queries.clear()
        gets.clear()
        got = store.query("films", vectors[7], n=20, where=where)
        expected = query(query_embeddings=[vectors[7]], n_results=20, where=where, include=["distances"])["ids"][0]
        assert [f"{m.item_id}|document" for m in got] == expected
        assert queries.count((None, False)) == probes and (gets == [where]) is chroma_filters, (queries, gets)
        assert ((None, True) in queries) is chroma_filters  # the search among the passing entries
    assert len(store.query("films", vectors[7], n=20, where=selective)) == 1
    assert store.query("films", vectors[7], n=20, where={"year": 2050}) == []  # nothing passes: nothing found
    assert FILTER_PROBE_MAX * 20 < 1000  # the probes saw part of the space, not all of it
    with pytest.raises(InputError, match="invalid metadata filter"):
        store.query("films", vectors[7], n=20, where={"year": {"$gt": "soon"}})


def test_the_entries_a_filter_passes_are_searched_exactly_or_by_chroma_when_too_many_to_hold(tmp_path, monkeypatch):
    import prism.store

    monkeypatch.setattr(prism.store, "FILTER_PROBE_MAX", 1)  # no second probe: every filter is "selective"
    store, vectors = filmstore(tmp_path)
    queries, gets, _ = spy(store, "films")
    early = {"year": {"$lt": 1910}}  # ids 0-9, 100-109, ...: 100 entries
    passing = np.array([1900 + i % 100 < 1910 for i in range(1000)])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    searched_by_chroma = []
    for q in vectors[[3, 250, 999, 4]] + 0.5:
        queries.clear()
        scores = np.where(passing, unit @ (q / np.linalg.norm(q)), -np.inf)
        truth = [str(i) for i in np.argsort(-scores)[:20]]
        got = store.query("films", q, n=20, where=early)
        assert [m.item_id for m in got] == truth
        assert np.allclose([m.similarity for m in got], np.sort(scores)[::-1][:20], atol=1e-5)
        assert got[0].text == f"plot {got[0].item_id}" and got[0].metadata["year"] < 1910
        searched_by_chroma.append((None, True) in queries)
    # looked up once; Chroma searched among the ids until the third query read their vectors
    assert gets == [early] and searched_by_chroma == [True, True, False, False]

    monkeypatch.setattr(prism.store, "FILTER_EXACT_MAX", 50)  # now too many to hold
    holding = Store(store.settings)
    queries, gets, _ = spy(holding, "films")
    for _ in range(4):
        queries.clear()
        assert [m.item_id for m in holding.query("films", q, n=20, where=early)] == truth
    assert (None, True) in queries and gets == [early]  # ids only, and Chroma searched among them

    monkeypatch.setattr(prism.store, "FILTER_EXACT_MAX", 20_000)
    monkeypatch.setattr(prism.store, "FILTER_CACHE_BYTES", 100 * 16 * 4)  # room for one filter's vectors
    budget = Store(store.settings)
    _, gets, _ = spy(budget, "films")
    late = {"year": {"$gte": 1990}}
    for where in [early] * 3 + [late] * 3 + [early]:
        budget.query("films", vectors[3], n=5, where=where)
    assert gets == [early, late, early]  # the second filter's vectors pushed the first one's out


def test_a_selective_filter_s_entries_are_kept_until_a_write_or_for_the_settings_time(tmp_path, monkeypatch):
    import prism.store

    store, vectors = filmstore(tmp_path)
    other = Store(store.settings)  # another Store of this process, on the same location
    queries, gets, _ = spy(store, "films")
    rare = {"rare": True}
    assert [m.item_id for m in store.query("films", vectors[3], n=5, where=rare)] == ["7"]
    assert [m.item_id for m in store.query("films", vectors[9], n=5, where=rare)] == ["7"] and gets == [rare]

    other.put_vectors("films", [VectorEntry(id="1000|document", item_id="1000", field="document", text="",
                                            vector=vectors[3], metadata={"year": 2000, "rare": True})])
    other.put_items([{"id": "1000", "document": "", "metadata": {"title": "1000"}}])
    assert [m.item_id for m in store.query("films", vectors[3], n=5, where=rare)] == ["1000", "7"]
    assert gets == [rare, rare]  # the write cleared the kept entries

    now = [prism.store.time.monotonic()]
    monkeypatch.setattr(prism.store.time, "monotonic", lambda: now[0])
    now[0] += store.settings.store_filter_cache_seconds - 1
    store.query("films", vectors[3], n=5, where=rare)
    assert gets == [rare] * 2
    now[0] += 2  # a write by another process is seen this late
    store.query("films", vectors[3], n=5, where=rare)
    assert gets == [rare] * 3

    unkept, _ = filmstore(tmp_path / "unkept", store_filter_cache_seconds=0)
    _, gets, _ = spy(unkept, "films")
    for _ in range(2):
        unkept.query("films", vectors[3], n=5, where=rare)
    assert gets == [rare, rare]


def test_a_store_that_has_looked_up_many_items_reads_every_committed_id_once(tmp_path, monkeypatch):
    import prism.store

    monkeypatch.setattr(prism.store, "COMMITTED_BULK", 30)
    settings = Settings(home=tmp_path)
    store, writer = Store(settings), Store(settings)  # writer: another process's ingest
    vectors = np.random.default_rng(2).normal(size=(120, 8)).astype(np.float32)
    writer.put_vectors("films", [VectorEntry(id=f"{i}|document", item_id=str(i), field="document", text="",
                                             vector=v) for i, v in enumerate(vectors)])
    writer.put_items([{"id": str(i), "document": "", "metadata": {"title": str(i)}} for i in range(100)])  # 100-119 unfinished
    lookups = []
    item_hashes = store.item_hashes
    monkeypatch.setattr(store, "item_hashes", lambda ids: lookups.append(list(ids)) or item_hashes(ids))

    committed = {str(i) for i in range(100)}
    first = store.query("films", vectors[0], n=20)
    assert {m.item_id for m in first} <= committed and len(lookups[0]) == 20  # new ids asked per query
    assert {m.item_id for m in store.query("films", vectors[1], n=20)} <= committed
    assert sum(map(len, lookups)) <= 30  # the second query passed the bulk size: all committed ids read once
    lookups.clear()
    for i in range(2, 100):
        assert {m.item_id for m in store.query("films", vectors[i], n=10)} <= committed
    assert lookups and {i for ids in lookups for i in ids} <= {str(i) for i in range(100, 120)}  # only unfinished

    writer.put_items([{"id": "110", "document": "", "metadata": {"title": "110"}}])  # committed since by the other process
    assert store.query("films", vectors[110], n=1)[0].item_id == "110"
    assert "111" not in {m.item_id for m in store.query("films", vectors[111], n=5)}  # unfinished: never shown

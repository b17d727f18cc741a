"""The ``meta`` modality: hashed item metadata (prism/fusion/metadata.py)."""

import numpy as np

from prism.fusion.metadata import META_DIM, metadata_tokens, metadata_vector


def test_tokens_cover_lists_strings_numbers_and_booleans_and_skip_bookkeeping():
    tokens = metadata_tokens({"genres": ["Comedy", " Drama "], "year": 1995, "rating": 7.5, "color": False,
                              "director": "John Lasseter", "title": "Toy Story", "content_hash": "ab", "n_images": 1,
                              "empty": ""})
    assert tokens == ["color=false", "director=john lasseter", "genres=comedy", "genres=drama", "rating=0s",
                      "year=1990s"]


def test_vector_is_unit_stable_and_shared_tokens_make_items_similar():
    toy = {"genres": ["Animation", "Comedy"], "year": 1995, "director": ["John Lasseter"]}
    bug = {"genres": ["Animation", "Comedy"], "year": 1998, "director": ["John Lasseter"]}
    noir = {"genres": ["Film-Noir", "Thriller"], "year": 1944, "director": ["Billy Wilder"]}
    a, b, c = metadata_vector(toy), metadata_vector(bug), metadata_vector(noir)
    assert a.shape == (META_DIM,) and a.dtype == np.float32
    assert np.isclose(np.linalg.norm(a), 1.0)
    np.testing.assert_array_equal(a, metadata_vector(dict(reversed(list(toy.items())))))  # key order is irrelevant
    assert a @ b > 0.5 > abs(a @ c)


def test_no_metadata_is_the_zero_vector():
    assert not metadata_vector({"title": "Only a title"}).any()
    assert not metadata_vector({}).any()

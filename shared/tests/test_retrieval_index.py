"""Tests for shared.retrieval.index.DenseIndex: hand-checked flat search, IVF, ids, save/load and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from shared.retrieval.index import DenseIndex, DenseIndexError

# Four hand vectors in 3-d with document ids; query (1, 0.5, 0) has inner products 1, 0.5, 0, 0.75.
VECTORS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=np.float32)
IDS = ["d1", "d2", "d3", "d4"]
QUERY = np.array([[1.0, 0.5, 0.0]], dtype=np.float32)


def flat_index(metric: str = "ip") -> DenseIndex:
    index = DenseIndex(3, kind="flat", metric=metric, use_gpu=False)
    index.add(VECTORS, IDS)
    return index


def test_flat_inner_product_hand_values() -> None:
    scores, ids = flat_index().search(QUERY, 3)
    assert ids == [["d1", "d4", "d2"]]
    assert np.allclose(scores, [[1.0, 0.75, 0.5]])


def test_flat_l2_scores_are_negative_squared_distances() -> None:
    scores, ids = flat_index("l2").search(QUERY, 2)
    # squared distances: d1 0.25, d4 0.25+0=0.25 ((0.5)^2+0^2), d2 1+0.25=1.25, d3 1+0.25+1=2.25
    assert set(ids[0]) == {"d1", "d4"}
    assert np.allclose(scores, [[-0.25, -0.25]])
    scores, ids = flat_index("l2").search(np.array([[0.0, 1.0, 0.0]], np.float32), 1)
    assert ids == [["d2"]] and np.allclose(scores, [[0.0]])


def test_k_larger_than_index_is_clipped_and_default_ids_are_rows() -> None:
    index = DenseIndex(3, use_gpu=False)
    index.add(VECTORS[:2])
    scores, ids = index.search(QUERY, 10)
    assert ids == [[0, 1]] and scores.shape == (1, 2) and len(index) == 2


def test_ivf_finds_exact_neighbours_when_probing_all_lists() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((400, 8)).astype(np.float32)
    index = DenseIndex(8, kind="ivf", nlist=4, nprobe=4, use_gpu=False)
    index.add(data, [f"v{i}" for i in range(400)])
    queries = data[:5] + 0.01
    _, ids = index.search(queries, 1)
    exact = np.argmax(queries @ data.T, axis=1)
    assert ids == [[f"v{i}"] for i in exact]
    index.set_nprobe(1)
    assert index.nprobe == 1 and len(index.search(queries, 1)[1]) == 5
    with pytest.raises(DenseIndexError, match="nprobe must be >= 1"):
        index.set_nprobe(0)
    with pytest.raises(DenseIndexError, match="only applies to kind='ivf'"):
        flat_index().set_nprobe(2)


def test_ivf_with_too_few_vectors_is_a_clear_error() -> None:
    index = DenseIndex(3, kind="ivf", nlist=16, use_gpu=False)
    with pytest.raises(DenseIndexError, match="nlist=16 needs at least 16 training vectors, got 4"):
        index.add(VECTORS, IDS)


def test_save_load_round_trip(tmp_path) -> None:
    index = flat_index()
    index.save(tmp_path / "idx")
    loaded = DenseIndex.load(tmp_path / "idx", use_gpu=False)
    assert len(loaded) == 4 and loaded.ids == IDS
    assert loaded.search(QUERY, 2)[1] == [["d1", "d4"]]


def test_load_missing_and_mismatched_files(tmp_path) -> None:
    with pytest.raises(DenseIndexError, match="index_meta.json"):
        DenseIndex.load(tmp_path / "nothing")
    out = flat_index().save(tmp_path / "idx")
    (out / "index_meta.json").write_text(
        '{"dim": 3, "kind": "flat", "metric": "ip", "nlist": 1, "nprobe": 1, "ids": ["only-one"]}'
    )
    with pytest.raises(DenseIndexError, match="holds 4 vectors"):
        DenseIndex.load(out, use_gpu=False)


def test_bad_inputs_are_named() -> None:
    index = DenseIndex(3, use_gpu=False)
    with pytest.raises(DenseIndexError, match="empty index"):
        index.search(QUERY, 1)
    with pytest.raises(DenseIndexError, match=r"shape \[n, 3\]"):
        index.add(np.zeros((2, 4), np.float32))
    with pytest.raises(DenseIndexError, match="2 vectors but 1 ids"):
        index.add(VECTORS[:2], ["x"])
    with pytest.raises(DenseIndexError, match="row 1 contains NaN"):
        index.add(np.array([[0, 0, 0], [np.nan, 0, 0]], np.float32))
    with pytest.raises(DenseIndexError, match="kind must be one of"):
        DenseIndex(3, kind="hnsw")
    index.add(VECTORS)
    with pytest.raises(DenseIndexError, match="k must be >= 1"):
        index.search(QUERY, 0)


def test_use_gpu_true_without_gpu_is_a_clear_error() -> None:
    from shared.retrieval.index import faiss_gpu_available

    if faiss_gpu_available():
        pytest.skip("a faiss GPU is present")
    with pytest.raises(DenseIndexError, match="no GPU support or sees no GPU"):
        DenseIndex(3, use_gpu=True)


@pytest.mark.gpu
def test_gpu_index_matches_cpu(tmp_path) -> None:
    from shared.retrieval.index import faiss_gpu_available

    if not faiss_gpu_available():
        pytest.skip("needs a faiss GPU build and a GPU")
    rng = np.random.default_rng(1)
    data = rng.standard_normal((2000, 16)).astype(np.float32)
    for kind in ("flat", "ivf"):
        cpu = DenseIndex(16, kind=kind, nlist=8, nprobe=8, use_gpu=False)
        gpu = DenseIndex(16, kind=kind, nlist=8, nprobe=8, use_gpu=True)
        cpu.add(data)
        gpu.add(data)
        assert gpu.search(data[:10], 5)[1] == cpu.search(data[:10], 5)[1]
    reloaded = DenseIndex.load(gpu.save(tmp_path / "gpu"), use_gpu=True)
    assert reloaded.on_gpu and reloaded.search(data[:3], 2)[1] == cpu.search(data[:3], 2)[1]

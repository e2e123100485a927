"""Dense vector index over faiss (flat or IVF, inner product or L2), GPU when present, with document ids.

Scores are always "higher is better": inner products for metric="ip" and negative squared L2 distances for
metric="l2", so callers can rank the same way whichever metric built the index. faiss is imported lazily so
the rest of `shared` works without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

KINDS = ("flat", "ivf")
METRICS = ("ip", "l2")
INDEX_FILE = "index.faiss"
META_FILE = "index_meta.json"


class DenseIndexError(RuntimeError):
    """Misuse of a DenseIndex (wrong shapes, too few vectors for IVF, corrupt saved index)."""


def import_faiss():
    """Import faiss with an install hint when it is missing."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "faiss is not installed: run `uv sync` (CPU group: faiss-cpu) or "
            "`uv sync --no-group cpu --group gpu` (faiss-gpu)"
        ) from err
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss is a GPU build and sees at least one GPU."""
    faiss = import_faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _as_matrix(vectors, dim: int, what: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1 and array.size == dim:
        array = array.reshape(1, dim)
    if array.ndim != 2 or array.shape[1] != dim:
        raise DenseIndexError(f"{what} must have shape [n, {dim}], got {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0][0])
        raise DenseIndexError(f"{what} row {bad} contains NaN or inf")
    return np.ascontiguousarray(array)


class DenseIndex:
    """faiss index whose search returns document ids (any hashable) instead of faiss row numbers."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        nlist: int = 100,
        nprobe: int = 8,
        metric: str = "ip",
        use_gpu: bool | str = "auto",
    ) -> None:
        if kind not in KINDS:
            raise DenseIndexError(f"kind must be one of {KINDS}, got {kind!r}")
        if metric not in METRICS:
            raise DenseIndexError(f"metric must be one of {METRICS}, got {metric!r}")
        if dim < 1 or nlist < 1 or nprobe < 1:
            raise DenseIndexError(f"dim, nlist and nprobe must be >= 1, got {dim}, {nlist}, {nprobe}")
        self.dim, self.kind, self.metric = int(dim), kind, metric
        self.nlist, self.nprobe = int(nlist), int(nprobe)
        self.ids: list[Hashable] = []
        faiss = import_faiss()
        self.on_gpu = faiss_gpu_available() if use_gpu == "auto" else bool(use_gpu)
        if self.on_gpu and not faiss_gpu_available():
            raise DenseIndexError("use_gpu=True but faiss has no GPU support or sees no GPU")
        self._index = self._place(self._build_cpu(faiss))

    def _build_cpu(self, faiss):
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        if self.kind == "flat":
            return faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        quantizer = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss_metric)
        index.nprobe = self.nprobe
        return index

    def _place(self, cpu_index):
        if not self.on_gpu:
            return cpu_index
        faiss = import_faiss()
        self._gpu_resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)
        if self.kind == "ivf":
            self._apply_nprobe(index)
        return index

    def _apply_nprobe(self, index) -> None:
        if self.on_gpu:
            # GPU IVF indexes take search parameters through GpuParameterSpace.
            import_faiss().GpuParameterSpace().set_index_parameter(index, "nprobe", self.nprobe)
        else:
            index.nprobe = self.nprobe

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def set_nprobe(self, nprobe: int) -> None:
        """Change how many IVF lists each query probes (more: higher recall, slower search)."""
        if self.kind != "ivf":
            raise DenseIndexError("nprobe only applies to kind='ivf'")
        if nprobe < 1:
            raise DenseIndexError(f"nprobe must be >= 1, got {nprobe}")
        self.nprobe = int(nprobe)
        self._apply_nprobe(self._index)

    def train(self, vectors) -> None:
        """Train IVF centroids; needs at least nlist vectors (faiss wants ~39 per list for good clusters)."""
        matrix = _as_matrix(vectors, self.dim, "training vectors")
        if self.kind == "flat":
            return
        if matrix.shape[0] < self.nlist:
            raise DenseIndexError(
                f"IVF index with nlist={self.nlist} needs at least {self.nlist} training vectors, got "
                f"{matrix.shape[0]}; lower nlist or use kind='flat'"
            )
        self._index.train(matrix)

    def add(self, vectors, ids: Sequence[Hashable] | None = None) -> None:
        """Add vectors with their document ids (default: running row numbers); trains an untrained IVF first."""
        matrix = _as_matrix(vectors, self.dim, "vectors")
        if ids is None:
            ids = list(range(len(self.ids), len(self.ids) + matrix.shape[0]))
        ids = list(ids)
        if len(ids) != matrix.shape[0]:
            raise DenseIndexError(f"got {matrix.shape[0]} vectors but {len(ids)} ids")
        if matrix.shape[0] == 0:
            return
        if not self.is_trained:
            self.train(matrix)
        self._index.add(matrix)
        self.ids.extend(ids)

    def search_rows(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw search: (scores [n, k], faiss row numbers [n, k]) with -1 rows where IVF found fewer than k."""
        if k < 1:
            raise DenseIndexError(f"k must be >= 1, got {k}")
        matrix = _as_matrix(queries, self.dim, "queries")
        if len(self) == 0:
            raise DenseIndexError("search on an empty index; add vectors first")
        k = min(k, len(self))
        if matrix.shape[0] == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        scores, rows = self._index.search(matrix, k)
        if self.metric == "l2":
            scores = -scores
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        return scores, rows

    def search(self, queries, k: int) -> tuple[np.ndarray, list[list[Hashable]]]:
        """Top-k per query: (scores [n, min(k, len)], document ids per query, best first).

        Slots IVF could not fill (too few vectors in the probed lists) are left out of the id lists and have
        score -inf in the score matrix.
        """
        scores, rows = self.search_rows(queries, k)
        ids = [[self.ids[r] for r in row if r >= 0] for row in rows]
        return scores, ids

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the faiss index and the id list/settings to out_dir (atomically per file)."""
        faiss = import_faiss()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cpu_index = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        tmp = out / (INDEX_FILE + ".tmp")
        faiss.write_index(cpu_index, str(tmp))
        os.replace(tmp, out / INDEX_FILE)
        meta = {
            "dim": self.dim,
            "kind": self.kind,
            "metric": self.metric,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "ids": self.ids,
        }
        tmp = out / (META_FILE + ".tmp")
        try:
            tmp.write_text(json.dumps(meta))
        except TypeError as err:
            raise DenseIndexError(f"document ids must be JSON-serialisable to save the index: {err}") from err
        os.replace(tmp, out / META_FILE)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, use_gpu: bool | str = "auto") -> DenseIndex:
        """Load an index written by `save`."""
        folder = Path(path)
        meta_file, index_file = folder / META_FILE, folder / INDEX_FILE
        for needed in (meta_file, index_file):
            if not needed.exists():
                raise DenseIndexError(f"saved index file missing: {needed}")
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as err:
            raise DenseIndexError(f"{meta_file}: not valid JSON ({err})") from err
        for field in ("dim", "kind", "metric", "nlist", "nprobe", "ids"):
            if field not in meta:
                raise DenseIndexError(f"{meta_file}: missing field {field!r}")
        index = cls(meta["dim"], meta["kind"], meta["nlist"], meta["nprobe"], meta["metric"], use_gpu)
        faiss = import_faiss()
        cpu_index = faiss.read_index(str(index_file))
        if cpu_index.d != index.dim or cpu_index.ntotal != len(meta["ids"]):
            raise DenseIndexError(
                f"{index_file}: holds {cpu_index.ntotal} vectors of dim {cpu_index.d}, but {meta_file} lists "
                f"{len(meta['ids'])} ids of dim {index.dim}"
            )
        if index.kind == "ivf":
            faiss.extract_index_ivf(cpu_index).nprobe = index.nprobe
        index._index = index._place(cpu_index)
        index.ids = list(meta["ids"])
        return index

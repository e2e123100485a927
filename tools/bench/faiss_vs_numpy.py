"""Benchmark: faiss (flat and IVF) vs numpy brute-force top-k search, plus MiniLM encode throughput.

Measures, in one run on the same random data, how much the faiss indexes of `shared.retrieval.DenseIndex`
save over a plain numpy matrix product + argpartition, checks that the flat index returns the same neighbours
as numpy, reports IVF recall against the exact answer, and times the offline MiniLM encoder in passages/s.

    uv run python tools/bench/faiss_vs_numpy.py            # 100k x 384-d, 1000 queries, k=10
    uv run python tools/bench/faiss_vs_numpy.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def numpy_topk(corpus: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k by brute force, chunked over queries to bound memory."""
    all_scores, all_ids = [], []
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ corpus.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1)
        all_ids.append(np.take_along_axis(part, order, axis=1))
        all_scores.append(np.take_along_axis(part_scores, order, axis=1))
    return np.concatenate(all_scores), np.concatenate(all_ids)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k ids that `found` also returns."""
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_search(args: argparse.Namespace) -> dict:
    from shared.retrieval.index import DenseIndex

    rng = np.random.default_rng(args.seed)
    if args.data == "clustered":
        # Mixture of Gaussians: closer to real embeddings, which IVF's k-means lists exploit.
        centers = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
        corpus = centers[rng.integers(args.clusters, size=args.n)]
        corpus += 0.5 * rng.standard_normal((args.n, args.dim), dtype=np.float32)
        queries = centers[rng.integers(args.clusters, size=args.queries)]
        queries += 0.5 * rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    else:
        # Isotropic noise has no cluster structure: the worst case for IVF recall.
        corpus = rng.standard_normal((args.n, args.dim), dtype=np.float32)
        queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    numpy_s, (np_scores, np_ids) = timed(numpy_topk, corpus, queries, args.k)

    flat = DenseIndex(args.dim, kind="flat", use_gpu=args.gpu)
    flat_add_s, _ = timed(flat.add, corpus)
    flat_s, (flat_scores, flat_rows) = timed(flat.search_rows, queries, args.k)
    agree = recall(flat_rows, np_ids)
    if agree < 0.999 or not np.allclose(flat_scores, np_scores, atol=1e-4):
        raise SystemExit(f"flat faiss disagrees with numpy: id agreement {agree:.4f}")

    ivf = DenseIndex(args.dim, kind="ivf", nlist=args.nlist, nprobe=args.nprobe[0], use_gpu=args.gpu)
    ivf_build_s, _ = timed(ivf.add, corpus)
    ivf_runs = []
    for nprobe in args.nprobe:
        ivf.set_nprobe(nprobe)
        ivf_s, (_, ivf_rows) = timed(ivf.search_rows, queries, args.k)
        ivf_runs.append(
            {
                "nprobe": nprobe,
                "search_s": ivf_s,
                "speedup_vs_numpy": numpy_s / ivf_s,
                "speedup_vs_flat": flat_s / ivf_s,
                "recall_at_k": recall(ivf_rows, np_ids),
            }
        )
    return {
        "n": args.n,
        "data": args.data,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "faiss_on_gpu": flat.on_gpu,
        "numpy_search_s": numpy_s,
        "flat_add_s": flat_add_s,
        "flat_search_s": flat_s,
        "flat_speedup_vs_numpy": numpy_s / flat_s,
        "flat_id_agreement_with_numpy": agree,
        "ivf_nlist": args.nlist,
        "ivf_train_add_s": ivf_build_s,
        "ivf": ivf_runs,
    }


def bench_encoder(args: argparse.Namespace) -> dict:
    from shared.retrieval.encoders import TextEncoder

    rng = np.random.default_rng(args.seed)
    words = "retrieval dense passage query index vector model language search answer question city river".split()
    passages = [" ".join(rng.choice(words, size=args.passage_words)) for _ in range(args.encode_n)]
    encoder = TextEncoder(None, device="cpu", batch_size=args.encode_batch)
    encoder.encode_passages(passages[: args.encode_batch])  # warm-up
    seconds, vectors = timed(encoder.encode_passages, passages)
    return {
        "encoder": "all-MiniLM-L6-v2 (offline)",
        "passages": len(passages),
        "words_per_passage": args.passage_words,
        "batch_size": args.encode_batch,
        "encode_s": seconds,
        "passages_per_s": len(passages) / seconds,
        "embedding_shape": list(vectors.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="faiss flat/IVF vs numpy brute-force search, and MiniLM encode speed")
    parser.add_argument("--n", type=int, default=100_000, help="corpus vectors")
    parser.add_argument("--dim", type=int, default=384, help="vector width (MiniLM is 384)")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors")
    parser.add_argument(
        "--data",
        choices=("random", "clustered"),
        default="random",
        help="isotropic Gaussian vectors, or a Gaussian mixture (see --clusters)",
    )
    parser.add_argument("--clusters", type=int, default=1000, help="mixture components for --data clustered")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--nlist", type=int, default=256, help="IVF lists")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64], help="IVF lists probed per query (a sweep)")
    parser.add_argument("--gpu", default="auto", choices=("auto", "true", "false"), help="faiss on GPU")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for numpy/faiss/torch")
    parser.add_argument("--encode-n", type=int, default=512, help="passages to encode (0 skips the encoder part)")
    parser.add_argument("--encode-batch", type=int, default=64, help="encoder batch size")
    parser.add_argument("--passage-words", type=int, default=100, help="words per synthetic passage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    args.gpu = {"auto": "auto", "true": True, "false": False}[args.gpu]

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    report = {"threads": args.threads, "search": bench_search(args)}
    s = report["search"]
    print(
        f"search: {s['n']} x {s['dim']}-d {s['data']} vectors, {s['queries']} queries, k={s['k']}, "
        f"{args.threads} threads, faiss on GPU: {s['faiss_on_gpu']}"
    )
    print(f"  numpy brute force : {s['numpy_search_s']:.3f} s")
    print(
        f"  faiss flat        : {s['flat_search_s']:.3f} s  ({s['flat_speedup_vs_numpy']:.2f}x numpy; "
        f"ids agree with numpy: {s['flat_id_agreement_with_numpy']:.4f}; add {s['flat_add_s']:.3f} s)"
    )
    print(f"  faiss IVF{s['ivf_nlist']} train+add: {s['ivf_train_add_s']:.2f} s")
    for run in s["ivf"]:
        print(
            f"  faiss IVF{s['ivf_nlist']},nprobe={run['nprobe']}: {run['search_s']:.3f} s  "
            f"({run['speedup_vs_numpy']:.2f}x numpy, {run['speedup_vs_flat']:.2f}x flat; "
            f"recall@{s['k']} vs exact {run['recall_at_k']:.3f})"
        )
    if args.encode_n > 0:
        report["encoder"] = e = bench_encoder(args)
        print(
            f"encoder: {e['encoder']}, {e['passages']} passages of {e['words_per_passage']} words, "
            f"batch {e['batch_size']}: {e['encode_s']:.2f} s = {e['passages_per_s']:.1f} passages/s"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()

"""Benchmark: the Search-R1 search service under concurrent load, and across a kill-and-restart.

Starts `python -m shared.retrieval.service` (BM25) on a loopback port over a seeded synthetic corpus, then
runs phases of N concurrent clients (threads sharing the default `SearchClient`, one connection each), each
client sending --requests one-query requests.
Every answer is compared with the same search done in this process (ids and scores), and each phase prints
requests/s, p50/p99 latency, errors and wrong answers. The last phase SIGKILLs the server while clients are
busy, starts it again on the same port, and counts requests lost (a client call that raised). Loopback only;
bounded by a request count per phase and a wall-clock cap (--max-seconds; requests not sent by then are
reported as missing from "answered").

    uv run python tools/bench/search_service_load.py                # 16 and 64 clients x 2,000, then the restart
    uv run python tools/bench/search_service_load.py --requests 100 --clients 4,8 --max-seconds 60
    uv run python tools/bench/search_service_load.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from shared.retrieval.retriever import Retriever
from shared.retrieval.service import SearchClient, SearchServiceError


def make_corpus(n_docs: int, seed: int) -> tuple[list[dict], list[str]]:
    """Synthetic documents over a Zipf-ish vocabulary, and queries of 2-4 words taken from the documents."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(4000)})
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    docs = []
    for i in range(n_docs):
        words = rng.choices(vocab, weights=weights, k=rng.randint(20, 60))
        docs.append({"id": f"d{i}", "contents": " ".join(words)})
    queries = []
    for _ in range(1000):
        source = rng.choice(docs)["contents"].split()
        queries.append(" ".join(rng.sample(source, k=min(len(source), rng.randint(2, 4)))))
    return docs, queries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(corpus: Path, port: int, topk: int, timeout_s: float = 300.0) -> tuple[subprocess.Popen, float]:
    """Launch the service CLI and wait for its "serving" line; returns the process and its start-up seconds."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.retrieval.service", "--corpus", str(corpus), "--port", str(port),
         "--topk", str(topk)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ready = threading.Event()

    def watch() -> None:
        for line in proc.stdout:
            if line.startswith("serving"):
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    if not ready.wait(timeout_s):
        proc.kill()
        raise SystemExit(f"error: the search service did not start within {timeout_s:.0f} s: {proc.stderr.read()}")
    return proc, time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_phase(url: str, clients: int, requests: int, queries: list[str], expected: list[list[tuple]],
              topk: int, deadline: float, during=None) -> dict:
    """`clients` threads share `requests` one-query requests; `during(done_count)` may act mid-phase."""
    client = SearchClient(url)  # the default client: one keep-alive connection per thread, 60 s retry budget
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "errors": 0, "wrong": 0, "error_kinds": {}}
    latencies: list[float] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            with lock:
                if state["next"] >= requests or time.monotonic() > deadline:
                    return
                state["next"] += 1
            qi = rng.randrange(len(queries))
            t0 = time.perf_counter()
            try:
                hits = client.retrieve([queries[qi]], topk=topk)[0]
            except (SearchServiceError, OSError) as err:
                with lock:
                    state["errors"] += 1
                    kind = type(err).__name__
                    state["error_kinds"][kind] = state["error_kinds"].get(kind, 0) + 1
                continue
            elapsed = time.perf_counter() - t0
            got = [(h["document"]["id"], round(h["score"], 4)) for h in hits]
            with lock:
                latencies.append(elapsed)
                state["done"] += 1
                if got != expected[qi]:
                    state["wrong"] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    extra = during(lambda: state["done"]) if during else {}
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients, "requests": state["next"], "answered": state["done"], "seconds": round(wall, 2),
        "req_per_s": round(state["done"] / wall, 1), "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1), "errors": state["errors"],
        "error_kinds": state["error_kinds"], "wrong": state["wrong"], **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000, help="synthetic corpus size")
    parser.add_argument("--clients", default="16,64", help="comma-separated concurrent client counts")
    parser.add_argument("--requests", type=int, default=2000, help="requests per client in each phase")
    parser.add_argument("--restart-clients", type=int, default=16, help="clients during the kill-and-restart")
    parser.add_argument("--restart-requests", type=int, default=500,
                        help="requests per client in the kill-and-restart phase")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900, help="wall-clock cap for all phases together")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if not client_counts or min(client_counts + [args.requests, args.docs, args.restart_clients]) < 1:
        parser.error("--clients, --requests, --docs and --restart-clients must be positive")
    deadline = time.monotonic() + args.max_seconds
    load_start = os.getloadavg()

    docs, queries = make_corpus(args.docs, args.seed)
    reference = Retriever("bm25", docs)
    expected = [[(h["id"], round(h["score"], 4)) for h in hits] for hits in reference.retrieve(queries, args.topk)]
    work = Path(tempfile.mkdtemp(prefix="search-load-"))
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server, startup = start_server(corpus, port, args.topk)
    print(f"corpus {len(docs)} docs, {len(queries)} distinct queries, topk {args.topk}; server pid {server.pid} "
          f"started in {startup:.1f} s; load average at start {load_start[0]:.2f}", flush=True)
    rows = []
    try:
        for clients in client_counts:
            row = run_phase(url, clients, clients * args.requests, queries, expected, args.topk, deadline)
            rows.append({"phase": f"{clients} clients", **row})
            print(json.dumps(rows[-1]), flush=True)

        holder = {"server": server}

        def kill_and_restart(done) -> dict:
            target = max(1, args.restart_clients * args.restart_requests // 4)
            while done() < target and time.monotonic() < deadline:
                time.sleep(0.01)
            killed_at = time.perf_counter()
            holder["server"].send_signal(signal.SIGKILL)
            holder["server"].wait()
            holder["server"], _ = start_server(corpus, port, args.topk)
            return {"killed_after_answers": done(), "restart_s": round(time.perf_counter() - killed_at, 2)}

        row = run_phase(url, args.restart_clients, args.restart_clients * args.restart_requests, queries, expected,
                        args.topk, deadline, during=kill_and_restart)
        row["lost"] = row["errors"]
        rows.append({"phase": "kill-and-restart", **row})
        print(json.dumps(rows[-1]), flush=True)
        server = holder["server"]
    finally:
        server.kill()
        server.wait()
    load_end = os.getloadavg()
    print(f"\nload average at end {load_end[0]:.2f} (1 min), {load_end[1]:.2f} (5 min); {os.cpu_count()} CPUs")
    print(f"{'phase':<18}{'clients':>8}{'answered':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'wrong':>7}{'lost':>6}")
    for row in rows:
        print(f"{row['phase']:<18}{row['clients']:>8}{row['answered']:>10}{row['req_per_s']:>9}{row['p50_ms']:>9}"
              f"{row['p99_ms']:>9}{row['errors']:>8}{row['wrong']:>7}{row.get('lost', '-'):>6}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load_start": load_start, "load_end": load_end}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

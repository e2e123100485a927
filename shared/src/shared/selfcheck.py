"""Self-check of the shared core: one short pass through every module, printing a report.

Builds a tiny Qwen2 and saves/reloads it, generates with the HF backend, scores QA and math answers, retrieves
with BM25 and the offline MiniLM through the Search-R1 service, runs code in the sandbox (including one run that
must be stopped), computes retrieval metrics and writes a results.json. Each step prints OK or FAIL with its
figure; the exit status is the number of failed steps. Run: `uv run shared-selfcheck [--out DIR]`
(the MiniLM half of the retrieval step runs when the core's `minilm` extra is installed).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

DOCS = [
    {"id": "d1", "contents": "Paris\nParis is the capital and largest city of France."},
    {"id": "d2", "contents": "Berlin\nBerlin is the capital of Germany and its largest city."},
    {"id": "d3", "contents": "Photosynthesis\nPlants turn light, water and carbon dioxide into sugar."},
    {"id": "d4", "contents": "Mount Everest\nEverest is Earth's highest mountain above sea level."},
]
QUERIES = {"q1": "What is the capital of France?", "q2": "Which is the highest mountain on Earth?"}
QRELS = {"q1": {"d1": 1}, "q2": {"d4": 1}}


def check_model_and_generation(work: Path) -> str:
    import torch

    from shared.generation import HFGenerator, SamplingParams
    from shared.modeling import load_model
    from shared.modeling.tiny import tiny_causal_lm

    path = tiny_causal_lm(work / "tiny-qwen2", arch="qwen2", seed=0)
    model, tokenizer = load_model(str(path), kind="causal", device="cpu")
    params = sum(p.numel() for p in model.parameters())
    gen = HFGenerator(model, tokenizer, batch_size=8)
    prompts = [f"Q: {a}+{b}=?\nA: " for a, b in [(12, 3), (40, 7), (5, 5), (31, 8)]]
    start = time.perf_counter()
    out = gen.generate(prompts, SamplingParams(max_new_tokens=32, temperature=1.0, n=2, seed=0, logprobs=True))
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for group in out for c in group)
    assert len(out) == 4 and all(len(group) == 2 for group in out)
    first = out[0][0]
    # the generator's logprobs must equal a training forward pass over the same ids
    ids = torch.tensor([tokenizer(prompts[0])["input_ids"] + first.token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float().log_softmax(-1)
    n_prompt = ids.shape[1] - len(first.token_ids)
    ref = logits[n_prompt - 1:].gather(-1, ids[0, n_prompt:, None])[:, 0]
    gap = (ref - torch.tensor(first.logprobs)).abs().max().item()
    assert gap < 1e-4, f"generation logprobs differ from the forward pass by {gap}"
    return f"tiny qwen2 {params / 1e6:.2f}M params reloaded; {tokens} tokens in {seconds:.2f}s; logprob gap {gap:.1e}"


def check_rewards() -> str:
    from shared.rewards import exact_match, f1_score, math_reward

    assert exact_match("The Eiffel Tower", ["eiffel tower"]) == 1.0
    f1 = f1_score("the capital city of France", ["Paris, capital of France"])
    assert abs(f1 - 0.75) < 1e-9, f1  # tokens {capital, city, of, france} vs {paris, capital, of, france}: P=R=3/4
    assert math_reward("so 43+9=52. \\boxed{52}", "52") == 1.0
    assert math_reward("\\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert math_reward("no box here 52", "52") == 0.0
    return f"EM, F1 ({f1:.2f} on a hand example), boxed and fraction answers"


def check_retrieval_and_service() -> str:
    from shared.eval import retrieval_metrics
    from shared.retrieval import Retriever, SearchClient, SearchServer, TextEncoder

    figures = []
    from shared.cli import minilm_available

    backends = [("bm25", "bm25")] + ([("minilm", TextEncoder())] if minilm_available() else [])
    for name, backend in backends:
        retriever = Retriever(backend, DOCS)
        with SearchServer(retriever) as server:
            hits = SearchClient(server.url).retrieve(list(QUERIES.values()), topk=2, return_scores=True)
        run = {qid: {h["document"]["id"]: h["score"] for h in hs} for qid, hs in zip(QUERIES, hits)}
        metrics = retrieval_metrics(run, QRELS, ks=(1,))
        assert metrics["recall@1"] == 1.0, (name, run)
        figures.append(f"{name} R@1 {metrics['recall@1']:.2f}")
    return "; ".join(figures) + " over the Search-R1 service on loopback"


def check_sandbox() -> str:
    from shared.sandbox import call_function, run_python

    ok = run_python("print(sum(range(10)))", timeout_s=5)
    assert ok.status == "ok" and ok.stdout.strip() == "45", ok
    loop = run_python("while True:\n    pass", timeout_s=1)
    assert loop.status == "timeout", loop
    net = run_python("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", timeout_s=5)
    assert net.status == "error", net
    value = call_function("def add(a, b):\n    return a + b", "add", {"a": 2, "b": 3})
    assert value == 5
    return "ok run, infinite loop stopped (timeout), socket refused, tool call returned 5"


def check_results(out: Path) -> str:
    from shared.eval import read_results, write_results

    path = write_results(
        out, package="shared", version=__import__("shared").__version__, experiment="selfcheck",
        rows=[{"method": "selfcheck", "metrics": {"passed": 1.0}}], config={"steps": 5}, seed=0, quick=True,
        data={"name": "inline", "sha256": "0" * 64}, started=dt.datetime.now(dt.UTC), seconds=0.0,
    )
    doc = read_results(path)
    return f"results.json written and validated (git {doc['git'][:8]})"


def _selfcheck(run) -> int:
    import torch

    from shared.cli import minilm_available

    torch.set_num_threads(1)  # tiny models: one thread is fastest, and stays fast when the machine is busy
    work = run.out or Path(tempfile.mkdtemp(prefix="shared-selfcheck-"))
    work.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("modeling + generation", lambda: check_model_and_generation(work)),
        ("rewards", check_rewards),
        ("retrieval + search service", check_retrieval_and_service),
        ("sandbox", check_sandbox),
        ("results writer", lambda: check_results(work)),
    ]
    if not minilm_available():  # the dense half of the retrieval step needs the core's minilm extra
        print("note: the offline MiniLM is not installed (extra shared[minilm]); retrieval checks BM25 only")
    failed = 0
    start = time.perf_counter()
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            detail = step()
            print(f"OK   {name:<28} {time.perf_counter() - t0:5.1f}s  {detail}")
        except Exception as exc:  # report every step, then fail with the count
            failed += 1
            print(f"FAIL {name:<28} {time.perf_counter() - t0:5.1f}s  {type(exc).__name__}: {exc}")
            if run.debug:
                traceback.print_exc(limit=3)
    print(f"selfcheck: {len(steps) - failed}/{len(steps)} steps OK in {time.perf_counter() - start:.1f}s ({work})")
    return failed


def main(argv: list[str] | None = None) -> int:
    from shared import __version__
    from shared.cli import App, Verb

    app = App(prog="shared-selfcheck", version=__version__, description=__doc__.splitlines()[0],
              verbs=[Verb("", "", _selfcheck, seed=False, claim="none",
                          description=__doc__.splitlines()[0] + " --out: folder for the tiny model and results.json "
                                      "(default: a new temporary folder); --debug: tracebacks of failed steps.")])
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())

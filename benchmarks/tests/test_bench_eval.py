"""Task registry and evaluation runner: scripted generators for exact metric values, BM25 retrieval on the
synthetic collection, MMEB P@1 with oracle embeddings, and one end-to-end CLI run on a tiny random Qwen2."""

import json

import numpy as np
import pytest
from benchmarks.cli import main as bench_main
from benchmarks.evaluate import (
    EvalConfig,
    evaluate_generative,
    evaluate_mmeb,
    evaluate_retrieval,
    score_generative,
    write_eval_outputs,
)
from benchmarks.synthetic.arithmetic import solve
from benchmarks.synthetic.images import oracle_pick
from benchmarks.tasks import TASKS, get_task, load_examples, load_mmeb_items
from shared.generation import Completion


class ScriptedGenerator:
    """A Generator that answers from a function of the prompt (stands in for a model with known outputs)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def generate(self, prompts, params):
        self.calls.append(params)
        return [[Completion(text=self.answer(p), token_ids=[])] for p in prompts]


def test_registry_fields_and_examples():
    for t in TASKS.values():
        assert t.kind in ("qa", "math", "retrieval", "mmeb") and t.version and t.metrics
    ex = load_examples(get_task("arithmetic"), limit=3)
    assert len(ex) == 3 and ex[0].prompt.startswith("Q: ") and ex[0].prompt.endswith("=?\nA: ")
    hp = load_examples(get_task("hotpotqa"), limit=1)[0]
    assert '"Tinted Windows (band)"' in hp.prompt and hp.golds == ["Tulsa"]
    gsm = load_examples(get_task("gsm8k"), limit=1)[0]
    assert "\\boxed{}" in gsm.prompt and gsm.golds == ["18"]
    with pytest.raises(KeyError, match="unknown task"):
        get_task("nope")


def test_math_accuracy_through_the_runner():
    task = get_task("arithmetic")
    oracle = ScriptedGenerator(solve)
    out = evaluate_generative(task, oracle, limit=20)
    assert out.metrics == {"accuracy": 1.0}
    assert oracle.calls[0].temperature == 0.0 and oracle.calls[0].max_new_tokens == 32
    wrong = evaluate_generative(task, ScriptedGenerator(lambda p: "\\boxed{-1}"), limit=20)
    assert wrong.metrics == {"accuracy": 0.0}
    # half right: hand-computed 0.5
    half = score_generative(task, ["\\boxed{5}", "\\boxed{6}"], [["5"], ["7"]])
    assert half == {"accuracy": 0.5}


def test_qa_metrics_hand_values():
    task = get_task("nq_open")
    # EM 1/2; F1: "the eiffel tower" vs "Eiffel Tower" = 1.0, "paris france" vs "Lyon" = 0 -> 0.5;
    # sub-EM: 1/2; the first line only is scored
    scores = score_generative(task, ["the Eiffel Tower\nextra", "Paris France"], [["Eiffel Tower"], ["Lyon"]])
    assert scores == {"em": 0.5, "f1": 0.5, "sub_em": 0.5}


def test_bm25_retrieval_on_synthetic_docs():
    out = evaluate_retrieval(get_task("synthetic_docs"), "bm25", limit=40)
    assert set(out.metrics) == {"recall@1", "recall@10", "mrr@10", "ndcg@10"}
    assert out.metrics["recall@10"] >= 0.9  # every query names its document's person
    assert out.metrics["recall@1"] <= out.metrics["recall@10"]


def test_mmeb_p_at_1_with_oracle_and_constant_embeddings():
    items, image = load_mmeb_items(get_task("images_mmeb"), limit=5)

    def onehot(item):
        v = np.zeros(len(item.tgt_text), dtype=np.float32)
        v[oracle_pick(item, image)] = 1.0
        return v

    out = evaluate_mmeb(items, onehot, lambda it: np.eye(len(it.tgt_text), dtype=np.float32))
    assert out.metrics["p@1"] == 1.0
    assert set(out.metrics) == {"p@1", "p@1_classification", "p@1_vqa", "p@1_retrieval"}
    flat = evaluate_mmeb(items, lambda it: np.ones(len(it.tgt_text)), lambda it: np.eye(len(it.tgt_text)))
    assert flat.metrics["p@1"] == 0.0  # ties are not hits


def test_results_json_written_beside_config(tmp_path):
    import datetime as dt

    from shared.eval import read_results

    task = get_task("arithmetic")
    out = evaluate_generative(task, ScriptedGenerator(solve), limit=5)
    cfg = EvalConfig(task=task.name, task_version=task.version, model="oracle-model", limit=5)
    path = write_eval_outputs(tmp_path, cfg, task, out, dt.datetime.now(dt.UTC), 0.5)
    doc = read_results(path)  # validates the package-contract schema
    assert doc["rows"] == [{"method": "oracle-model", "metrics": {"accuracy": 1.0}}]
    assert (tmp_path / "config.yaml").read_text().startswith("task: arithmetic")
    assert json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])["prediction"].endswith("}")


@pytest.mark.slow
def test_eval_cli_end_to_end_on_tiny_model(tmp_path, capsys):
    from shared.modeling.tiny import cached_tiny

    model = cached_tiny("qwen2", tmp_path / "models")
    out = tmp_path / "eval"
    args = ["eval", "--task", "arithmetic", "--model", str(model), "--limit", "4", "--out", str(out),
            "--max-new-tokens", "8", "--threads", "1"]  # fmt: skip
    assert bench_main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["package"] == "benchmarks" and results["experiment"] == "eval:arithmetic@v1"
    assert 0.0 <= results["rows"][0]["metrics"]["accuracy"] <= 1.0 and results["quick"] is True
    assert (out / "config.yaml").is_file() and len((out / "predictions.jsonl").read_text().splitlines()) == 4
    assert "accuracy" in capsys.readouterr().out
    assert bench_main(["eval", "--task", "arithmetic", "--model", str(tmp_path / "missing")]) == 2

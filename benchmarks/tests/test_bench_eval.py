"""Task registry and evaluation runner: scripted generators for exact metric values, BM25 retrieval on a hand-ranked
set and the synthetic collection, a saved encoder evaluated with its own settings, MMEB P@1 with oracle embeddings
(aggregated per dataset), and one end-to-end CLI run on a tiny random Qwen2."""

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
from benchmarks.tasks import TASKS, extract_answer, get_task, load_examples, load_mmeb_items
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


def _hand_set(monkeypatch):
    """Replace the task's data by three documents and two queries whose BM25 ranking is known by hand."""
    import benchmarks.evaluate as ev
    from benchmarks.data.records import Document, RetrievalSet

    corpus = {d: Document(d, t) for d, t in [("d1", "apple banana"), ("d2", "cherry date"), ("d3", "elder fig")]}
    rs = RetrievalSet(corpus, {"q1": "banana", "q2": "cherry"}, {"q1": {"d1": 1}, "q2": {"d3": 1}})
    monkeypatch.setattr(ev, "load_retrieval_set", lambda task, limit: rs)


def test_bm25_retrieval_hand_values(monkeypatch):
    import math

    _hand_set(monkeypatch)
    out = evaluate_retrieval(get_task("synthetic_docs"), "bm25")
    # q1 "banana": d1 first (hit at 1). q2 "cherry": d2 first (not relevant); d1 and d3 tie at 0 and trec_eval
    # order breaks the tie by docid descending, so the relevant d3 is second
    assert out.metrics == pytest.approx(
        {"recall@1": 0.5, "recall@10": 1.0, "mrr@10": (1 + 1 / 2) / 2, "ndcg@10": (1 + 1 / math.log2(3)) / 2}
    )
    assert [p["ranking"][0] for p in out.predictions] == ["d1", "d2"]
    assert evaluate_retrieval(get_task("synthetic_docs"), "bm25:pyserini").metrics == out.metrics
    with pytest.raises(ValueError, match="unknown BM25 preset 'okapi'"):
        evaluate_retrieval(get_task("synthetic_docs"), "bm25:okapi")


def test_bm25_on_synthetic_docs_finds_every_document():
    # every test query names its document's person, who appears in no other document: BM25 ranks it first
    out = evaluate_retrieval(get_task("synthetic_docs"), "bm25", limit=40)
    assert out.metrics["recall@1"] == 1.0 and out.metrics["mrr@10"] == 1.0


def test_saved_encoder_is_loaded_with_its_pooling_and_prefixes(tmp_path):
    """A saved encoder folder (text_encoder.json: cls pooling, query/passage prefixes) is evaluated with those
    settings, not with TextEncoder's defaults (mean pooling, no prefixes)."""
    import torch
    from benchmarks.tasks import load_retrieval_set
    from shared.retrieval import Retriever, TextEncoder
    from transformers import BertConfig, BertModel

    minilm = TextEncoder(None, device="cpu")
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=minilm.tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, max_position_embeddings=512))  # fmt: skip
    saved = TextEncoder("tiny", pooling="cls", query_prefix="query: ", passage_prefix="passage: ", device="cpu",
                        model=bert, tokenizer=minilm.tokenizer).save(tmp_path / "enc")  # fmt: skip
    task = get_task("synthetic_docs")
    out = evaluate_retrieval(task, str(saved), limit=20)
    rs = load_retrieval_set(task, 20)
    docs = [{"id": d.id, "contents": d.contents} for d in rs.corpus.values()]

    def top10(encoder):
        hits = Retriever(encoder, docs).retrieve(list(rs.queries.values()), topk=min(100, len(docs)))
        return [[h["id"] for h in hs[:10]] for hs in hits]

    assert [p["ranking"] for p in out.predictions] == top10(TextEncoder.load(saved, device="cpu"))
    assert [p["ranking"] for p in out.predictions] != top10(TextEncoder(saved, device="cpu"))


def test_mmeb_p_at_1_with_oracle_and_constant_embeddings():
    items, image = load_mmeb_items(get_task("images_mmeb"), limit=5)

    def onehot(item):
        v = np.zeros(len(item.tgt_text), dtype=np.float32)
        v[oracle_pick(item, image)] = 1.0
        return v

    out = evaluate_mmeb(items, onehot, lambda it: np.eye(len(it.tgt_text), dtype=np.float32))
    assert out.metrics["p@1"] == 1.0
    names = {f"p@1/synthetic-test-{t}" for t in ("classification", "vqa", "t2i", "i2t")}
    assert set(out.metrics) == {"p@1", "p@1_classification", "p@1_vqa", "p@1_retrieval"} | names
    flat = evaluate_mmeb(items, lambda it: np.ones(len(it.tgt_text)), lambda it: np.eye(len(it.tgt_text)))
    assert flat.metrics["p@1"] == 0.0  # ties are not hits
    # the oracle only on classification and on text->image: datasets 1, 0, 1, 0; retrieval = (1 + 0) / 2; overall
    # over the four datasets 0.5 (over the three meta-tasks it would be 0.5 too, so check classification alone)
    half = evaluate_mmeb(
        items,
        lambda it: onehot(it) if it.dataset.endswith(("classification", "t2i")) else -onehot(it),
        lambda it: np.eye(len(it.tgt_text), dtype=np.float32),
    )
    assert half.metrics["p@1_retrieval"] == 0.5 and half.metrics["p@1_vqa"] == 0.0 and half.metrics["p@1"] == 0.5
    only_cls = evaluate_mmeb(
        items,
        lambda it: onehot(it) if it.meta_task == "classification" else -onehot(it),
        lambda it: np.eye(len(it.tgt_text), dtype=np.float32),
    )
    assert only_cls.metrics["p@1"] == 0.25  # 1 of 4 datasets; a mean over meta-tasks would give 1/3


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
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and (out / "config.yaml").is_file() and results["quick"] is True
    # the reported accuracy is the score of the saved predictions, and each prediction is the completion's answer
    task = get_task("arithmetic")
    assert [p["prediction"] for p in preds] == [extract_answer(task, p["completion"]) for p in preds]
    rescored = score_generative(task, [p["completion"] for p in preds], [p["golds"] for p in preds])
    assert results["rows"][0]["metrics"] == rescored
    assert "accuracy" in capsys.readouterr().out
    assert bench_main(["eval", "--task", "arithmetic", "--model", str(tmp_path / "missing")]) == 2

"""End to end on tiny data: `dome replicate` (two seeds) trains, edits and writes results.json with every method's
metrics as mean ± sd."""

import json

import pytest
from dome.cli import main

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def test_replicate_tiny_end_to_end(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    lines = []
    for i in range(12):
        words = [WORDS[(i * 3 + j) % len(WORDS)] + str(i) for j in range(12)]
        lines.append(json.dumps({"id": f"doc{i}", "text": " ".join(words)}))
    docs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    code = main([
        "replicate", "--out", str(out), "--seed", "1", "--seeds", "2",
        f"data.source={docs}", "data.max_docs=12", "data.train_queries=3", "data.test_queries=1",
        "docids.scheme=naive", "model.d_model=32", "model.d_ff=128", "model.layers=2", "model.heads=2",
        "model.vocab_size=300", "train.steps=30", "train.batch_size=16", "edit.steps=10", "memit.steps=10",
        "edit.top_layers=1", "edit.trace_queries=8", "protocol.initial_share=0.75", "protocol.batches=1",
        "protocol.incremental_max_steps=10", "protocol.incremental_check_every=5", "eval.beams=3",
        "protocol.new_queries=5", "protocol.weight_grid=[1000.0,10000.0]", "data.index_words=3",
        "data.query_words_min=3", "data.query_words_max=3", "data.test_queries=2", "protocol.old_dev_per_doc=1",
    ])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "config.yaml").is_file()
    for s in (1, 2):  # each seed's training on D0 as a per-step curve (the leaderboard's curves picture reads it)
        steps = [json.loads(line) for line in (out / "work" / f"seed{s}" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in steps] == list(range(1, 31)) and all(r["train/loss"] > 0 for r in steps)
    assert res["package"] == "dome" and res["experiment"] == "replicate" and res["seed"] == 1
    assert res["data"]["seeds"] == [1, 2] and set(res["data"]["per_seed"]) == {"1", "2"}
    assert [r["method"] for r in res["rows"]] == ["none", "incremental", "memit_asis", "memit", "dome"]
    for r in res["rows"]:
        assert {"recall@1_new", "recall@10_new", "mrr@10_new", "recall@1_old", "recall@10_old",
                "update_seconds", "recall@10_new_std"} <= set(r["metrics"])
    rows = {r["method"]: r["metrics"] for r in res["rows"]}
    assert rows["dome"]["update_seconds"] > 0 and rows["incremental"]["update_seconds"] > 0
    seed = res["data"]["per_seed"]["1"]
    assert len(seed["tracing_effects"]) == 2
    # 3 new documents, each with 5 pseudo-queries (protocol.new_queries) and its indexing example, for every editor
    for method in ("dome", "memit", "memit_asis"):
        assert [b["examples"] for b in seed["updates"][method]["batches"]] == [3 * (5 + 1)]
    assert seed["updates"]["incremental"]["batches"][0]["steps"] in (5, 10)
    # the editors' λ was chosen on dev spans from the grid; MEMIT as-is keeps its own λ (1e3)
    for method in ("dome", "memit"):
        curve = seed["updates"][method]["dev_curve"]
        assert [p["weight"] for p in curve] == [1e3, 1e4]
        chosen = [res["data"]["per_seed"][s]["updates"][method]["chosen"]["weight"] for s in ("1", "2")]
        assert rows[method]["c0_weight"] == pytest.approx(sum(chosen) / 2)
        seed_rows = {r["method"]: r["metrics"] for r in seed["rows"]}
        assert seed_rows[method]["c0_weight"] == chosen[0]
    assert rows["memit_asis"]["c0_weight"] == 1e3 and rows["none"]["c0_weight"] is None
    # the λ selection time is a row metric of the editors that chose λ (mean over the two seeds)
    sel = [res["data"]["per_seed"][s]["updates"]["dome"]["selection_seconds"] for s in ("1", "2")]
    assert rows["dome"]["selection_seconds"] == pytest.approx(sum(sel) / 2) and rows["dome"]["selection_seconds"] > 0
    assert rows["memit"]["selection_seconds"] > 0 and rows["incremental"]["selection_seconds"] is None
    # the test and dev spans of each seed are stored; counted here, none shares a word trigram with a training
    # input (training spans of old and new documents, indexing prefixes), and both old and new documents have some
    for s in ("1", "2"):
        stored = [json.loads(x) for x in (out / "work" / f"seed{s}" / "queries.jsonl").read_text().splitlines()]
        training = [r["text"] for r in stored if r["split"] == "train"]
        training += [" ".join(t.split()[:3]) for t in (json.loads(x)["text"] for x in lines)]
        held = [r["text"] for r in stored if r["split"] in ("test", "dev")]

        def trigrams(text):
            w = text.split()
            return {tuple(w[i : i + 3]) for i in range(len(w) - 2)}

        banned = set().union(*map(trigrams, training))
        assert held and all(len(trigrams(t)) >= 1 for t in held) and not [t for t in held if trigrams(t) & banned]
        kinds = {r["kind"] for r in stored if r["split"] == "test"}
        assert kinds == {"old", "new"}
        split = res["data"]["per_seed"][s]["split"]
        assert split["heldout"]["test_overlap_after"] == 0 and split["heldout"]["ngram"] == 3
        assert split["test_queries_new"] == sum(r["kind"] == "new" for r in stored if r["split"] == "test")
    assert "| dome |" in capsys.readouterr().out

"""End to end on a tiny random BERT: the encoder's cached path, the resumable loop, evaluation, CLI and bad input."""

import json

import numpy as np
import pytest
from agentic_r.cli import build_parser, main
from agentic_r.config import AgenticRConfig
from agentic_r.data import RecordError, read_questions
from agentic_r.encoder import EncoderSetupError, load_encoder
from agentic_r.pipeline import Pipeline
from shared.config import ConfigError, load_config
from shared.retrieval import TextEncoder


def test_cached_top_layers_match_full_forward_and_reload(tiny_bert, tmp_path):
    enc = load_encoder(tiny_bert, 1, None, tmp_path / "states.pt")
    full = load_encoder(tiny_bert, "all", None)
    texts = ["Where was Bo Ka born?", "Bo Ka was born in Xville. Bo Ka works for Lo Corp."]
    assert np.allclose(enc.encode_queries(texts), full.encode_queries(texts), atol=1e-5)
    assert len(enc.cache.states) == 2 and len(enc.trainable_parameters()) < len(full.trainable_parameters())
    emb = enc.train_embeddings(texts, "query: ")
    emb.sum().backward()
    assert all(p.grad is not None for p in enc.trainable_parameters())
    enc.cache.save()
    enc.save(tmp_path / "saved")
    again = TextEncoder.load(tmp_path / "saved", device="cpu")
    assert again.query_prefix == "query: " and again.pooling == "mean"
    assert np.allclose(again.encode_queries(texts), enc.encode_queries(texts), atol=1e-5)
    with pytest.raises(EncoderSetupError, match="train_layers"):
        load_encoder(tiny_bert, 5, None)


def _cfg(tiny_bert, **extra):
    overrides = [
        f"retriever.base_model={tiny_bert}", "retriever.train_layers=1", "data.n_train=8", "data.n_test=4",
        "data.hops=[1,2]", "train.epochs=6", "train.lr=3e-3", "train.batch_groups=4", "label.max_searches=3",
        *[f"{k}={v}" for k, v in extra.items()],
    ]  # fmt: skip
    return load_config(AgenticRConfig, None, overrides)


def test_loop_runs_resumes_and_evaluates(tiny_bert, tmp_path):
    pipe = Pipeline(_cfg(tiny_bert, rounds=2), tmp_path, progress=False)
    pipe.iterate()
    for r in (0, 1):
        folder = tmp_path / f"round{r}"
        for name in ("rollouts", "candidates", "subanswers", "local", "labelled", "groups"):
            assert (folder / f"{name}.jsonl").exists(), name
        assert (folder / "retriever/encoder/text_encoder.json").exists()
        assert (folder / "retriever/index/index.faiss").exists()
    stats = json.loads((tmp_path / "round0/stats.json").read_text())
    assert stats["label"]["group_ok"] > 0 and stats["label"]["agent"] == "kb-reader-agent (deterministic)"
    assert stats["train"]["loss_last_epoch"] < stats["train"]["loss_first_epoch"]  # the retriever learns
    curve = [json.loads(x) for x in (tmp_path / "round0/retriever/metrics.jsonl").read_text().splitlines()]
    assert len(curve) == stats["train"]["steps"] and "losses" not in stats["train"]  # per step, not in stats.json
    assert [r["step"] for r in curve] == list(range(1, len(curve) + 1)) and all("train/loss" in r for r in curve)
    rollouts = [json.loads(x) for x in (tmp_path / "round0/rollouts.jsonl").read_text().splitlines()]
    assert all(t["retriever_query"] == t["query"] for r in rollouts for t in r["turns"])  # round 0: bare query
    rollouts = [json.loads(x) for x in (tmp_path / "round1/rollouts.jsonl").read_text().splitlines()]
    assert all(" [SEP] " in t["retriever_query"] for r in rollouts for t in r["turns"])  # round 1: question [SEP]
    before = (tmp_path / "round1/groups.jsonl").stat().st_mtime_ns
    Pipeline(_cfg(tiny_bert, rounds=2), tmp_path, progress=False).iterate()  # resumes: nothing recomputed
    assert (tmp_path / "round1/groups.jsonl").stat().st_mtime_ns == before
    metrics = pipe.evaluate(0)
    assert set(metrics) == {"recall@5_subquery", "recall@20_subquery", "recall@5_subquery_unseen",
                            "recall@20_subquery_unseen", "unseen_subquery_share", "agent_em", "agent_f1"}
    # recomputed here without faiss or pytrec_eval: the saved round-0 encoder, cosine ranks by numpy
    test_q = read_questions(tmp_path / "data/test.jsonl")
    corpus = [json.loads(x) for x in (tmp_path / "data/corpus.jsonl").read_text().splitlines()]
    enc = TextEncoder.load(tmp_path / "round0/retriever/encoder", device="cpu")
    subs = [(q, i, s) for q in test_q for i, s in enumerate(q["sub_questions"])]
    queries = enc.encode_queries([f"{q['question']} [SEP] {s['question']}" for q, _, s in subs])
    ranks = np.argsort(-(queries @ enc.encode_passages([d["contents"] for d in corpus]).T), axis=1)
    ids = [str(d["id"]) for d in corpus]
    hit5 = [str(s["passage_id"]) in {ids[j] for j in row[:5]} for (_, _, s), row in zip(subs, ranks)]
    assert metrics["recall@5_subquery"] == pytest.approx(sum(hit5) / len(hit5))
    # unseen: the held-out pairs that are neither a training question's hop nor a training group's (query, positive)
    seen = {(s["question"], str(s["passage_id"])) for q in read_questions(tmp_path / "data/train.jsonl")
            for s in q["sub_questions"]}
    for r in (0, 1):
        for g in (json.loads(x) for x in (tmp_path / f"round{r}/groups.jsonl").read_text().splitlines()):
            seen |= {(g["query"].split(" [SEP] ")[-1], p) for p in g["positives"]}
    unseen = [h for (q, i, s), h in zip(subs, hit5) if (s["question"], str(s["passage_id"])) not in seen]
    assert metrics["unseen_subquery_share"] == pytest.approx(len(unseen) / len(subs)) and unseen
    assert metrics["recall@5_subquery_unseen"] == pytest.approx(sum(unseen) / len(unseen))
    rollouts = [json.loads(x) for x in (tmp_path / "eval/round0_rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == len(test_q)
    em = [x["answer"].strip().lower() in {g.lower() for g in x["golden_answers"]} for x in rollouts]
    assert metrics["agent_em"] == pytest.approx(sum(em) / len(em))


def test_cli_help_and_stage_commands(tiny_bert, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("train-agent", "mine", "label", "train-retriever", "iterate", "eval", "replicate"):
        assert name in out
    args = [f"retriever.base_model={tiny_bert}", "retriever.train_layers=1", "data.n_train=6", "data.n_test=4"]
    assert main(["mine", "--out", str(tmp_path), "--round", "0", *args]) == 0
    assert (tmp_path / "round0/candidates.jsonl").exists() and (tmp_path / "config.yaml").exists()
    assert "search_turns" in capsys.readouterr().out
    assert main(["train-agent", "--out", str(tmp_path), "--round", "0", *args]) == 0  # the reader has no weights
    assert "nothing to do for agent.kind='reader'" not in capsys.readouterr().out  # round0/stats.json exists now
    assert main(["train-agent", "--out", str(tmp_path / "fresh"), "--round", "0", *args]) == 0
    assert "nothing to do for agent.kind='reader'" in capsys.readouterr().out
    assert not (tmp_path / "fresh/round0/agent").exists()
    # a stage with another config in the same folder would reuse files computed with the old one: refused
    assert main(["mine", "--out", str(tmp_path), "--round", "0", *args, "data.n_test=5"]) == 2
    assert "holds a run with another config (data.n_test: 4 -> 5)" in capsys.readouterr().err


def test_bad_config_key_and_bad_question_file(tmp_path):
    with pytest.raises(ConfigError, match="trian"):
        load_config(AgenticRConfig, None, ["trian.lr=1"])
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "a", "question": "Q?", "golden_answers": ["x"]}\n{"id": "b", "question": "Q?"}\n')
    with pytest.raises(RecordError, match=r"q.jsonl:2: missing field 'golden_answers'"):
        read_questions(bad)
    bad.write_text("{not json\n")
    with pytest.raises(RecordError, match=r"q.jsonl:1: invalid JSON"):
        read_questions(bad)



TINY_RUN = [
    "retriever.train_layers=1", "data.n_people=12", "data.n_companies=4", "data.n_cities=4", "data.n_countries=3",
    "data.n_train=6", "data.n_test=3", "data.hops=[1]", "data.n_agent_train=6", "train.epochs=2", "rounds=2",
    "agent.kind=tiny", "tiny_agent.hidden=32", "tiny_agent.layers=1", "tiny_agent.heads=2", "tiny_agent.ffn=64",
    "tiny_agent.vocab_size=400", "tiny_agent.sft_steps=150", "tiny_agent.sft_lr=1e-2", "tiny_agent.sft_batch=4",
    "tiny_agent.sft_warmup=5", "tiny_agent.rl_steps=2", "tiny_agent.prompts_per_step=2", "tiny_agent.generations=2",
    "tiny_agent.max_new_tokens=48",
]  # fmt: skip


@pytest.mark.slow
def test_loop_retrains_the_tiny_agent_each_round_with_that_rounds_retriever(tmp_path):
    """Offline MiniLM retriever, a 1-hop KB of 23 passages and a tiny agent that memorises its 6 oracle traces."""
    cfg = load_config(AgenticRConfig, None, TINY_RUN)
    pipe = Pipeline(cfg, tmp_path, progress=False)
    pipe.iterate()
    stats = [json.loads((tmp_path / f"round{r}/stats.json").read_text()) for r in (0, 1)]
    assert [s["agent_sft"]["retriever"] for s in stats] == ["base", "round0"]  # round 1 trains with retriever_0
    assert [s["agent_rl"]["steps"] for s in stats] == [2, 2]
    assert all(s["agent_sft"]["loss_last"] < 0.5 * s["agent_sft"]["loss_first"] for s in stats)
    assert stats[1]["label"]["agent"].startswith("tiny-qwen2-agent round 1")
    assert all(s["label"]["group_ok"] > 0 for s in stats)  # the trained agent's rollouts yield training groups
    w0 = (tmp_path / "round0/agent/model/model.safetensors").read_bytes()
    assert w0 != (tmp_path / "round1/agent/model/model.safetensors").read_bytes()
    before = (tmp_path / "round1/agent/model/model.safetensors").stat().st_mtime_ns
    again = Pipeline(load_config(AgenticRConfig, None, TINY_RUN), tmp_path, progress=False)
    again.iterate()  # resumes: no stage (agent training included) is redone
    assert (tmp_path / "round1/agent/model/model.safetensors").stat().st_mtime_ns == before
    assert again.agent().name.startswith("tiny-qwen2-agent round 1")  # evaluation runs the last round's agent
    metrics = again.evaluate(1)
    rollouts = [json.loads(x) for x in (tmp_path / "eval/round1_rollouts.jsonl").read_text().splitlines()]
    em = [x["answer"].strip().lower() in {g.lower() for g in x["golden_answers"]} for x in rollouts]
    assert len(rollouts) == 3 and metrics["agent_em"] == pytest.approx(sum(em) / len(em))

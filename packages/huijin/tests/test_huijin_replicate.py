"""Replication plumbing: row metrics from stage tables, the pre-declared claim check by hand, the picture, the
overlap counts, and a tiny end-to-end replication whose ablation row reuses the full row's stage-1/2 folders."""

import json
from pathlib import Path

import pytest
from huijin.evaluate import continuation_logprobs
from huijin.plot import draw_stage_tables
from huijin.recipe import BENCHMARKS, load_recipe
from huijin.replicate import METRICS, claim_check, overlap_counts, replicate, row_metrics

TINY = Path(__file__).with_name("tiny_recipe.yaml")


def _row(**values):
    return {b: values.get(b, 0.5) for b in BENCHMARKS}


def test_row_metrics_after_stage3_and_at_the_end():
    full = {"sft": _row(fin_numeric=0.40), "reasoning_rl": _row(fin_numeric=0.47), "general_rl": _row(fin_numeric=0.44)}
    ablation = {"sft": _row(fin_numeric=0.40), "general_rl": _row(fin_numeric=0.39, tatqa_numeric=None)}
    assert row_metrics(full)["fin_numeric_after_stage3"] == 0.47 and row_metrics(full)["fin_numeric"] == 0.44
    m = row_metrics(ablation)
    assert m["fin_numeric_after_stage3"] == 0.40 and m["fin_numeric"] == 0.39 and m["tatqa_numeric"] is None
    assert list(m) == ["fin_numeric", "fin_numeric_after_stage3", "fin_choice", "fin_tool", "general_accuracy",
                       "filings_ppl", "tatqa_numeric"] == list(METRICS)


def test_claim_check_by_hand():
    def seed(full_after, full_end, abl_after, abl_end):
        return {"full": {"fin_numeric_after_stage3": full_after, "fin_numeric": full_end},
                "no_reasoning_rl": {"fin_numeric_after_stage3": abl_after, "fin_numeric": abl_end}}

    per_seed = [seed(0.47, 0.44, 0.40, 0.39), seed(0.46, 0.41, 0.40, 0.40), seed(0.48, 0.45, 0.41, 0.42)]
    c = claim_check(per_seed, 500)
    # after stage 3: diffs .07 .06 .07, mean .0667; p = mean of all six values = .4367; 2 SE = 2 sqrt(p(1-p)/500)
    p = (0.47 + 0.46 + 0.48 + 0.40 + 0.40 + 0.41) / 6
    assert c["after_stage3"]["per_seed"] == pytest.approx([0.07, 0.06, 0.07])
    assert c["after_stage3"]["threshold_2se"] == pytest.approx(2 * (p * (1 - p) / 500) ** 0.5)
    assert c["after_stage3"]["holds"] and c["after_stage3"]["ahead"] == 3
    # at the end: diffs .05 .01 .03, mean .03 < 2 SE (about .044): ahead 3/3 but the claim does not hold
    assert c["end"]["ahead"] == 3 and c["end"]["mean"] == pytest.approx(0.03) and not c["end"]["holds"]


def test_picture_is_written(tmp_path):
    tables = {"full": {"init": _row(filings_ppl=90.0), "cpt": _row(filings_ppl=20.0, tatqa_numeric=None)}}
    path = draw_stage_tables(tables, BENCHMARKS, tmp_path / "t.png", "title")
    from PIL import Image

    with Image.open(path) as img:
        assert img.size[0] > 800 and img.size[1] > 100


def test_continuation_logprobs_by_hand():
    """The mean log-probability of a continuation equals a plain forward pass over the joined ids."""
    import torch
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer(kind="char")
    path = tiny_causal_lm(Path("/tmp") / f"huijin-lp-{id(tok)}", tokenizer=tok, hidden=16, layers=1, heads=2, ffn=32)
    model = AutoModelForCausalLM.from_pretrained(path)
    got = continuation_logprobs(model, tok, [("Gross profit is", " revenue."), ("A", " b.")], batch_size=2)
    ids = tok("Gross profit is revenue.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    n = len("Gross profit is")
    want = float(torch.stack([logp[i - 1, ids[i]] for i in range(n, len(ids))]).mean())
    assert got[0] == pytest.approx(want, abs=1e-5)


def test_overlap_counts_are_zero():
    counts = overlap_counts(load_recipe(TINY))
    assert counts and all(v == 0 for v in counts.values())


def test_tiny_replication_shares_the_prefix(tmp_path):
    path = replicate(quick=True, out=tmp_path, config=TINY, log=lambda m: None)
    doc = json.loads(path.read_text())
    assert [r["method"] for r in doc["rows"]] == ["sft", "full", "no_reasoning_rl"]
    assert all(list(r["metrics"]) == list(METRICS) for r in doc["rows"])
    built = doc["built"]["seed0"]
    assert "cpt" in built["full"] and "sft" in built["full"]
    assert built["no_reasoning_rl"] == ["agentic_rl", "agentic_rl.eval", "general_rl", "general_rl.eval"]
    folders = doc["stage_folders"]["seed0"]
    assert folders["full"]["sft"] == folders["no_reasoning_rl"]["sft"]
    assert folders["full"]["agentic_rl"] != folders["no_reasoning_rl"]["agentic_rl"]
    table = doc["stage_table"]
    assert list(table["no_reasoning_rl"]) == ["init", "cpt", "sft", "agentic_rl", "general_rl"]
    assert table["full"]["sft"] == table["no_reasoning_rl"]["sft"]
    assert doc["claim"]["end"]["seeds"] == 1 and (tmp_path / "stage_table.png").is_file()
    assert "stand-in" in doc["general_rl_reward"] and doc["quick"] is True
    again = json.loads(replicate(quick=True, out=tmp_path, config=TINY, log=lambda m: None).read_text())
    assert again["built"]["seed0"] == {"full": [], "no_reasoning_rl": []}  # a rerun reuses everything
    assert again["rows"] == doc["rows"]
    # the full run's way: each seed alone (separate processes into one folder), then one call over all seeds that
    # reuses every finished stage and writes the 3-seed results
    replicate(quick=True, out=tmp_path, config=TINY, seed=1, seeds=1, log=lambda m: None)
    both = json.loads(replicate(quick=True, out=tmp_path, config=TINY, seeds=2, log=lambda m: None).read_text())
    assert both["built"] == {"seed0": {"full": [], "no_reasoning_rl": []}, "seed1": {"full": [], "no_reasoning_rl": []}}
    assert both["claim"]["end"]["seeds"] == 2

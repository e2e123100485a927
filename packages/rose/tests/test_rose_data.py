"""Records, verbose warm-start targets, rewards and bad data files; evaluation metrics on a tiny policy."""

import pytest
from benchmarks.data import DataError
from rose.data import (
    bundled_records,
    is_verbose,
    jsonl_records,
    load_records,
    reward_fn,
    sft_records,
    verbose_solution,
)
from shared.rollout.trajectory import Trajectory


def test_verbose_solution_restates_before_the_box():
    out = verbose_solution("43+9-6", "43+9=52. 52-6=46. \\boxed{46}", "46")
    assert out == "43+9=52. 52-6=46. So 43+9-6=46. \\boxed{46}"
    assert is_verbose(out) and not is_verbose("43+9=52. 52-6=46. \\boxed{46}")
    with pytest.raises(ValueError, match="boxed"):
        verbose_solution("1+1", "1+1=2.", "2")


def test_sft_records_mix_styles_deterministically():
    recs = sft_records(400, seed=0, verbose_fraction=0.5)
    share = sum(is_verbose(r["completion"]) for r in recs) / len(recs)
    assert 0.4 < share < 0.6
    assert recs == sft_records(400, seed=0, verbose_fraction=0.5)
    assert not any(is_verbose(r["completion"]) for r in sft_records(50, seed=0, verbose_fraction=0.0))
    with pytest.raises(ValueError, match="verbose_fraction"):
        sft_records(5, verbose_fraction=1.5)


def test_reward_reads_the_last_box():
    trajs = [Trajectory(prompt_ids=[1], text=t) for t in ("\\boxed{3} \\boxed{46}", "46", "\\boxed{45}")]
    assert reward_fn(trajs, [{"answer": "46"}] * 3) == [1.0, 0.0, 0.0]


def test_bundled_slices_and_sources():
    recs = bundled_records("gsm8k", 3)
    assert len(recs) == 3 and recs[0]["prompt"].startswith("Q: ") and recs[0]["answer"]
    assert len(load_records("arithmetic", 5, "test", 0)) == 5
    with pytest.raises(ValueError, match="unknown data source"):
        load_records("nonsense", 5, "test", 0)
    with pytest.raises(ValueError, match="unknown math slice"):
        bundled_records("mmlu")


def test_bad_jsonl_names_file_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "Q", "answer": 3}\n{"answer": "4"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'prompt'"):
        jsonl_records(path)
    path.write_text('{"prompt": "Q", "answer": 3}\nnot json\n')
    with pytest.raises(DataError, match=r"d.jsonl:2"):
        jsonl_records(path)
    path.write_text('{"prompt": "", "answer": "1"}\n')
    with pytest.raises(DataError, match="empty prompt"):
        jsonl_records(path)


def test_evaluate_metrics_on_a_tiny_policy(rose_tiny):
    from rose.evaluate import evaluate

    model, tok = rose_tiny
    recs = load_records("arithmetic", 3, "test", 0)
    m = evaluate(model, tok, recs, samples=2, max_new_tokens=5, progress=False)
    assert m["accuracy"] == 0.0 and m["mean_length_correct"] is None  # a random policy never boxes an answer
    assert 1 <= m["mean_length"] <= 5 and m["n_prompts"] == 3 and 1 <= m["eval_distinct_answers"] <= 2
    with pytest.raises(ValueError, match="no records"):
        evaluate(model, tok, [], samples=2)

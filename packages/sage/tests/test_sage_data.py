"""Problem loading: verifiable answers only, with errors naming file, line and field; config method switch."""

import json

import pytest
from sage.config import DataConfig, SageConfig, method_flags
from sage.data import DataError, gold_answer, load_problem_set, read_jsonl, record_to_problem


def test_gold_answer_forms():
    assert gold_answer("Janet sells 9 eggs.\n#### 1,018") == "1018"
    assert gold_answer("so \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert gold_answer(204) == "204"
    assert gold_answer("  ") is None and gold_answer(None) is None


def test_record_to_problem_uses_template_and_names_fields():
    p = record_to_problem({"question": "2+2?", "answer": "#### 4", "id": 7}, "f.jsonl:1", "Q: {question}\nA: ", "x")
    assert (p.problem_id, p.prompt, p.answer) == ("7", "Q: 2+2?\nA: ", "4")
    with pytest.raises(DataError, match="f.jsonl:3: field 'answer' is missing"):
        record_to_problem({"question": "2+2?"}, "f.jsonl:3", "{question}", "x")
    with pytest.raises(DataError, match="f.jsonl:4: field 'question'"):
        record_to_problem({"answer": "4"}, "f.jsonl:4", "{question}", "x")
    with pytest.raises(DataError, match="f.jsonl:5: field 'answer' .* no verifiable final answer"):
        record_to_problem({"question": "q", "answer": "####"}, "f.jsonl:5", "{question}", "x")


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_source_errors_and_skip(tmp_path):
    good = [json.dumps({"question": f"{i}+1?", "answer": str(i + 1)}) for i in range(4)]
    bad = json.dumps({"question": "what?", "answer": ""})
    path = _write(tmp_path / "p.jsonl", good[:2] + [bad] + good[2:])
    cfg = DataConfig(source="jsonl", path=str(path), n_train=2, n_test=2)
    with pytest.raises(DataError, match=r"p\.jsonl:3: field 'answer'"):
        load_problem_set(cfg)
    cfg.on_unverifiable = "skip"
    ps = load_problem_set(cfg)
    assert [p.answer for p in ps.train + ps.test] == ["1", "2", "3", "4"]
    assert ps.info["name"] == "jsonl:p.jsonl" and len(ps.info["sha256"]) == 64
    cfg.n_train = 4
    with pytest.raises(DataError, match="4 usable problems, but data.n_train \\+ data.n_test = 6"):
        load_problem_set(cfg)


def test_malformed_json_and_missing_file(tmp_path):
    path = _write(tmp_path / "m.jsonl", ['{"question": "a", "answer": "1"}', "{not json"])
    with pytest.raises(DataError, match=r"m\.jsonl:2: malformed JSON"):
        read_jsonl(path)
    with pytest.raises(DataError, match="problem file not found"):
        read_jsonl(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match="needs data.path"):
        load_problem_set(DataConfig(source="jsonl"))


def test_arithmetic_source_is_disjoint_and_deterministic():
    cfg = DataConfig(source="arithmetic", n_train=30, n_test=10, data_seed=3)
    a, b = load_problem_set(cfg), load_problem_set(cfg)
    assert a.info == b.info and [p.prompt for p in a.train] == [p.prompt for p in b.train]
    assert not {p.prompt for p in a.train} & {p.prompt for p in a.test}


def test_method_flags_and_unknown_method():
    assert method_flags("uniform") == (False, False) and method_flags("sage") == (True, True)
    assert method_flags("curriculum") == (True, False) and method_flags("scoring") == (False, True)
    with pytest.raises(ValueError, match="unknown method 'greedy'"):
        method_flags("greedy")


def test_config_rejects_unknown_key(tmp_path):
    from shared.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("# test\ntrain:\n  stpes: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="train.stpes"):
        load_config(SageConfig, path)
    cfg = load_config(SageConfig, None, ["train.method=scoring", "scoring.window=6"])
    assert cfg.train.method == "scoring" and cfg.scoring.window == 6


def test_eval_problems_cap_at_slice_size_and_bundled_answers_verify():
    from sage.data import load_eval_problems

    aime = load_eval_problems(DataConfig(source="aime24"), 50)
    assert len(aime.test) == 15 and aime.info["name"] == "aime24:test.jsonl"  # the bundled slice holds 15
    gsm = load_eval_problems(DataConfig(source="gsm8k"), 3)
    assert [p.answer for p in gsm.test] == ["18", "3", "70000"]  # GSM8K '#### n' finals of the first three
    assert gsm.test[0].prompt.startswith("Q: Janet")


def test_word_and_non_answers_are_not_verifiable():
    """math-verify would parse 'unknown' as a product of symbols; such gold answers can never be matched."""
    from sage.data import is_verifiable

    for bad in ("unknown", "N/A", "none", "see above", "blue", "?"):
        assert not is_verifiable(bad), bad
    for good in ("42", "-3/4", "x+y", "\\frac{ab}{2}", "2\\sqrt{3}", "\\text{Evelyn}", "\\sin(x)",
                 "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"):
        assert is_verifiable(good), good
    with pytest.raises(DataError, match=r"q\.jsonl:7: field 'answer' \('unknown'\) holds no verifiable"):
        record_to_problem({"question": "2+2?", "answer": "unknown"}, "q.jsonl:7", "{question}", "x")

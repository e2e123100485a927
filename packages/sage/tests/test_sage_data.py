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
    with pytest.raises(DataError, match="4 usable problems, but data.n_train \\+ data.n_dev \\+ data.n_test = 6"):
        load_problem_set(cfg)


def test_dev_split_of_a_file_follows_the_pool_and_is_evaluated_on_request(tmp_path):
    path = _write(tmp_path / "d.jsonl", [json.dumps({"question": f"{i}+1?", "answer": str(i + 1)}) for i in range(6)])
    cfg = DataConfig(source="jsonl", path=str(path), n_train=2, n_dev=2, n_test=2)
    assert [p.answer for p in load_problem_set(cfg).test] == ["5", "6"]  # records 5-6: test after pool and dev
    cfg.eval_split = "dev"
    ps = load_problem_set(cfg)
    assert [p.answer for p in ps.train] == ["1", "2"] and [p.answer for p in ps.test] == ["3", "4"]
    assert ps.info["name"] == "jsonl:d.jsonl:dev"


def test_arithmetic_dev_and_test_are_disjoint_draws_of_one_held_out_sample():
    cfg = DataConfig(source="arithmetic", n_train=20, n_dev=30, n_test=50, data_seed=1)
    test = load_problem_set(cfg)
    dev = load_problem_set(DataConfig(source="arithmetic", n_train=20, n_dev=30, n_test=50, data_seed=1,
                                      eval_split="dev"))
    assert len(test.test) == 50 and len(dev.test) == 30 and [p.prompt for p in dev.train] == [p.prompt for p in test.train]
    assert not {p.prompt for p in dev.test} & {p.prompt for p in test.test}
    assert not {p.prompt for p in dev.test + test.test} & {p.prompt for p in test.train}
    # the union is the generator's first 80 held-out problems, shuffled before the split
    first80 = load_problem_set(DataConfig(source="arithmetic", n_train=20, n_test=80, data_seed=1)).test
    assert {p.prompt for p in first80} == {p.prompt for p in dev.test + test.test}
    assert [p.prompt for p in test.test] != [p.prompt for p in first80[30:]]


def test_bad_split_settings_are_clear_errors():
    with pytest.raises(DataError, match="data.eval_split=dev needs a dev split"):
        load_problem_set(DataConfig(source="arithmetic", n_train=5, n_test=5, eval_split="dev"))
    with pytest.raises(DataError, match="data.n_dev must be >= 0, got -1"):
        load_problem_set(DataConfig(source="arithmetic", n_train=5, n_test=5, n_dev=-1))


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


def test_a_parse_timeout_on_a_loaded_machine_is_retried(monkeypatch):
    """math-verify's parse timeout is wall-clock: a valid answer whose first parse overruns (a loaded machine) is
    retried with a long budget instead of being called unverifiable; one that overruns every budget is refused."""
    import math_verify
    from math_verify.errors import TimeoutException
    from sage.data import is_verifiable
    from shared.rewards.math import PARSE_TIMEOUTS_S

    real = math_verify.parse
    budgets = []

    def timed_out(raise_on_error):  # what math-verify does when its alarm fires
        if raise_on_error:
            raise TimeoutException("Operation timed out!")
        return []

    def slow_first(text, parsing_timeout=5, raise_on_error=False):
        budgets.append(parsing_timeout)
        if parsing_timeout == PARSE_TIMEOUTS_S[0]:
            return timed_out(raise_on_error)
        return real(text, parsing_timeout=parsing_timeout, raise_on_error=raise_on_error)

    monkeypatch.setattr(math_verify, "parse", slow_first)
    assert is_verifiable("\\left( 3, \\frac{\\pi}{2} \\right)")
    assert budgets == list(PARSE_TIMEOUTS_S)

    def always_slow(text, parsing_timeout=5, raise_on_error=False):
        return timed_out(raise_on_error)

    monkeypatch.setattr(math_verify, "parse", always_slow)
    assert not is_verifiable("p - q")
    assert is_verifiable("42")  # plain numbers never reach math-verify

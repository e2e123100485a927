"""The finance suite, the finance tools, FinQA programs, TAT-QA derivations and scale-aware scoring: hand values."""

import pytest
from benchmarks.data.errors import DataError
from benchmarks.data.finance import (
    ProgramError,
    check_table,
    eval_derivation,
    prediction_number,
    run_program,
    tatqa_golds,
    tatqa_prompt,
    tatqa_score,
)
from benchmarks.data.records import TableQARecord
from benchmarks.synthetic import finance as fin
from benchmarks.synthetic.arithmetic import make_arithmetic
from benchmarks.synthetic.tool_library import FINANCE_SCHEMAS, calculate, table_lookup


@pytest.fixture(scope="module")
def suite():
    return fin.make_finance_suite(seed=0)


# ---- tools -----------------------------------------------------------------------------------------------------
def test_calculate_hand_values():
    assert calculate("437-289") == 148
    assert calculate("(1496 - 1323) / 1323") == pytest.approx(0.1307634165)
    assert calculate("-2 ** 2") == -4 and calculate("2*(3+4)") == 14
    assert calculate("7/2") == 3.5 and isinstance(calculate("6/2"), int)


@pytest.mark.parametrize("bad", ["__import__('os')", "x + 1", "abs(-1)", "(1).real", "1 if 1 else 2", "9**9**9",
                                 "1/0", "", "1 +"])
def test_calculate_refuses(bad):
    with pytest.raises(ValueError):
        calculate(bad)


def test_table_lookup_and_schemas():
    grid = [["metric", "2019", "2020"], ["Revenue", "43", "52"], ["cost", "5", "6"]]
    assert table_lookup(grid, "revenue", "2020") == "52"
    assert table_lookup(grid, " COST ", "2019") == "5"
    with pytest.raises(ValueError, match="unknown row"):
        table_lookup(grid, "profit", "2019")
    with pytest.raises(ValueError, match="unknown column"):
        table_lookup(grid, "cost", "2018")
    with pytest.raises(ValueError, match="different lengths"):
        table_lookup([["a", "b"], ["c"]], "c", "b")
    assert FINANCE_SCHEMAS["calculate"]["parameters"]["required"] == ["expression"]
    assert set(FINANCE_SCHEMAS["table_lookup"]["parameters"]["required"]) == {"table", "row", "column"}


# ---- FinQA programs and TAT-QA derivations -------------------------------------------------------------------------
def test_finqa_programs_by_hand():
    assert run_program("subtract(5829, 5735), divide(#0, 5735)") == pytest.approx(94 / 5735)
    assert run_program("subtract(5829, 5735), divide(#0, 5735)") == pytest.approx(0.0163906, abs=1e-7)
    assert run_program("add(1, const_100)") == 101
    assert run_program("multiply(2, const_m1)") == -2
    assert run_program("divide(5%, 2)") == pytest.approx(0.025)
    assert run_program("greater(3, 2)") == "yes"
    table = [["", "2019", "2018"], ["net sales", "$ 1,000", "(200)"]]
    assert run_program("table_sum(net sales, none)", table) == 800
    with pytest.raises(ProgramError, match="unknown op foo"):
        run_program("foo(1, 2)")
    with pytest.raises(ProgramError, match="#3"):
        run_program("add(1, 2), divide(#3, 2)")
    with pytest.raises(ProgramError, match="division by zero"):
        run_program("divide(1, 0)")


def test_tatqa_derivation_by_ast_evaluator():
    assert eval_derivation("(1,496-1,323)/1,323") == pytest.approx(0.1307634, abs=1e-7)
    assert eval_derivation("[(166+178)/2] - [(57+44)/2]") == 121.5
    assert eval_derivation("-114 - (71)") == -43  # a bracketed bare number is an accounting negative
    assert eval_derivation("53%*$23,406") == pytest.approx(12405.18)
    with pytest.raises(ValueError):
        eval_derivation("__import__('os')")


def test_bundled_tatqa_derivations_reproduce_the_answers():
    from benchmarks.data.bundled import load_bundled

    records = [r for r in load_bundled("tatqa") if r.answer_type == "arithmetic"]
    ok = 0
    for r in records:
        try:
            value = eval_derivation(r.metadata["derivation"])
        except ValueError:
            continue
        golds = tatqa_golds(r)  # percent answers are derived as fractions
        ok += any(abs(v - g) <= max(0.01 * abs(g), 0.006) for g in golds for v in (value, value * 100))
    assert len(records) == 718 and ok == 717  # one derivation mixes "million" and "thousand" words


# ---- TAT-QA scoring --------------------------------------------------------------------------------------------
def _record(answer, scale="million", table=None):
    return TableQARecord("r1", "What is the change?", answer, table or [["", "2019"], ["Other", "44.1"]], ["p"],
                         "arithmetic", scale)


def test_tatqa_scale_aware_scoring():
    rec = _record(-12.6)
    assert tatqa_golds(rec) == [-12.6, -12_600_000.0]
    assert tatqa_score("\\boxed{-12.6}", rec) == 1.0
    assert tatqa_score("-12.6 million", rec) == 1.0  # the scale word is applied
    assert tatqa_score("it fell by -12,600,000", rec) == 1.0  # the absolute amount
    assert tatqa_score("-12.7", rec) == 1.0  # |0.1| / 12.6 = 0.0079 <= 1e-2
    assert tatqa_score("-12.8", rec) == 0.0  # 0.2 / 12.6 = 0.0159
    assert tatqa_score("-12.6 thousand", rec) == 0.0
    assert tatqa_score("n/a", rec) == 0.0
    pct = _record(-22.22, "percent")
    assert tatqa_score("-22.22%", pct) == 1.0 and tatqa_score("-0.2222", pct) == 0.0
    assert prediction_number("so \\boxed{1,234} thousand") == 1234.0


def test_tatqa_multi_span_by_option():
    rec = _record(["fixed-price type", "cost-plus type"], "")
    assert tatqa_score("fixed-price type; cost-plus type", rec) is None  # skipped, the caller counts it
    assert tatqa_score("fixed-price type; cost-plus type", rec, multi_span="f1") == 1.0
    assert tatqa_score("fixed-price type", rec, multi_span="f1") == pytest.approx(2 / 3)
    assert tatqa_score("\\boxed{5}", _record(["5"], "")) == 1.0  # a one-item list is a number
    with pytest.raises(ValueError, match="multi_span"):
        tatqa_score("x", rec, multi_span="maybe")


def test_tatqa_bad_records_name_the_record():
    with pytest.raises(DataError, match="r1.*ragged"):
        check_table(_record(1, table=[["a", "b"], ["c"]]))
    with pytest.raises(DataError, match="r1.*ragged"):
        tatqa_prompt(_record(1, table=[["a", "b"], ["c"]]))
    with pytest.raises(DataError, match="r1.*scale"):
        tatqa_golds(_record(1, "dozen"))
    with pytest.raises(DataError, match="r1.*answer"):
        tatqa_golds(_record("about five", ""))


def test_tatqa_prompt_keeps_the_question_when_cut():
    rec = TableQARecord("r2", "What is X?", 1, [["a", "b"], ["c", "d"]], ["long " * 100], "arithmetic", "")
    text = tatqa_prompt(rec, max_chars=30)
    assert text.startswith("Table:\na | b\nc | d") and text.endswith("\nQ: What is X?\nA: ")
    assert len(text) == 30 + len("\nQ: What is X?\nA: ")


# ---- the synthetic suite ---------------------------------------------------------------------------------------
def test_suite_is_seeded_and_sized(suite):
    again = fin.FinanceSuite(0, fin.make_companies(600, 0))
    assert again.numeric("test", 5) == suite.numeric("test", 5)
    assert fin.FinanceSuite(1, fin.make_companies(600, 1)).numeric("test", 5) != suite.numeric("test", 5)
    assert len(suite.numeric("test")) >= 500 and len(suite.numeric("dev")) >= 200
    assert len(suite.tool("test")) >= 500 and len(suite.numeric("train")) > 10_000
    with pytest.raises(ValueError, match="fewer than"):
        suite.numeric("dev", 10_000)


def test_question_and_solution_by_hand():
    q = fin.question_text("Kalo Corp", "revenue", [2018, 2019, 2020], [43, 52, 46])
    assert q == ("Kalo Corp's revenue was 43 in 2018, rose by 9 in 2019 and fell by 6 in 2020. "
                 "What was its revenue in 2020?")
    assert fin.solve_numeric(f"Q: {q}\nA: ") == "43+9=52. 52-6=46. \\boxed{46}"
    q2 = fin.question_text("Kalo Corp", "total assets", [2018, 2019], [437, 148])
    assert q2 == "Kalo Corp's total assets were 437 in 2018 and fell by 289 in 2019. What were its total assets in 2019?"
    assert fin.solve_tool(fin.tool_prompt(q2)) == [{"name": "subtract", "arguments": {"a": 437, "b": 289},
                                                    "result": 148}]
    assert fin.call_text("subtract", {"a": 437, "b": 289}) == \
        '<tool_call>{"name":"subtract","arguments":{"a":437,"b":289}}</tool_call>'


def test_items_follow_the_calibration_regime(suite):
    for item in suite.numeric("train", 300):
        first, *rest = item["operands"]
        assert 10 <= first <= 99 and all(1 <= x <= 9 for x in rest) and len(item["operands"]) in (2, 3)
        assert item["solution"].endswith(f"\\boxed{{{item['answer']}}}")
    for item in suite.tool("train", 300):
        assert 100 <= item["operands"][0] <= 999 and item["trace"][-1]["result"] == int(item["answer"])


def test_oracle_solves_every_split(suite):
    for split in fin.SPLITS:
        for item in suite.numeric(split):
            assert fin.solve_numeric(item["prompt"]) == item["solution"]
        for item in suite.tool(split)[:500]:
            assert fin.solve_tool(item["prompt"]) == item["trace"]
        for item in suite.choice(split, 100):
            assert fin.solve_choice(item["prompt"]) == item["answer"]


def test_splits_are_disjoint(suite):
    test, dev, train = (suite.numeric(s) for s in ("test", "dev", "train"))
    for key in ("prompt", "expression", "company"):
        assert fin.overlap(test, train, key) == 0 and fin.overlap(test, dev, key) == 0
        assert fin.overlap(dev, train, key) == 0
    tool_test, tool_train = suite.tool("test"), suite.tool("train")
    assert fin.overlap(tool_test, tool_train, "expression") == 0 and fin.overlap(tool_test, tool_train, "company") == 0
    # no fin_numeric expression of the train split is a test expression of the calibration arithmetic
    arith_test = [{"expression": r.question} for r in make_arithmetic(2000, seed=0, split="test")]
    assert fin.overlap(train, arith_test, "expression") == 0
    assert fin.overlap(test, arith_test, "expression") > 0  # the same hash split: test expressions are shared
    # filings: no test company has a training filing
    train_docs = {d["company"] for d in suite.filings("train")}
    assert not train_docs & {d["company"] for d in suite.filings("test")}
    choice_test, choice_train = suite.choice("test", 500), suite.choice("train", 2000)
    assert fin.overlap(choice_test, choice_train, "term") == 0 and fin.overlap(choice_test, choice_train, "prompt") == 0


def test_filings_and_glossary(suite):
    doc = suite.filings("train")[1]
    company = suite.company(doc["company"])
    year = doc["year"]
    v, prev = company.table["revenue"][year], company.table["revenue"][year - 1]
    assert f"Revenue {'rose' if v > prev else 'fell'} by {abs(v - prev)} to {v}." in doc["contents"]
    texts = suite.glossary_texts()
    assert len(texts) == 3 * len(fin.GLOSSARY) == 144
    assert "Gross profit is revenue minus cost of sales." in texts
    assert not any("is called" in t for t in texts)  # the cloze phrasing is held out
    item = suite.choice("test", 1)[0]
    assert item["options"][item["gold_index"]] == item["term"] and item["context"].endswith(" is called")
    assert company.grid()[0][:2] == ["metric", "2016"] and company.grid()[1][0] == "revenue"


def test_bad_split_is_refused(suite):
    with pytest.raises(ValueError, match="split"):
        suite.numeric("validation")
    with pytest.raises(ValueError, match="not a finance"):
        fin.parse_question("Q: 43+9=?\nA: ")


def test_finance_tasks_registered():
    from benchmarks.evaluate import score_generative
    from benchmarks.tasks import get_task, load_examples

    for name, n in (("fin_numeric", 500), ("fin_tool", 500), ("fin_choice", 500), ("tatqa", 718)):
        assert len(load_examples(get_task(name))) == n
    task = get_task("tatqa")
    ex = load_examples(task, 3)
    assert ex[0].golds == ["-12.6", "-12600000.0"]
    assert score_generative(task, ["\\boxed{-12.6}", "-12.6", "5"], [e.golds for e in ex[:1]] * 3)["accuracy"] == \
        pytest.approx(2 / 3)
    choice = get_task("fin_choice")
    assert score_generative(choice, ["The answer is (B).", "A or B", "b"], [["B"]] * 3)["accuracy"] == \
        pytest.approx(2 / 3)

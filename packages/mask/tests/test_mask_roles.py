"""Golden tests of the five parsers: the release's legality rules, first-match, and the fallbacks per parse mode."""

import pytest
from mask.roles import (
    NO_INFO,
    parse_answer,
    parse_plan,
    parse_search,
    parse_summary,
    parse_update,
    population_heuristic,
)

Q = "Who founded X?"


# ---- plan --------------------------------------------------------------------------------------------------------
def test_plan_legal():
    p = parse_plan("<q1>A?</q1><a1>x</a1><q2>B?</q2><a2>unkown</a2><final_answer>y</final_answer>", Q)
    assert p.legal and p.reasons == [] and not p.fallback
    assert p.slots == [("A?", "x"), ("B?", "unkown")] and p.answer == "y"


def test_plan_whitespace_between_tags_is_legal():
    assert parse_plan("<q1>A?</q1>\n<a1>x</a1>\n<final_answer>y</final_answer>\n", Q).legal


@pytest.mark.parametrize("text, reason", [
    ("Sure. <q1>A?</q1><a1>x</a1><final_answer>y</final_answer>", "text outside the plan's tags"),
    ("<q1>A?</q1><a1>x</a1><q3>C?</q3><a3>z</a3><final_answer>y</final_answer>", "sub-questions out of order"),
    ("<a1>x</a1><q1>A?</q1><final_answer>y</final_answer>", "sub-questions out of order"),
    ("".join(f"<q{i}>Q{i}?</q{i}><a{i}>a</a{i}>" for i in range(1, 7)) + "<final_answer>y</final_answer>",
     "more than 5 sub-questions"),
    ("<q1>A?</q1><a1>x</a1><q2>A?</q2><a2>z</a2><final_answer>y</final_answer>", "duplicate sub-questions"),
])
def test_plan_illegal(text, reason):
    p = parse_plan(text, Q)
    assert not p.legal and any(r.startswith(reason) for r in p.reasons), p.reasons


def test_plan_five_subquestions_is_legal():
    text = "".join(f"<q{i}>Q{i}?</q{i}><a{i}>a</a{i}>" for i in range(1, 6)) + "<final_answer>y</final_answer>"
    assert parse_plan(text, Q).legal


def test_plan_no_tags_strict_and_release():
    text = "Founder: Ada\nYear: 1900\nAda"
    strict = parse_plan(text, Q, "strict")
    assert not strict.legal and strict.fallback and strict.slots == [] and strict.answer == "unkown"
    release = parse_plan(text, Q, "release")  # the release's "a: b" lines, the last line as final answer
    assert not release.legal and release.slots == [("Founder", " Ada"), ("Year", " 1900")]
    assert release.answer == "Ada"


def test_plan_missing_final_and_empty_output():
    p = parse_plan("<q1>A?</q1><a1>x</a1>", Q, unknown="unknown")
    assert p.legal and p.answer == "unknown"  # a missing final answer is not one of the release's four rules
    empty = parse_plan("  \n ", Q)
    assert not empty.legal and empty.fallback and empty.slots == [(Q, "unkown")]


def test_plan_tags_case_insensitive_first_final():
    p = parse_plan("<Q1>A?</Q1><A1>x</A1><final_answer>y</final_answer><final_answer>z</final_answer>", Q)
    assert p.legal and p.answer == "y"  # the first final answer (re.search), as the release


# ---- search ------------------------------------------------------------------------------------------------------
def test_search_legal_and_end():
    s = parse_search("<search>Where was Ada born?</search>")
    assert s.legal and s.action == "search" and s.query == "Where was Ada born?"
    e = parse_search("<end>")
    assert e.legal and e.action == "end" and e.query == ""


def test_search_extra_text_and_two_searches():
    s = parse_search("<search>q</search> extra")
    assert not s.legal and s.action == "search" and s.query == "q"
    two = parse_search("<search>first</search><search>second</search>")
    assert not two.legal and two.query == "first"  # first match acts (release)
    assert two.reasons == ["more than one <search>"]


@pytest.mark.parametrize("mode", ["strict", "release"])
def test_search_whitespace_is_illegal_end(mode):
    s = parse_search(" \n\t", mode)
    assert not s.legal and s.fallback and s.action == "end"


def test_search_no_tag_strict_ends_release_searches_first_line():
    text = "Ada's birthplace?\nmore"
    strict = parse_search(text, "strict")
    assert not strict.legal and strict.action == "end"
    release = parse_search(text, "release")
    assert not release.legal and release.action == "search" and release.query == "Ada s birthplace"


def test_search_empty_query():
    strict = parse_search("<search> </search>", "strict")
    assert not strict.legal and strict.action == "end"
    release = parse_search("<search> </search>", "release")
    assert not release.legal and release.action == "search" and release.query == ""


# ---- summary -----------------------------------------------------------------------------------------------------
def test_summary_word_limit():
    ok = parse_summary("<evidence>" + " ".join(["w"] * 75) + "</evidence>")
    assert ok.legal
    long = parse_summary("<evidence>" + " ".join(["w"] * 76) + "</evidence>")
    assert not long.legal and long.evidence == " ".join(["w"] * 76)  # kept, but penalised


def test_summary_no_useful_information_is_legal():
    s = parse_summary(f"<evidence>{NO_INFO}</evidence>")
    assert s.legal and s.evidence == NO_INFO


def test_summary_two_tags_and_outside():
    s = parse_summary("<evidence>a</evidence><evidence>b</evidence>")
    assert not s.legal and s.evidence == "a"
    assert not parse_summary("so: <evidence>a</evidence>").legal


def test_summary_fallbacks():
    docs = ["Ada was born in Paris. Ada works for Acme.", "Bob lives here."]
    strict = parse_summary("I think Ada was born in Paris", "Where was Ada born?", docs, "strict")
    assert not strict.legal and strict.fallback and strict.evidence == NO_INFO
    release = parse_summary("I think Ada was born in Paris", "Where was Ada born?", docs, "release")
    assert release.evidence == "I think Ada was born in Paris"
    unknown = parse_summary("unknown, sorry", "q", docs, "release")
    assert unknown.evidence == NO_INFO
    # nothing usable in the reply: the document sentence sharing most query words (release)
    from_docs = parse_summary("...", "Where was Ada born?", docs, "release")
    assert from_docs.evidence == "Ada was born in Paris"


# ---- update ------------------------------------------------------------------------------------------------------
KEYS = ["t1", "t2"]


def test_update_legal():
    u = parse_update("<Update>t1</Update>", KEYS)
    assert u.legal and (u.action, u.target) == ("update", "t1")
    a = parse_update("<Add>t3</Add>", KEYS)
    assert a.legal and (a.action, a.target) == ("add", "t3")


@pytest.mark.parametrize("text", ["<Update>t7</Update>", "<Update>tx</Update>", "<Add>t5</Add>", "<Add>t03</Add>",
                                  "<Add>3</Add>", "append it", "", "   ", "<Update>t1</Update><Update>t2</Update>",
                                  "<Update>t1</Update> because", "<Update>t1</Update><Add>t3</Add>"])
def test_update_illegal_becomes_add(text):
    u = parse_update(text, KEYS)
    assert not u.legal and (u.action, u.target) == ("add", "t3")


# ---- answer ------------------------------------------------------------------------------------------------------
def test_answer_legal_and_first_match():
    assert parse_answer("<final_answer>Paris</final_answer>").answer == "Paris"
    two = parse_answer("<final_answer>Paris</final_answer><final_answer>Rome</final_answer>")
    assert not two.legal and two.answer == "Paris"
    assert not parse_answer("It is <final_answer>Paris</final_answer>").legal


def test_answer_fallbacks():
    slots = [("What is the population of Lyon?", "about 500,000"), ("What is the population of Nice?", "340000")]
    strict = parse_answer("Paris\nsecond line", slots, "strict")
    assert not strict.legal and strict.answer == ""
    release = parse_answer("Paris\nsecond line", slots, "release")
    assert not release.legal and release.answer == "Paris"
    # empty first line: the release's population heuristic (largest leading number wins)
    assert parse_answer("\nParis", slots, "release").answer == "Lyon?"
    assert parse_answer("   ", slots, "strict").answer == ""


def test_population_heuristic_without_numbers():
    assert population_heuristic([("Q1", "Ada"), ("Q2", "Bob")]) == "Ada"
    assert population_heuristic([]) == ""


def test_unknown_mode():
    with pytest.raises(ValueError, match="parse.mode"):
        parse_search("<end>", "lenient")

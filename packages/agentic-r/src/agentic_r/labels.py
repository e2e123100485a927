"""Data generation of one Agentic-R round: candidates, sub-answers, local and global utility, training groups.

Every step takes and returns plain dicts (the rows of the round's jsonl files) and counts what it had to drop in a
`Counter` (`no_search`, `subanswer_mismatch`, `missing_passage`, `judge_parse_failure`, group skip reasons), so bad
input never crashes a round and every loss of data is visible in the round's stats.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.rollout.envs import SearchEnv

from agentic_r.agents import Agent, ServiceSearch, parse_kb_question, play, reader_state
from agentic_r.groups import Candidate, build_group, needs_global
from agentic_r.judge import NOT_SURE, JudgeParseFailure

_SUB_ANSWER = re.compile(r"<sub-answer>(.*?)</sub-answer>", re.DOTALL)
SUB_ANSWER_PROMPT = (
    "Below is a search agent's trajectory for a question, and the question's gold answers. For every search query "
    "of the trajectory, in order, write what that query was looking for as a short answer inside "
    "<sub-answer>...</sub-answer>, or <sub-answer>Not Sure</sub-answer> when the trajectory and the gold answers "
    "do not tell. Write exactly {n} sub-answers.\nQuestion: {question}\nGold answers: {golds}\n"
    "Trajectory:\n{trajectory}\n"
)


def mine_candidates(rollouts: Sequence[dict], search: ServiceSearch, k: int, stats: Counter) -> list[dict]:
    """Top-k candidates of the current retriever for `question [SEP] sub-query`, per recorded search turn."""
    turns = []
    for rollout in rollouts:
        if not rollout.get("turns"):
            stats["no_search"] += 1
            continue
        for i, turn in enumerate(rollout["turns"]):
            turns.append((rollout, i, turn))
    search.prefetch([search.for_question(r["question"]).full_query(t["query"]) for r, _, t in turns], k)
    out = []
    for rollout, i, turn in turns:
        retriever = search.for_question(rollout["question"])
        hits = retriever.retrieve([turn["query"]], topk=k)[0]
        out.append({
            "id": f"{rollout['id']}#{i}", "rollout_id": rollout["id"], "turn": i, "question": rollout["question"],
            "query": turn["query"], "retriever_query": retriever.full_query(turn["query"]),
            "doc_ids": [str(h["id"]) for h in hits],
        })  # fmt: skip
    stats["search_turns"] += len(out)
    return out


class ReaderSubAnswers:
    """Deterministic sub-answer writer for KB rollouts: re-reads each observation of a correct trajectory.

    A search turn gets the answer span its observation gives for that hop; a wrong final answer, or a turn whose
    observation states nothing for the hop, gets "Not Sure".
    """

    name = "trajectory-reader-subanswers (deterministic)"

    def write(self, rollout: Mapping[str, Any]) -> list[str] | None:
        n = len(rollout["turns"])
        parsed = parse_kb_question(rollout["question"])
        if parsed is None or not rollout.get("em"):
            return [NOT_SURE] * n
        findings = reader_state(parsed[0], parsed[1], rollout["text"]).findings
        return [f if f else NOT_SURE for f in findings[:n]] + [NOT_SURE] * max(0, n - len(findings))


class LLMSubAnswers:
    """Sub-answers from an LLM completer; None (sample dropped) when the count differs from the search turns."""

    name = "llm-subanswers"

    def __init__(self, complete: Callable[[str], str]) -> None:
        self.complete = complete

    def write(self, rollout: Mapping[str, Any]) -> list[str] | None:
        n = len(rollout["turns"])
        prompt = SUB_ANSWER_PROMPT.format(
            n=n, question=rollout["question"], golds=" | ".join(rollout["golden_answers"]), trajectory=rollout["text"]
        )
        answers = [a.strip() for a in _SUB_ANSWER.findall(self.complete(prompt))]
        return answers if len(answers) == n else None


def write_sub_answers(rollouts: Sequence[dict], writer: Any, stats: Counter) -> dict[str, list[str]]:
    """rollout id -> one sub-answer per search turn; rollouts whose count does not match are dropped."""
    out = {}
    for rollout in rollouts:
        if not rollout.get("turns"):
            continue
        answers = writer.write(rollout)
        if answers is None or len(answers) != len(rollout["turns"]):
            stats["subanswer_mismatch"] += 1
            continue
        out[rollout["id"]] = answers
    return out


def label_local(
    candidates: Sequence[dict],
    sub_answers: Mapping[str, list[str]],
    corpus: Mapping[str, str],
    judge: Any,
    stats: Counter,
) -> list[dict]:
    """Adds `sub_answer`, kept `doc_ids` and `u_loc` per candidate turn; unreadable judge replies drop the turn."""
    out = []
    for row in candidates:
        answers = sub_answers.get(row["rollout_id"])
        if answers is None:
            continue
        doc_ids = [d for d in row["doc_ids"] if d in corpus]
        stats["missing_passage"] += len(row["doc_ids"]) - len(doc_ids)
        if not doc_ids:
            continue
        sub_answer = answers[row["turn"]]
        try:
            scores = judge.score(row["question"], row["query"], sub_answer, [corpus[d] for d in doc_ids])
        except JudgeParseFailure:
            stats["judge_parse_failure"] += 1
            continue
        out.append({**row, "doc_ids": doc_ids, "sub_answer": sub_answer, "u_loc": scores})
    stats["local_labelled_turns"] += len(out)
    return out


def label_global(
    local: Sequence[dict],
    rollouts: Mapping[str, dict],
    corpus: Mapping[str, str],
    agent: Agent,
    search: ServiceSearch,
    min_local: float,
    topk: int = 3,
    max_searches: int = 5,
    stats: Counter | None = None,
) -> list[dict]:
    """Adds `u_glob` per candidate: EM of the agent continuing with that single passage as the turn's observation.

    Computed only where it can matter (u_loc >= min_local, see `groups.needs_global`); None elsewhere.
    """
    jobs, starts, records = [], [], []
    for r, row in enumerate(local):
        rollout = rollouts[row["rollout_id"]]
        turn = rollout["turns"][row["turn"]]
        for c, (doc_id, u_loc) in enumerate(zip(row["doc_ids"], row["u_loc"])):
            if not needs_global(u_loc, min_local):
                continue
            observation = f"\n\n<information>{SearchEnv.format_docs([{'contents': corpus[doc_id]}])}</information>\n\n"
            jobs.append((r, c))
            starts.append((turn["prefix"] + observation, row["turn"] + 1))
            records.append(rollout)
    results = play(agent, records, search, topk=topk, max_searches=max_searches, starts=starts) if jobs else []
    out = [{**row, "u_glob": [None] * len(row["doc_ids"])} for row in local]
    for (r, c), result in zip(jobs, results):
        out[r]["u_glob"][c] = float(result["em"])
    if stats is not None:
        stats["continuations"] += len(jobs)
    return out


def make_groups(
    labelled: Sequence[dict], seed: int, min_local: float, num_negatives: int, max_positives: int, stats: Counter
) -> list[dict]:
    """Training groups (query, positives, negatives) from labelled turns; skip reasons are counted."""
    rng = random.Random(f"groups|{seed}")
    out = []
    for row in labelled:
        candidates = [
            Candidate(doc_id, u_loc, u_glob, rank)
            for rank, (doc_id, u_loc, u_glob) in enumerate(zip(row["doc_ids"], row["u_loc"], row["u_glob"]))
        ]
        group, reason = build_group(row["retriever_query"], candidates, rng, min_local, max_positives, num_negatives)
        stats[f"group_{reason}"] += 1
        if group is not None:
            out.append({"id": row["id"], "query": group.query, "positives": group.positives,
                        "negatives": group.negatives, "meta": group.meta})  # fmt: skip
    return out

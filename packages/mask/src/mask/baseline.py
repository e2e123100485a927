"""The monolithic baseline: one Search-R1-style agent on the same engine, retriever and top-k.

One policy writes every turn of one growing transcript: `<search>query</search>`, answered by the retrieved
documents as Search-R1's `<information>Doc 1(Title: ...) ...</information>` observation (loss mask 0), until
`<answer>...</answer>` (`shared.rollout.AgentLoop` over `shared.rollout.SearchEnv`, top-k as mask's retrieval tool).
Its context is the whole transcript, so it grows by the documents of every search; mask's calls read a prompt
rebuilt from the memory instead. The reward is the answer's score (`rewards.answer_score`: F1, EM for yes/no golds)
on the last generated token; no answer scores 0.

`oracle_example` is the warm start's record: the gold sub-questions as searches, the real observations of those
searches, then the gold answer, as token ids tokenised turn by turn exactly as the loop produces them (agent turns
mask 1, observations mask 0, a final eos), for `shared.rl.sft.run_sft`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.rollout.agent_loop import AgentLoop
from shared.rollout.envs import Action, SearchEnv
from shared.rollout.trajectory import Trajectory

from mask.config import MaskConfig
from mask.rewards import answer_score

PROMPT_SHORT = "Question: {question}\n"
PROMPT_RELEASE = ("Answer the question. You may search as often as you need by writing <search>query</search>; the "
                  "results come back between <information> and </information>. When you know the answer, write "
                  "<answer>answer</answer> with the answer only.\nQuestion: {question}\n")


def prompt_text(cfg: MaskConfig, question: str) -> str:
    template = PROMPT_SHORT if cfg.prompt.style == "short" else PROMPT_RELEASE
    return template.format(question=question)


def make_env_factory(retriever: Any, topk: int):
    def factory(record: Mapping[str, Any]) -> SearchEnv:
        return SearchEnv(retriever, topk=topk)

    return factory


def agent_loop(cfg: MaskConfig, generator: Any, retriever: Any, temperature: float) -> AgentLoop:
    m = cfg.monolithic
    return AgentLoop(generator, make_env_factory(retriever, cfg.loop.topk), max_turns=m.max_turns,
                     max_new_tokens_per_turn=m.max_new_tokens_per_turn, max_response_tokens=m.max_response_tokens,
                     temperature=temperature)


def with_prompts(cfg: MaskConfig, tokenizer: Any, records: Sequence[Mapping[str, Any]]) -> list[dict]:
    return [{**r, "prompt_ids": tokenizer(prompt_text(cfg, r["question"]), add_special_tokens=False)["input_ids"]}
            for r in records]


def run_episodes(cfg: MaskConfig, generator: Any, retriever: Any, records: Sequence[Mapping[str, Any]], n: int = 1,
                 temperature: float = 1.0, group_ids: Sequence[Any] | None = None,
                 seed: int | None = None) -> list[Trajectory]:
    """n episodes per record (record order); each trajectory's reward is its answer's score."""
    loop = agent_loop(cfg, generator, retriever, temperature)
    recs = with_prompts(cfg, generator.tokenizer, records)
    trajs = loop.run(recs, n=n, group_ids=group_ids, seed=seed)
    for t in trajs:
        rec = records[t.metadata["record_index"]]
        answer = t.metadata.get("answer")
        t.reward = answer_score(answer, list(rec["golden_answers"])) if answer is not None else 0.0
    return trajs


def turn_contexts(traj: Trajectory) -> list[int]:
    """The context (prompt + response so far) at the start of each generated turn."""
    return [len(traj.prompt_ids) + start for start, _ in traj.turn_spans]


def oracle_turns(cfg: MaskConfig, record: Mapping[str, Any], retriever: Any) -> list[tuple[str, str]]:
    """(agent turn, observation) pairs of the gold trace in the real environment, then the answer turn."""
    env = SearchEnv(retriever, topk=cfg.loop.topk)
    env.reset(record)
    turns = []
    for sub in record["sub_questions"]:
        text = f"<search>{sub['question']}</search>"
        turns.append((text, env.step(Action("search", sub["question"], text)).observation))
    turns.append((f"<answer>{record['golden_answers'][0]}</answer>", ""))
    return turns


def oracle_example(cfg: MaskConfig, tokenizer: Any, record: Mapping[str, Any], retriever: Any) -> dict[str, Any]:
    """{input_ids, completion_mask} of the gold transcript (see the module docstring)."""
    from shared.rl.sft import trajectory_to_example

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    traj = Trajectory(prompt_ids=ids(prompt_text(cfg, record["question"])))
    for turn, observation in oracle_turns(cfg, record, retriever):
        traj.append(ids(turn), policy=True)
        if observation:
            traj.append(ids(observation), policy=False)
    return {"id": record.get("id"), **trajectory_to_example(traj, tokenizer.eos_token_id)}


def oracle_texts(cfg: MaskConfig, record: Mapping[str, Any], retriever: Any) -> list[str]:
    """Plain texts of the gold transcript (tokenizer training)."""
    return [prompt_text(cfg, record["question"]), *(t + o for t, o in oracle_turns(cfg, record, retriever))]

"""Per-stage evaluation: one model -> one row of the stage x benchmark table (`recipe.BENCHMARKS`).

- `fin_numeric`: greedy answers to held-out finance arithmetic (test companies, test expressions); the last
  `\\boxed{}` within rel 1e-2 of the gold (integers: exact).
- `fin_choice`: likelihood cloze on held-out glossary terms: for "Revenue minus cost of sales is called" the four
  option terms are scored by their mean log-probability per token as the continuation; right when the gold option
  scores highest. Needs no instruction format, so it is comparable before and after SFT.
- `fin_tool`: greedy episodes in the agentic tool environment (test split, same tools as training); right when the
  final `\\boxed{}` equals the gold. The share of episodes with a valid call is kept as `fin_tool_valid_call`.
- `general_accuracy`: greedy exact match on the calibration arithmetic test split (general ability).
- `filings_ppl`: perplexity of held-out filings (test companies' annual reports), packed like CPT.
- `tatqa_numeric`: greedy answers to the bundled TAT-QA arithmetic questions (table and text in the prompt, cut to
  `tatqa_context_chars`), scale-aware numeric match (`benchmarks.data.finance.tatqa_score`).
A benchmark with 0 items, or outside the stages it is asked for, is None (null), never a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from huijin.recipe import BENCHMARKS, AgentSettings, Recipe


def greedy(model: Any, tok: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int) -> list[str]:
    from shared.generation import HFGenerator, SamplingParams

    gen = HFGenerator(model, tok, batch_size=batch_size)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    outs = gen.generate(ids, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0))
    return [o[0].text for o in outs]


def boxed_accuracy(texts: Sequence[str], golds: Sequence[str]) -> float:
    from shared.rewards.numeric import numeric_match

    from huijin.rewards import boxed_answer

    hits = []
    for text, gold in zip(texts, golds):
        box = boxed_answer(text)
        hits.append(0.0 if box is None else numeric_match(box, gold))
    return sum(hits) / max(1, len(hits))


@torch.no_grad()
def continuation_logprobs(model: Any, tok: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 64
                          ) -> list[float]:
    """Mean log-probability per token of each continuation given its context (right-padded batches)."""
    device = next(model.parameters()).device
    rows = []
    for context, cont in pairs:
        c = tok(context, add_special_tokens=False)["input_ids"]
        x = tok(cont, add_special_tokens=False)["input_ids"]
        rows.append((c + x, len(c), len(x)))
    out: list[float] = []
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i: i + batch_size]
        width = max(len(r[0]) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, (seq, _, _) in enumerate(batch):
            ids[j, : len(seq)] = torch.tensor(seq)
            mask[j, : len(seq)] = 1
        logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        for j, (seq, n_ctx, n_cont) in enumerate(batch):
            targets = torch.tensor(seq[n_ctx:], device=device)
            picked = logp[j, n_ctx - 1: n_ctx - 1 + n_cont].gather(-1, targets[:, None]).squeeze(-1)
            out.append(float(picked.mean()))
    return out


def cloze_accuracy(model: Any, tok: Any, items: Sequence[Mapping[str, Any]], batch_size: int = 64) -> float:
    pairs = [(it["context"], f" {opt}.") for it in items for opt in it["options"]]
    scores = continuation_logprobs(model, tok, pairs, batch_size)
    hits = 0
    for k, it in enumerate(items):
        row = scores[4 * k: 4 * k + 4]
        hits += int(max(range(4), key=lambda i: row[i]) == it["gold_index"])
    return hits / max(1, len(items))


def tool_episodes(model: Any, tok: Any, records: Sequence[Mapping[str, Any]], agent: AgentSettings, recipe: Recipe,
                  split: str, temperature: float = 0.0, batch_size: int = 128, n: int = 1,
                  group_ids: Sequence[Any] | None = None, seed: int | None = None) -> list[Any]:
    """AgentLoop episodes in the finance tool environment of `split`."""
    from shared.generation import HFGenerator
    from shared.rollout.agent_loop import AgentLoop

    from huijin.env import make_env_factory

    factory = make_env_factory(agent, recipe.suite.seed, recipe.suite.n_companies, split)
    loop = AgentLoop(HFGenerator(model, tok, batch_size=batch_size), factory, max_turns=agent.max_turns,
                     max_new_tokens_per_turn=agent.max_new_tokens_per_turn,
                     max_response_tokens=agent.max_response_tokens, temperature=temperature)
    return loop.run(list(records), n=n, group_ids=group_ids, seed=seed)


def tool_accuracy(model: Any, tok: Any, records: Sequence[Mapping[str, Any]], agent: AgentSettings, recipe: Recipe,
                  batch_size: int = 128) -> tuple[float, float]:
    """(share of right final answers, share of episodes with a valid call) of greedy tool episodes."""
    from benchmarks.synthetic.finance import LARGE_METRICS, SMALL_METRICS

    from huijin.env import tool_schemas
    from huijin.rewards import episode_calls, final_text, tool_terms

    trajs = tool_episodes(model, tok, records, agent, recipe, "test", batch_size=batch_size)
    schemas = tool_schemas(SMALL_METRICS + LARGE_METRICS)
    acc = boxed_accuracy([final_text(t) for t in trajs], [r["answer"] for r in records])
    valid = sum(tool_terms(episode_calls(t), schemas)[0] for t in trajs) / max(1, len(trajs))
    return acc, valid


def tatqa_accuracy(model: Any, tok: Any, n: int, context_chars: int, max_new_tokens: int) -> tuple[float, int]:
    """(mean scale-aware score, items scored) on the first `n` TAT-QA arithmetic questions."""
    from benchmarks.data.bundled import load_bundled
    from benchmarks.data.finance import tatqa_prompt, tatqa_score

    records = [r for r in load_bundled("tatqa") if r.answer_type == "arithmetic"][:n]
    texts = greedy(model, tok, [tatqa_prompt(r, context_chars) for r in records], max_new_tokens, batch_size=16)
    scores = [tatqa_score(t, r) for t, r in zip(texts, records)]
    kept = [s for s in scores if s is not None]
    return sum(kept) / max(1, len(kept)), len(kept)


def agent_of(recipe: Recipe) -> AgentSettings:
    """The agent settings of the recipe's agentic stage (the first one), else the defaults."""
    for spec in recipe.stages.values():
        if spec.trainer == "agentic_grpo" and spec.agent is not None:
            return spec.agent
    return AgentSettings()


def evaluate_model(model: Any, tok: Any, recipe: Recipe, final: bool = True) -> dict[str, Any]:
    """Every benchmark of the table for one model (None where skipped), plus side figures."""
    from benchmarks.synthetic.arithmetic import make_arithmetic
    from shared.rl.cpt import perplexity

    from huijin.data import finance_suite

    e = recipe.eval
    fin = finance_suite(recipe.suite.seed, recipe.suite.n_companies)
    want = {b: getattr(e, b) > 0 and (final or b not in e.final_only) for b in BENCHMARKS}
    row: dict[str, Any] = {b: None for b in BENCHMARKS}
    extra: dict[str, Any] = {}
    model.eval()
    if want["fin_numeric"]:
        items = fin.numeric("test", e.fin_numeric)
        row["fin_numeric"] = boxed_accuracy(greedy(model, tok, [r["prompt"] for r in items], e.max_new_tokens,
                                                   e.batch_size), [r["answer"] for r in items])
    if want["fin_choice"]:
        row["fin_choice"] = cloze_accuracy(model, tok, fin.choice("test", e.fin_choice))
    if want["fin_tool"]:
        row["fin_tool"], extra["fin_tool_valid_call"] = tool_accuracy(model, tok, fin.tool("test", e.fin_tool),
                                                                      agent_of(recipe), recipe, e.batch_size)
    if want["general_accuracy"]:
        items = make_arithmetic(e.general_accuracy, seed=0, split="test")
        row["general_accuracy"] = boxed_accuracy(greedy(model, tok, [r.prompt for r in items], e.max_new_tokens,
                                                        e.batch_size), [r.answer for r in items])
    if want["filings_ppl"]:
        docs = [d["contents"] for d in fin.filings("test")[: e.filings_ppl]]
        row["filings_ppl"] = perplexity(model, tok, docs, block_size=256)
    if want["tatqa_numeric"]:
        row["tatqa_numeric"], extra["tatqa_scored"] = tatqa_accuracy(model, tok, e.tatqa_numeric,
                                                                     e.tatqa_context_chars, e.max_new_tokens)
    return {"metrics": row, "extra": extra}

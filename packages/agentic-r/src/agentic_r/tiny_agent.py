"""A trainable search agent: a tiny Qwen2 that writes Search-R1 turns, warm-started on oracle traces, then GRPO.

The agent of the CPU replication's `agent.kind=tiny`. Each round it is built again from the same random init
(the paper re-trains the agent each round) and trained against *that round's* retriever:

1. Oracle traces: each training question's gold sub-questions as `<search>` turns, the observations being what
   the round's retriever returns for them (Search-R1 `<information>Doc i(Title: t) text</information>`), then
   `<answer>gold</answer>`. A trace whose hop passage is not among the observed documents is dropped (counted):
   the answer of the hop would not be readable from the context.
2. SFT on those traces (loss on the agent's turns only, observation tokens masked) through the core's token-id
   SFT (`shared.rl.sft.run_sft` with `{input_ids, completion_mask}` examples).
3. GRPO with `shared.rl.trainer.RLTrainer`, rollouts by `shared.rollout.AgentLoop` in `SearchEnv` over the round's
   retriever, reward = EM of the final answer (observation tokens masked by the loop).

The tiny model reads a short prompt (`TINY_PROMPT`) instead of Search-R1's long instruction and writes no
`<think>` blocks: a 2-layer model learns the copy-and-read pattern of the synthetic KB in minutes on CPU, not the
full instruction. Token ids are built the same way everywhere (prompt, then each agent turn and each observation
tokenised separately, `encode_transcript`), so SFT, GRPO rollouts and the pipeline's text-level `play` agree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from shared.generation import HFGenerator, SamplingParams
from shared.rewards import exact_match
from shared.rollout.envs import Action, SearchEnv

TINY_PROMPT = "Question: {question}\n"
STOPS = ("</search>", "</answer>")
_OBSERVATION = re.compile(r"(\n\n<information>.*?</information>\n\n)", re.DOTALL)


@dataclass
class TinyAgentSettings:
    """Size and training of the tiny agent (defaults: the calibration model, see cpu-calibration.md)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 700
    max_positions: int = 1024
    sft_steps: int = 500
    sft_lr: float = 3e-3
    sft_batch: int = 16
    sft_warmup: int = 30
    rl_steps: int = 20
    rl_lr: float = 3e-5
    prompts_per_step: int = 8
    generations: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 40  # per turn
    max_turns: int = 5
    threads: int = 1  # torch threads while the agent trains: 2 threads on a shared 2-core box ran far slower


def encode_transcript(tokenizer: Any, question: str, transcript: str) -> list[int]:
    """Prompt ids, then every agent turn and observation of the transcript tokenised on its own."""
    ids = list(tokenizer(TINY_PROMPT.format(question=question), add_special_tokens=False)["input_ids"])
    for piece in _OBSERVATION.split(transcript):
        if piece:
            ids += tokenizer(piece, add_special_tokens=False)["input_ids"]
    return ids


def oracle_turns(record: Mapping[str, Any], retriever: Any, topk: int) -> tuple[list[tuple[str, str]], bool]:
    """(agent turn, observation) pairs of the gold trace, and whether every hop's passage was observed."""
    env = SearchEnv(retriever, topk=topk)
    env.reset(record)
    turns, readable = [], True
    for sub in record.get("sub_questions", []):
        text = f"<search>{sub['question']}</search>"
        result = env.step(Action("search", sub["question"], text))
        readable &= str(sub["passage_id"]) in {str(d) for d in result.info.get("doc_ids", [])}
        turns.append((text, result.observation))
    turns.append((f"<answer>{record['golden_answers'][0]}</answer>", ""))
    return turns, readable


def sft_example(tokenizer: Any, question: str, turns: Sequence[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """(input ids, loss mask): 1 on the agent's turn tokens and the final eos, 0 on prompt and observations."""
    ids = list(tokenizer(TINY_PROMPT.format(question=question), add_special_tokens=False)["input_ids"])
    mask = [0] * len(ids)
    for turn, observation in turns:
        t = tokenizer(turn, add_special_tokens=False)["input_ids"]
        ids += t
        mask += [1] * len(t)
        if observation:
            o = tokenizer(observation, add_special_tokens=False)["input_ids"]
            ids += o
            mask += [0] * len(o)
    ids.append(tokenizer.eos_token_id)
    mask.append(1)
    return ids, mask


def build_tiny_agent(texts: Sequence[str], settings: TinyAgentSettings, out_dir: str | Path, seed: int):
    """A random tiny Qwen2 with a byte-level BPE tokenizer trained on `texts` (corpus and questions)."""
    from shared.modeling import load_model
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    tok = build_tokenizer(list(texts), kind="bpe", vocab_size=settings.vocab_size)
    path = tiny_causal_lm(Path(out_dir), tokenizer=tok, hidden=settings.hidden, layers=settings.layers,
                          heads=settings.heads, ffn=settings.ffn, seed=seed, max_positions=settings.max_positions)
    return load_model(str(path), kind="causal", dtype="float32", device="cpu")


def sft(model: torch.nn.Module, tokenizer: Any, examples: Sequence[tuple[list[int], list[int]]],
        settings: TinyAgentSettings, seed: int, progress: bool = True) -> list[float]:
    """Masked next-token loss on the agent's turns through the core's token-id SFT (`shared.rl.sft.run_sft`: TRL,
    AdamW, warm-up then cosine, grad-norm clip 1); returns the loss of every step. (Before 0.3.0 a loop of our own.)"""
    import tempfile

    from shared.rl.sft import SFTSettings, run_sft

    if not examples:
        raise ValueError("no oracle trace to train the agent on (all dropped: no hop passage observed)")
    threads = torch.get_num_threads()
    records = [{"input_ids": list(ids), "completion_mask": list(mask)} for ids, mask in examples]
    with tempfile.TemporaryDirectory(prefix="agent-sft-") as out:  # TRL's output folder; nothing is saved there
        config = SFTSettings(output_dir=out, steps=settings.sft_steps, lr=settings.sft_lr,
                             batch_size=settings.sft_batch, warmup_steps=settings.sft_warmup, lr_schedule="cosine",
                             max_length=settings.max_positions, seed=seed, logging_steps=1, threads=settings.threads)
        model, logs = run_sft(model, tokenizer, records, config, source="oracle traces")
    model.eval()
    torch.set_num_threads(threads)
    return [float(x["loss"]) for x in logs if "loss" in x and "step" in x]


class TinyLLMAgent:
    """The trained tiny model as a pipeline agent: greedy turns from (question, transcript) pairs."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, max_new_tokens: int = 40,
                 batch_size: int = 64) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.generator = HFGenerator(model, tokenizer, batch_size=batch_size)
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, stop=STOPS)

    def next_turns(self, items: Sequence[tuple[str, str]]) -> list[str]:
        if not items:
            return []
        prompts = [encode_transcript(self.tokenizer, q, t) for q, t in items]
        return [outs[0].text for outs in self.generator.generate(prompts, self.params)]


def em_reward(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> list[float]:
    """GRPO reward: EM of the trajectory's final `<answer>` (0 without one)."""
    return [float(exact_match(t.metadata.get("answer", ""), list(r["golden_answers"]))) if "answer" in t.metadata
            else 0.0 for t, r in zip(trajs, records)]


def rl_train(model: torch.nn.Module, tokenizer: Any, records: Sequence[Mapping[str, Any]], search: Any,
             settings: TinyAgentSettings, topk: int, out_dir: str | Path, seed: int,
             progress: bool = True) -> list[dict]:
    """GRPO with AgentLoop rollouts in SearchEnv over `search` (a `ServiceSearch`); checkpoints under out_dir."""
    from shared.rl.trainer import RLConfig, RLTrainer
    from shared.rollout.agent_loop import AgentLoop

    recs = [{**r, "prompt_ids": tokenizer(TINY_PROMPT.format(question=r["question"]),
                                          add_special_tokens=False)["input_ids"]} for r in records]
    cfg = RLConfig(output_dir=str(out_dir), seed=seed, steps=settings.rl_steps,
                   prompts_per_step=settings.prompts_per_step, generations=settings.generations,
                   max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, lr=settings.rl_lr,
                   advantage="grpo", checkpoint_every=max(1, settings.rl_steps // 2), keep_checkpoints=1,
                   threads=settings.threads, tensorboard=False, progress=progress)
    generator = HFGenerator(model, tokenizer, batch_size=64)
    loop = AgentLoop(generator, lambda rec: SearchEnv(search.for_question(rec["question"]), topk=topk),
                     max_turns=settings.max_turns, max_new_tokens_per_turn=settings.max_new_tokens,
                     max_response_tokens=settings.max_positions // 2, temperature=settings.temperature)
    holder: dict[str, Any] = {}

    def rollout_fn(batch: list, n: int, group_ids: list) -> list:
        step = holder["trainer"].step if "trainer" in holder else 0
        return loop.run(batch, n=n, group_ids=group_ids, seed=seed * 100_003 + step * 997 + int(group_ids[0]))

    threads = torch.get_num_threads()
    trainer = RLTrainer(cfg, model, tokenizer, recs, em_reward, generator=generator, rollout_fn=rollout_fn)
    holder["trainer"] = trainer
    history = trainer.train(resume=True)
    trainer.policy.eval()
    torch.set_num_threads(threads)  # RLTrainer set the agent's thread count; the retriever stages keep theirs
    return history


def oracle_examples(tokenizer: Any, records: Sequence[Mapping[str, Any]], search: Any, topk: int,
                    stats: Counter) -> list[tuple[list[int], list[int]]]:
    """SFT examples from the oracle traces of `records` under the round's retriever; unreadable traces dropped."""
    search.prefetch([search.for_question(r["question"]).full_query(s["question"])
                     for r in records for s in r.get("sub_questions", [])], topk)
    examples = []
    for record in records:
        turns, readable = oracle_turns(record, search.for_question(record["question"]), topk)
        if not readable:
            stats["oracle_unreadable"] += 1
            continue
        examples.append(sft_example(tokenizer, record["question"], turns))
    stats["oracle_traces"] += len(examples)
    return examples

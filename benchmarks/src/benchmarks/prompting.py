"""Prompt preparation of `benchmarks eval` in lm-evaluation-harness's manner: few-shot prefixes, chat templates, and
a progress bar over generation.

Few-shot (`--num_fewshot k`): each evaluated example is preceded by k solved examples of the same task, drawn with
a seeded RNG from the task's examples that are NOT evaluated in this run (those past `--limit`), or, when every
example is evaluated, from the others (never the example itself) — lm-eval's rule for tasks without a train split.
A shot is the shot's prompt followed by its gold answer in the form the task extracts (`\\boxed{gold}` for boxed
tasks, ` gold` for first-line tasks), shots separated by a blank line.

Chat template (`--apply_chat_template`): the (few-shot) prompt becomes one user turn rendered by the tokenizer's
chat template with the generation prompt added; a tokenizer without a template is an error, never a silent no-op.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from benchmarks.tasks import Example, Task


def shot_text(task: Task, example: Example) -> str:
    """One solved example: its prompt and its first gold answer as the task's extraction reads it."""
    gold = example.golds[0] if example.golds else ""
    answer = f" \\boxed{{{gold}}}" if task.extraction == "boxed" else f" {gold}"
    return example.prompt + answer


def fewshot_prompts(task: Task, evaluated: Sequence[Example], pool: Sequence[Example], k: int,
                    seed: int = 0) -> list[str]:
    """Prompts of `evaluated` with k shots each; shots come from `pool` minus the evaluated example itself."""
    if k <= 0:
        return [e.prompt for e in evaluated]
    outside = [e for e in pool if e.id not in {x.id for x in evaluated}]
    prompts = []
    for i, example in enumerate(evaluated):
        candidates = outside or [e for e in pool if e.id != example.id]
        if len(candidates) < k:
            raise ValueError(f"task {task.name}: --num_fewshot {k} needs {k} examples besides the evaluated one, "
                             f"the task has {len(candidates)}")
        shots = random.Random(seed * 1_000_003 + i).sample(list(candidates), k)
        prompts.append("\n\n".join([*(shot_text(task, s) for s in shots), example.prompt]))
    return prompts


def chat_prompts(prompts: Sequence[str], tokenizer: Any) -> list[str]:
    """Each prompt as one user turn in the tokenizer's chat template, ready for the assistant's reply."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--apply_chat_template: the model's tokenizer has no chat template (a base model?); run "
                         "without it")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in prompts]


class ProgressGenerator:
    """A Generator that generates in chunks of `chunk` prompts with a tqdm bar (same outputs as one call for the
    deterministic greedy decoding evaluation uses)."""

    def __init__(self, generator: Any, chunk: int, desc: str, enabled: bool = True) -> None:
        self.generator, self.chunk, self.desc, self.enabled = generator, max(1, chunk), desc, enabled
        self.tokenizer = getattr(generator, "tokenizer", None)

    def generate(self, prompts, params):
        from tqdm.auto import tqdm

        out = []
        with tqdm(total=len(prompts), desc=self.desc, unit="ex", disable=not self.enabled) as bar:
            for start in range(0, len(prompts), self.chunk):
                part = prompts[start:start + self.chunk]
                out += self.generator.generate(part, params)
                bar.update(len(part))
        return out

    def update_weights(self, model_or_state_dict: Any) -> None:
        self.generator.update_weights(model_or_state_dict)

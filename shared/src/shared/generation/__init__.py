"""Text generation behind one interface: ``make_generator('hf' | 'vllm', ...)`` returns a ``Generator``.

Exports the contract types (SamplingParams, Completion, Generator) and both backends; vLLM is imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.generation.base import Completion, FinishReason, Generator, SamplingParams, check_prompts, cut_at_stop
from shared.generation.hf import HFGenerator, filter_logits
from shared.generation.vllm import VLLMGenerator


def make_generator(backend: str, model: Any, tokenizer: Any = None, **kwargs: Any) -> Generator:
    """``backend='hf'``: ``model`` is a module (with ``tokenizer``) or a path loaded through ``load_model``
    (kwargs ``dtype``, ``device``, ``batch_size``). ``backend='vllm'``: ``model`` is a path or hub id."""
    if backend == "hf":
        batch_size = kwargs.pop("batch_size", 32)
        if isinstance(model, str | Path):
            from shared.modeling import load_model

            model, tokenizer = load_model(model, kind="causal", **kwargs)
        elif tokenizer is None:
            raise ValueError("make_generator('hf', module) needs the tokenizer too")
        return HFGenerator(model, tokenizer, batch_size=batch_size)
    if backend == "vllm":
        return VLLMGenerator(str(model), tokenizer=tokenizer, **kwargs)
    raise ValueError(f"unknown generation backend {backend!r}; use 'hf' or 'vllm'")


__all__ = ["Completion", "FinishReason", "Generator", "HFGenerator", "SamplingParams", "VLLMGenerator",
           "check_prompts", "cut_at_stop", "filter_logits", "make_generator"]

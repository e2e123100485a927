"""vLLM generation backend (GPU, optional `vllm` extra): same Generator interface as the HF backend.

``vllm`` is imported only when a VLLMGenerator is created, so the package imports and its tests run without it.
Outputs are converted to the shared ``Completion`` type by ``completion_from_vllm``, which is pure and unit-tested
against plain objects shaped like vLLM's ``CompletionOutput``. Logprobs are requested as "processed" (after
temperature) where the installed vLLM supports ``logprobs_mode`` so they match the HF backend's definition.

Entropies (``SamplingParams.entropy``): vLLM returns logprobs of the top-k tokens only, so the entropy is
approximated by -sum p log p over the returned entries of each position (at least ``ENTROPY_TOPK`` of them, plus
the sampled token). It is a lower bound of the exact entropy (the missing tail only adds non-negative terms) and
equals it when those tokens hold all the mass; with ``logprobs_mode`` "processed_logprobs" the entries are after
temperature, as in the HF backend. For exact values score the completions with a forward pass
(``shared.rl.losses.entropy_from_logits``), as the trainer does. Only the pure conversion runs on CPU here; the
live engine test runs where vLLM and a GPU are present.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from shared.generation.base import Completion, Prompts, SamplingParams, check_prompts, cut_at_stop

ENTROPY_TOPK = 20  # logprobs per position requested for the entropy approximation (vLLM's default max_logprobs)


def _logprob_value(entry: Any) -> float:
    return float(entry.logprob if hasattr(entry, "logprob") else entry)


def completion_from_vllm(output: Any, params: SamplingParams, prompt_token_ids: list[int] | None = None) -> Completion:
    """Convert one vLLM ``CompletionOutput`` (text, token_ids, logprobs, finish_reason, stop_reason)."""
    token_ids = [int(t) for t in output.token_ids]
    logprobs = top = entropies = None
    if (params.logprobs or params.top_logprobs or params.entropy) and output.logprobs is not None:
        logprobs, top, entropies = [], [], []
        for tok, entries in zip(token_ids, output.logprobs):
            logprobs.append(_logprob_value(entries[tok]))
            ranked = sorted(entries.items(), key=lambda kv: -_logprob_value(kv[1]))
            top.append([(int(t), _logprob_value(e)) for t, e in ranked[: params.top_logprobs]])
            values = [_logprob_value(e) for _, e in ranked]
            entropies.append(-sum(math.exp(v) * v for v in values if v > float("-inf")))
    text = output.text
    if output.finish_reason == "length":
        reason = "length"
    elif isinstance(output.stop_reason, str):
        reason = "stop"
        end = cut_at_stop(text, params.stop)  # vLLM keeps the stop string when include_stop_str_in_output
        text = text[:end] if end is not None else text
    else:
        reason = "eos"  # finished on an end-of-sequence / stop token id
    return Completion(
        text=text,
        token_ids=token_ids,
        logprobs=logprobs if params.logprobs else None,
        top_logprobs=top if params.top_logprobs else None,
        finish_reason=reason,
        prompt_token_ids=list(prompt_token_ids or []),
        entropies=entropies if params.entropy else None,
    )


class VLLMGenerator:
    """Generator backed by ``vllm.LLM``; ``update_weights`` pushes a state dict into the running engine."""

    def __init__(self, model: str, tokenizer: str | None = None, dtype: str = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.5, max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, **engine_kwargs: Any) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError("VLLMGenerator needs vLLM: install the GPU group (uv sync --no-group cpu --group gpu) "
                              "or use make_generator('hf', ...)") from err
        self._vllm = vllm
        kwargs = dict(model=str(model), tokenizer=str(tokenizer or model), dtype=dtype, seed=seed,
                      gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
                      **engine_kwargs)
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.setdefault("logprobs_mode", "processed_logprobs")
        try:
            self.llm = vllm.LLM(**kwargs)
        except TypeError:  # older vLLM without logprobs_mode: raw-logit logprobs
            kwargs.pop("logprobs_mode")
            self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        model_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        self.max_context_tokens = getattr(model_config, "max_model_len", None)  # the rollout context guard reads it
        self.eos_token_ids = self._generation_eos_ids(str(model))

    @staticmethod
    def _generation_eos_ids(model: str) -> set[int]:
        """The eos ids of the model's generation config (a list on chat models); vLLM stops on them too."""
        try:
            from transformers import GenerationConfig

            extra = GenerationConfig.from_pretrained(model).eos_token_id
        except (OSError, ValueError):  # no generation_config.json: the tokenizer's eos is all there is
            return set()
        if extra is None:
            return set()
        return {int(extra)} if isinstance(extra, int) else {int(x) for x in extra}

    def _sampling(self, params: SamplingParams) -> Any:
        want = max(params.top_logprobs, 1) if (params.logprobs or params.top_logprobs) else None
        if params.entropy:
            want = max(want or 0, ENTROPY_TOPK)
        return self._vllm.SamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1, max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None, include_stop_str_in_output=True, seed=params.seed, logprobs=want,
            ignore_eos=params.ignore_eos,
        )

    def generate(self, prompts: Prompts, params: SamplingParams) -> list[list[Completion]]:
        if len(prompts) == 0:
            return []
        params.validate()
        kind = check_prompts(prompts)
        if kind == "ids":
            inputs = [{"prompt_token_ids": list(map(int, p))} for p in prompts]
        else:
            inputs = list(prompts)
        outputs = self.llm.generate(inputs, self._sampling(params), use_tqdm=False)
        return [[completion_from_vllm(c, params, list(o.prompt_token_ids or [])) for c in o.outputs]
                for o in outputs]

    def update_weights(self, model_or_state_dict: Any) -> None:
        """Load new weights into the engine's model (vLLM ``load_weights``), e.g. after an RL step."""
        state = model_or_state_dict
        if hasattr(state, "state_dict"):
            state = state.state_dict()
        weights = [(k.removeprefix("base_model.model."), v) for k, v in dict(state).items()]
        engine = self.llm.llm_engine
        executor = getattr(engine, "model_executor", None)
        worker = getattr(executor, "driver_worker", None)
        runner = getattr(getattr(worker, "worker", worker), "model_runner", None)
        if runner is not None and hasattr(runner, "model"):
            runner.model.load_weights(weights)
        elif hasattr(self.llm, "collective_rpc"):
            self.llm.collective_rpc(_load_weights_rpc, args=(weights,))
        else:
            raise RuntimeError("this vLLM version exposes no way to load weights in place; recreate the generator")
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights


def _load_weights_rpc(worker: Any, weights: Iterable[tuple[str, Any]]) -> None:
    worker.model_runner.model.load_weights(weights)

"""The generation contract shared by every backend: sampling parameters, completions and the Generator protocol.

Method packages (RL rollouts, tree search, evaluation) only see these types, so the HF backend on CPU and the vLLM
backend on GPUs are interchangeable. Validation lives here so both backends reject bad parameters the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "eos", "context"]  # "context": cut at the model's context limit


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy; ``top_k == 0`` and ``top_p == 1`` disable those filters.

    ``logprobs``: return the log-probability of each generated token under softmax(logits / temperature)
    (temperature 1 when greedy). ``top_logprobs``: also return the k most likely (token_id, logprob) per position.
    ``entropy``: return the entropy of softmax(logits / temperature) at each generated position (before top-k /
    top-p filtering; temperature 1 when greedy). The HF backend computes it exactly over the whole vocabulary; the
    vLLM backend approximates it from the top ``max(top_logprobs, ENTROPY_TOPK)`` logprobs (see its module).
    ``stop``: generation ends right after the first occurrence of any of these strings (kept in the text).
    ``ignore_eos``: do not stop at end-of-sequence tokens (fixed-length throughput measurements).
    """

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False  # keep generating past end tokens (fixed-length benchmarks)
    entropy: bool = False  # per-token entropies of softmax(logits / T) in Completion.entropies

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # a single stop string given bare
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be an int >= 0 (0 = off), got {self.top_k!r}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"SamplingParams.n must be an int >= 1, got {self.n!r}")
        if not isinstance(self.top_logprobs, int) or self.top_logprobs < 0:
            raise ValueError(f"SamplingParams.top_logprobs must be an int >= 0, got {self.top_logprobs!r}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise ValueError(f"SamplingParams.stop entries must be non-empty strings, got {s!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    """One generated continuation.

    ``token_ids`` are the generated ids only (ending at the eos token or at the token that completed the stop
    string); ``logprobs[i]`` belongs to ``token_ids[i]``; ``top_logprobs[i]`` lists (token_id, logprob) best first;
    ``entropies[i]`` is the entropy of the distribution ``token_ids[i]`` was drawn from (when asked for).
    """

    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    top_logprobs: list[list[tuple[int, float]]] | None = None
    finish_reason: FinishReason = "length"
    prompt_token_ids: list[int] = field(default_factory=list)
    entropies: list[float] | None = None


Prompts = Sequence[str] | Sequence[Sequence[int]]


@runtime_checkable
class Generator(Protocol):
    """Batch of prompts (strings or token-id lists) + params -> per prompt, ``params.n`` completions."""

    tokenizer: Any

    def generate(self, prompts: Prompts, params: SamplingParams) -> list[list[Completion]]: ...

    def update_weights(self, model_or_state_dict: Any) -> None: ...


def check_prompts(prompts: Prompts, vocab_size: int | None = None) -> str:
    """Validate a prompt batch; return ``"text"`` or ``"ids"``. Raise ValueError naming the bad prompt index."""
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings or token-id lists, not a single string")
    kind = ""
    for i, p in enumerate(prompts):
        this = "text" if isinstance(p, str) else "ids"
        if kind and this != kind:
            raise ValueError(f"prompt {i}: mixes strings and token-id lists in one batch")
        kind = this
        if this == "text":
            if not p:
                raise ValueError(f"prompt {i} is an empty string; give at least one character or token id")
            continue
        ids = list(p)
        if not ids:
            raise ValueError(f"prompt {i} is an empty token-id list")
        for t in ids:
            if isinstance(t, bool) or not isinstance(t, int) or t < 0 or (vocab_size is not None and t >= vocab_size):
                raise ValueError(f"prompt {i}: token id {t!r} is not an int in [0, {vocab_size})")
    return kind or "text"


def cut_at_stop(text: str, stops: Sequence[str]) -> int | None:
    """End index just after the earliest stop string in ``text`` (ties: the longest), or None."""
    best: tuple[int, int] | None = None
    for s in stops:
        pos = text.find(s)
        if pos >= 0:
            end = pos + len(s)
            if best is None or (pos, -end) < (best[0], -best[1]):
                best = (pos, end)
    return None if best is None else best[1]


def end_token_ids(generator: Any) -> set[int]:
    """Every token id that ends a generation of ``generator``: its own ``eos_token_ids`` when it has them (the HF
    backend adds the model's generation-config ids, which may be a list, e.g. ``<|im_end|>`` and ``<|endoftext|>``),
    else the tokenizer's ``eos_token_id``."""
    ids = getattr(generator, "eos_token_ids", None)
    out = {int(i) for i in ids} if ids else set()
    eos = getattr(getattr(generator, "tokenizer", None), "eos_token_id", None)
    if eos is not None:
        out.add(int(eos))
    return out


def context_limit(generator: Any) -> int | None:
    """The most tokens (prompt + generated) the generator's model attends to, when it says: its
    ``max_context_tokens`` attribute (the HF backend reads ``max_position_embeddings``), else None (unknown)."""
    limit = getattr(generator, "max_context_tokens", None)
    return int(limit) if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None

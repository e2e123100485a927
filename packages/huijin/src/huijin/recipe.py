"""The recipe: a YAML file whose `stages` are an ordered name -> stage mapping (so `stages.reasoning_rl.rl.lr=1e-5`
addresses a stage on the command line), validated before any model is built, with errors naming stage and key.

A stage names its `trainer` (`cpt`, `sft`, `grpo`, `agentic_grpo`, `general_rl`), its data `mixture` (source name
-> ratio; `shared.rl.mixture.MixtureStream` draws exact proportions), its `reward` list (RL stages; names from
`huijin.rewards.REWARDS`) and the trainer's own section (`cpt`, `sft` + optional `stop`, `rl`, `agent`, `judge`,
`rm`). Sources are the built-in finance-suite sources (`huijin.data.BUILTIN_SOURCES`) or JSONL files declared under
`sources`. The recipe's top level holds the model, the synthetic suite, the evaluation and the seed; the runner
turns each stage into a `shared.stages.Stage` keyed by the chain of stage specs up to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.config import ConfigError, config_to_dict, load_config
from shared.rl.cpt import LMSettings
from shared.rl.rm import RMSettings
from shared.rl.sft import SFTSettings
from shared.rl.trainer import RLConfig

TRAINERS = ("cpt", "sft", "grpo", "agentic_grpo", "general_rl")
SECTION_OF = {"cpt": "cpt", "sft": "sft", "grpo": "rl", "agentic_grpo": "rl", "general_rl": "rl"}
BENCHMARKS = ("fin_numeric", "fin_choice", "fin_tool", "general_accuracy", "filings_ppl", "tatqa_numeric")
_STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass
class ModelSettings:
    path: str = ""  # a saved causal LM; empty = the calibration model below, built on the fly
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    max_positions: int = 2048  # TAT-QA prompts are long; the finance suite needs ~300
    # random: the calibration model from scratch; arithmetic: a general base model, i.e. the calibration model SFT'd
    # on general arithmetic until `base_target` validation accuracy (shared.rl.warmstart.sft_arithmetic_policy,
    # cached per seed), as the paper starts from a general LLM, not from random weights. `base_cache` "" keeps it in
    # the shared cache (`shared.rl.warmstart.shared_cache_root()`), where sage's warm start is the same model
    base: Literal["random", "arithmetic"] = "random"
    base_target: float = 0.4
    base_seed: int = 0  # one general base model for every training seed (as one pretrained LLM); -1: the recipe seed
    base_steps: int = 1000
    base_cache: str = ""  # a folder to keep the base in instead (not part of any stage key)


@dataclass
class GpuSettings:
    """What `--dry-run` assumes for one training process (`shared.dryrun.DryRunSpec`)."""

    gpus: int = 8  # world size
    sharding: str = "fsdp"  # none | ddp | zero1 | zero2 | zero3 | fsdp
    gpu_gib: float = 80.0
    micro_batch: int = 1
    seq_len: int = 8192
    gradient_checkpointing: bool = True
    rollout_tokens: int = 0  # tokens whose KV cache a colocated vLLM engine keeps


@dataclass
class SuiteSettings:
    seed: int = 0  # the synthetic finance suite (companies, splits); fixed across training seeds
    n_companies: int = 600


@dataclass
class SourceFile:
    path: str = ""
    kind: Literal["text", "records"] = "records"  # text: {"text"}; records: {"prompt", "completion", "answer"}


@dataclass
class EvalSettings:
    """Per-stage evaluation: item counts per benchmark (0 = skip; the table holds null)."""

    fin_numeric: int = 500
    fin_choice: int = 500
    fin_tool: int = 500
    general_accuracy: int = 500
    filings_ppl: int = 200  # held-out filings documents (test companies)
    tatqa_numeric: int = 500
    tatqa_context_chars: int = 1500
    batch_size: int = 128
    max_new_tokens: int = 48
    evaluate_init: bool = True  # also score the model before the first stage (the table's "init" row)
    final_only: list[str] = field(default_factory=list)  # benchmarks scored only after the recipe's last stage


@dataclass
class StopSettings:
    """SFT stops once the dev metric reaches `target` (measured every `every` steps), else at `sft.steps`."""

    metric: Literal["fin_numeric", "general_accuracy"] = "fin_numeric"
    target: float = 0.38
    every: int = 50
    dev_items: int = 200


@dataclass
class AgentSettings:
    max_turns: int = 3
    max_new_tokens_per_turn: int = 64
    max_response_tokens: int = 256
    tools: list[str] = field(default_factory=lambda: ["add", "subtract", "calculate", "table_lookup",
                                                      "search_filings", "python"])
    timeout_s: float = 5.0
    memory_mb: int = 512
    valid_weight: float = 0.1  # inferred: 0.1 for a valid call, 0.1 for an executed call, 1.0 for a correct answer
    executed_weight: float = 0.1
    correct_weight: float = 1.0


@dataclass
class JudgeSettings:
    """The rubric judge of general RL: `endpoint` empty = the CPU stand-in (a deterministic rubric served by the
    core's loopback ChatServer and read through the real JudgeClient); else an OpenAI-compatible URL."""

    endpoint: str = ""
    model: str = "rubric-stand-in"
    scale: float = 10.0
    workers: int = 4


@dataclass
class RMStageSettings:
    """`reward: [rm]`: a reward model trained at the start of the stage on (correct, incorrect) solution pairs."""

    pairs: int = 2000
    held_out: int = 200
    train: RMSettings = field(default_factory=lambda: RMSettings(steps=200, lr=1e-3, batch_size=16))


@dataclass
class StageSpec:
    trainer: str = ""  # one of TRAINERS
    mixture: dict[str, float] = field(default_factory=dict)
    reward: list[str] = field(default_factory=list)
    records: int = 20_000  # examples drawn from the mixture (texts for CPT, records for SFT, the RL prompt pool)
    cpt: LMSettings | None = None
    sft: SFTSettings | None = None
    stop: StopSettings | None = None
    rl: RLConfig | None = None
    agent: AgentSettings | None = None
    judge: JudgeSettings | None = None
    rm: RMStageSettings | None = None


@dataclass
class Recipe:
    output_dir: str = "runs/huijin"
    seed: int = 0
    threads: int = 1
    model: ModelSettings = field(default_factory=ModelSettings)
    suite: SuiteSettings = field(default_factory=SuiteSettings)
    sources: dict[str, SourceFile] = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)
    gpu: GpuSettings = field(default_factory=GpuSettings)
    stages: dict[str, StageSpec] = field(default_factory=dict)

    def validate(self) -> None:
        validate_recipe(self)


def _err(stage: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"stages.{stage}.{key}: {message}" if key else f"stages.{stage}: {message}")


def validate_recipe(recipe: Recipe, check_files: bool = True) -> None:
    """Cross-field checks the types cannot express; every error names the stage and the key."""
    from huijin.data import BUILTIN_SOURCES
    from huijin.rewards import REWARDS

    if not recipe.stages:
        raise ConfigError("the recipe has no stages: give --config RECIPE, a YAML file whose 'stages' map name -> stage")
    sources = {**{k: v.kind for k, v in BUILTIN_SOURCES.items()}, **{k: v.kind for k, v in recipe.sources.items()}}
    for name, spec in recipe.stages.items():
        if not _STAGE_NAME.match(name) or name == "init":
            raise ConfigError(f"stages.{name}: a stage name is letters, digits, '_' and '-', starting with a letter "
                              f"(and not 'init')")
        if spec.trainer not in TRAINERS:
            raise _err(name, "trainer", f"{spec.trainer!r} is not one of [{', '.join(TRAINERS)}]")
        section = SECTION_OF[spec.trainer]
        if getattr(spec, section) is None:
            raise _err(name, "", f"trainer {spec.trainer!r} needs a {section!r} section")
        for other in ("cpt", "sft", "rl"):
            if other != section and getattr(spec, other) is not None:
                raise _err(name, other, f"a {spec.trainer!r} stage takes no {other!r} section (its section is "
                                        f"{section!r})")
        if spec.stop is not None and spec.trainer != "sft":
            raise _err(name, "stop", "only sft stages stop at a dev target")
        if not spec.mixture:
            raise _err(name, "mixture", "empty: give source -> ratio, e.g. {fin_numeric: 1}")
        want = "text" if spec.trainer == "cpt" else "records"
        for source, ratio in spec.mixture.items():
            if source not in sources:
                raise _err(name, f"mixture.{source}", f"unknown source {source!r}; known: {sorted(sources)} (declare "
                                                      f"file sources under 'sources')")
            if isinstance(ratio, bool) or not ratio > 0:
                raise _err(name, f"mixture.{source}", f"must be > 0, got {ratio!r}")
            if sources[source] != want:
                raise _err(name, f"mixture.{source}", f"a {spec.trainer} stage needs {want} sources; {source!r} "
                                                      f"gives {sources[source]}")
            if spec.trainer == "agentic_grpo" and source in BUILTIN_SOURCES and source != "fin_tool":
                raise _err(name, f"mixture.{source}", "agentic RL runs on tool questions (fin_tool or a file source)")
            if check_files and source in recipe.sources:
                path = Path(recipe.sources[source].path)
                if not path.is_file():
                    raise _err(name, f"mixture.{source}", f"source file not found: {path}")
        if spec.records < 1:
            raise _err(name, "records", f"must be >= 1, got {spec.records}")
        _check_rewards(name, spec, REWARDS)
    if recipe.model.max_positions < 64:
        raise ConfigError(f"model.max_positions must be >= 64, got {recipe.model.max_positions}")


def _check_rewards(name: str, spec: StageSpec, rewards: dict) -> None:
    if spec.trainer in ("cpt", "sft"):
        if spec.reward:
            raise _err(name, "reward", f"a {spec.trainer} stage has no rewards, got {spec.reward}")
        return
    if not spec.reward:
        raise _err(name, "reward", f"an RL stage needs rewards; known: {sorted(rewards)}")
    for r in spec.reward:
        if r not in rewards:
            raise _err(name, "reward", f"unknown reward {r!r}; known rewards: {sorted(rewards)}")
        if spec.trainer not in rewards[r].trainers:
            raise _err(name, "reward", f"reward {r!r} is for {list(rewards[r].trainers)} stages, not "
                                       f"{spec.trainer}")
    scored = {k for r in spec.reward for k in rewards[r].kinds}
    from huijin.data import BUILTIN_SOURCES

    for source in spec.mixture:
        kind = BUILTIN_SOURCES[source].record_kind if source in BUILTIN_SOURCES else "file"
        if kind not in scored:
            raise _err(name, "reward", f"no reward in {spec.reward} scores source {source!r} (records of kind "
                                       f"{kind!r})")


def load_recipe(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read and validate a recipe (ConfigError names the file, or the stage and key)."""
    recipe = load_config(Recipe, path, list(overrides))
    validate_recipe(recipe)
    return recipe


def stage_dict(recipe: Recipe, name: str) -> dict:
    """The stage's spec as plain data (the part of the stage key that the stage itself contributes)."""
    return config_to_dict(recipe.stages[name])

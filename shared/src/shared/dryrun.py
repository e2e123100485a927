"""Dry run of a paper-scale config: build the model on the `meta` device, count parameters, estimate GPU memory.

A researcher about to launch a 7B run wants to know, before any GPU is allocated or any weight downloaded, that the
config names a real architecture, how many parameters train, and whether one process fits on the card. `dry_run`
answers from the model's configuration alone:

- the architecture comes from a local folder's `config.json` or from `model_configs/architectures.json`, which holds
  the published configurations of the models the packages' GPU configs name (parameter counts checked against the
  model cards in `shared/tests/test_dryrun.py`); nothing is downloaded;
- the model is instantiated on the `meta` device (shapes only, no memory), so parameter counts are exact;
- memory per process is a stated sum, not a measurement (what each term assumes is in `estimate_memory`): weights,
  gradients and AdamW state by dtype and sharding (none/DDP, ZeRO-1/2, FSDP/ZeRO-3), saved activations under
  gradient checkpointing plus the float32 logits of one micro-batch, a frozen reference model for KL, and the KV cache
  of colocated vLLM rollouts.

`python -m shared.dryrun --model Qwen/Qwen2.5-7B-Instruct --world-size 8 --sharding fsdp` prints the table; package
CLIs call `dry_run(DryRunSpec(...))` and `format_report`.

Whole configs (`<package> train --config FILE --dry-run`, a flag of the parent CLI `shared.cli` for the verbs that
give `Verb(dry_run=verb_dry_run("<package>.dryrun:specs"))`): the App loads and validates the package's config,
then `report_config` reads the launch layout from the command the YAML opens with (`launch_layout`: `accelerate
launch --config_file X` gives X's process count and sharding; a plain command is one process), asks the package's
`specs(cfg, layout)` for one `DryRunSpec` per model a run holds on a GPU (policy, critic, encoder...), and prints
each report with whether it fits the card. `rl_specs` maps an `RLConfig` (batch, generations, micro-batches, KL
reference, LoRA, dtype, vLLM rollouts) onto specs, so RL packages only add their prompt length. A model whose
context is shorter than the config's prompt + response, or RL settings `check_rl_settings` refuses, fail the dry
run with one line.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

GiB = 1024**3
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
SHARDINGS = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")
LORA_DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

ModelKind = Literal["causal", "seq2seq", "vl", "encoder"]


class DryRunError(ValueError):
    """A dry run could not resolve or build the model; the message names the model and what to do."""


@dataclass
class DryRunSpec:
    """What one training process holds. `rollout_tokens` = tokens whose KV cache a colocated vLLM engine keeps."""

    model: str
    kind: ModelKind = "causal"
    dtype: str = "bfloat16"
    world_size: int = 1
    sharding: str = "none"
    micro_batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    trainable: bool = True
    lora_r: int = 0
    lora_targets: tuple[str, ...] = LORA_DEFAULT_TARGETS
    master_weights_fp32: bool = True
    reference_model: bool = False
    rollout_tokens: int = 0
    rollout_engine_weights: bool = False  # a colocated vLLM engine holds its own bf16 copy of the weights
    extra: dict[str, Any] = field(default_factory=dict)


def known_architectures() -> dict[str, dict[str, Any]]:
    """Published configurations bundled with the core, keyed by hub id."""
    text = resources.files("shared").joinpath("model_configs/architectures.json").read_text()
    return json.loads(text)


def resolve_config(model: str) -> Any:
    """A transformers config from a local folder with config.json, or from the bundled architecture of a hub id."""
    from transformers import AutoConfig

    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DryRunError(f"model folder {model!r} has no config.json")
        return AutoConfig.from_pretrained(str(path))
    archs = known_architectures()
    if model not in archs:
        raise DryRunError(f"model {model!r} is neither a local folder with config.json nor a bundled architecture "
                          f"(known: {', '.join(sorted(archs))}); a dry run downloads nothing, so pass a folder that "
                          "holds the model's config.json")
    data = dict(archs[model])
    return AutoConfig.for_model(data.pop("model_type"), **data)


def build_on_meta(config: Any, kind: ModelKind = "causal") -> Any:
    """Instantiate the architecture with shapes only (no memory, no weights)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    with torch.device("meta"):
        if kind == "seq2seq":
            return AutoModelForSeq2SeqLM.from_config(config)
        if kind == "encoder":
            return AutoModel.from_config(config)
        if kind == "vl":
            from transformers import AutoModelForImageTextToText

            return AutoModelForImageTextToText.from_config(config)
        return AutoModelForCausalLM.from_config(config)


def lora_parameter_count(model: Any, r: int, targets: tuple[str, ...]) -> int:
    """LoRA adds r·(in + out) per adapted linear layer (A: r×in, B: out×r); counted from the meta model's shapes."""
    import torch

    pattern = re.compile(r"(^|\.)(" + "|".join(re.escape(t) for t in targets) + r")$")
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and pattern.search(name):
            total += r * (module.in_features + module.out_features)
    if total == 0:
        raise DryRunError(f"no linear layer matches the LoRA targets {list(targets)}")
    return total


def _text_config(config: Any) -> Any:
    return getattr(config, "text_config", None) or config


def _dims(config: Any) -> dict[str, int]:
    """Hidden size, layers, vocab and KV width of the (text) decoder, across the naming schemes of HF configs."""
    c = _text_config(config)
    hidden = getattr(c, "hidden_size", None) or c.d_model
    layers = getattr(c, "num_hidden_layers", None) or c.num_layers
    heads = getattr(c, "num_attention_heads", None) or c.num_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or getattr(c, "d_kv", None) or hidden // heads
    context = getattr(c, "max_position_embeddings", None)
    return {"hidden": int(hidden), "layers": int(layers), "vocab": int(c.vocab_size),
            "kv_width": int(kv_heads) * int(head_dim), "context": int(context) if isinstance(context, int) else 0}


def estimate_memory(spec: DryRunSpec, total: int, trainable: int, dims: dict[str, int]) -> dict[str, float]:
    """Bytes per process by term (GiB). Assumptions, stated so the figure can be argued with:

    - weights: every parameter in `dtype`; sharded over `world_size` only under zero3/fsdp;
    - gradients: trainable parameters in `dtype`; sharded under zero2/zero3/fsdp;
    - optimizer: AdamW's two float32 moments (8 bytes) plus a float32 master copy (4 bytes) when training in a 16-bit
      dtype with `master_weights_fp32`; sharded under zero1/zero2/zero3/fsdp;
    - activations: with gradient checkpointing, each layer's input (micro_batch·seq·hidden in `dtype`) plus one
      layer recomputed (~34·hidden bytes per token, the usual transformer estimate); without it, 34·hidden·layers
      bytes per token; plus the float32 logits of the micro-batch (the peak at a 150k vocabulary; none for an
      encoder, which has no vocabulary head);
    - reference: a frozen copy of the weights for the KL term, sharded like the weights;
    - rollout KV cache: 2·layers·kv_width·2 bytes per token for `rollout_tokens` tokens (vLLM in bf16, colocated);
    - rollout weights: with `rollout_engine_weights`, a colocated vLLM engine's own bf16 copy of every parameter
      (tensor parallel 1, not sharded; vLLM also reserves `gpu_memory_utilization` of the card up front, which the
      engine's settings must leave room for).
    """
    if spec.sharding not in SHARDINGS:
        raise DryRunError(f"sharding {spec.sharding!r} is not one of {', '.join(SHARDINGS)}")
    if spec.dtype not in DTYPE_BYTES:
        raise DryRunError(f"dtype {spec.dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    if spec.world_size < 1:
        raise DryRunError(f"world_size must be >= 1, got {spec.world_size}")
    b = DTYPE_BYTES[spec.dtype]
    w = spec.world_size
    shard_w = w if spec.sharding in ("zero3", "fsdp") else 1
    shard_g = w if spec.sharding in ("zero2", "zero3", "fsdp") else 1
    shard_o = w if spec.sharding in ("zero1", "zero2", "zero3", "fsdp") else 1
    n_train = trainable if spec.trainable else 0
    opt_bytes = 8 + (4 if b < 4 and spec.master_weights_fp32 else 0)
    tokens = spec.micro_batch * spec.seq_len
    per_layer = 34 * dims["hidden"] * tokens
    logits = 0 if spec.kind == "encoder" else tokens * dims["vocab"] * 4  # an encoder has no vocabulary head
    if spec.trainable:
        saved = tokens * dims["hidden"] * b * dims["layers"] + per_layer if spec.gradient_checkpointing \
            else per_layer * dims["layers"]
    else:
        saved = 0
    terms = {
        "weights": total * b / shard_w,
        "gradients": n_train * b / shard_g,
        "optimizer": n_train * opt_bytes / shard_o,
        "activations": saved + logits,
        "reference": total * b / shard_w if spec.reference_model else 0.0,
        "rollout_kv_cache": 2 * dims["layers"] * dims["kv_width"] * 2 * spec.rollout_tokens,
        "rollout_weights": total * 2 if spec.rollout_engine_weights else 0.0,
    }
    out = {k: v / GiB for k, v in terms.items()}
    out["total"] = sum(out.values())
    return out


def dry_run(spec: DryRunSpec) -> dict[str, Any]:
    """Resolve, build on meta, count and estimate; raises DryRunError with one readable line on bad input."""
    config = resolve_config(spec.model)
    try:
        model = build_on_meta(config, spec.kind)
    except (ValueError, KeyError, TypeError) as e:
        raise DryRunError(f"model {spec.model!r} could not be built as kind {spec.kind!r}: {e}") from e
    total = sum(p.numel() for p in model.parameters())
    trainable = lora_parameter_count(model, spec.lora_r, tuple(spec.lora_targets)) if spec.lora_r > 0 else total
    dims = _dims(config)
    if spec.kind in ("causal", "vl") and dims["context"] and spec.seq_len > dims["context"]:
        raise DryRunError(f"model {spec.model!r} attends to {dims['context']} tokens, but the config asks for "
                          f"{spec.seq_len} (prompt + response); shorten the prompt or the response budget")
    memory = estimate_memory(spec, total, trainable, dims)
    return {"spec": asdict(spec), "architecture": type(model).__name__, "parameters": total,
            "trainable_parameters": trainable if spec.trainable else 0, "dims": dims, "memory_gib": memory}


def format_report(report: dict[str, Any]) -> str:
    """A short table a person reads before launching."""
    s = report["spec"]
    lines = [f"model        {s['model']} ({report['architecture']}, kind {s['kind']})",
             f"parameters   {report['parameters']:,} total, {report['trainable_parameters']:,} trainable"
             + (f" (LoRA r={s['lora_r']})" if s["lora_r"] else ""),
             f"layout       dtype {s['dtype']}, world size {s['world_size']}, sharding {s['sharding']}, "
             f"micro-batch {s['micro_batch']} x {s['seq_len']} tokens"
             + (", gradient checkpointing" if s["gradient_checkpointing"] else ""),
             "memory per process (GiB, estimate):"]
    for key, value in report["memory_gib"].items():
        lines.append(f"  {key:<17}{value:9.2f}")
    return "\n".join(lines)


# ---- whole configs ---------------------------------------------------------------------------------------------
@dataclass
class Layout:
    """How a config's run is launched: processes, sharding and mixed precision, and where that was read."""

    world_size: int = 1
    sharding: str = "none"
    mixed_precision: str = "no"
    source: str = "its command (no accelerate launch: one process)"


ACCELERATE_SHARDING = {"FSDP": "fsdp", "MULTI_GPU": "ddp", "NO": "none", "MULTI_CPU": "ddp"}


def header_command(config_path: str | Path) -> str:
    """The command a config opens with: its leading comment lines up to the first blank one, joined (a command may
    continue over several comment lines with a trailing backslash)."""
    lines = []
    for line in Path(config_path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        lines.append(text.removesuffix("\\").strip())
        if not text.endswith("\\"):
            break
    return " ".join(lines)


def _find_up(name: str, start: Path) -> Path | None:
    """`name` relative to the working directory, else to `start` or one of its parents (the repository root)."""
    if Path(name).is_file():
        return Path(name)
    for folder in [start, *start.parents]:
        if (folder / name).is_file():
            return folder / name
    return None


def launch_layout(config_path: str | Path) -> Layout:
    """The layout of the command a config opens with: `accelerate launch --config_file X [--num_processes N]` reads
    X's distributed_type, num_processes, zero stage and mixed_precision; anything else is one process."""
    import yaml

    command = header_command(config_path)
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise DryRunError(f"{config_path}: cannot parse the command on its first line ({e})") from None
    if "accelerate" not in words or "launch" not in words:
        return Layout()
    args = dict(zip(words, words[1:]))
    accel = args.get("--config_file")
    layout = Layout(source="accelerate launch on its first line")
    if accel is not None:
        found = _find_up(accel, Path(config_path).resolve().parent)
        if found is None:
            raise DryRunError(f"{config_path}: its command names accelerate config {accel}, which does not exist")
        data = yaml.safe_load(found.read_text(encoding="utf-8")) or {}
        kind = str(data.get("distributed_type", "NO"))
        layout.world_size = int(data.get("num_processes", 1))
        layout.mixed_precision = str(data.get("mixed_precision", "no"))
        if kind == "DEEPSPEED":
            layout.sharding = f"zero{int((data.get('deepspeed_config') or {}).get('zero_stage', 0))}"
            layout.sharding = "ddp" if layout.sharding == "zero0" else layout.sharding
        elif kind in ACCELERATE_SHARDING:
            layout.sharding = ACCELERATE_SHARDING[kind]
        else:
            raise DryRunError(f"{found}: distributed_type {kind!r} is not one the dry run knows "
                              f"({', '.join([*ACCELERATE_SHARDING, 'DEEPSPEED'])})")
        layout.source = f"{accel}, named by its first line"
    if "--num_processes" in args:
        layout.world_size = int(args["--num_processes"])
    if layout.world_size > 1 and layout.sharding == "none":
        layout.sharding = "ddp"
    return layout


def rl_specs(rl: Any, model: str, prompt_tokens: int, layout: Layout, kind: ModelKind = "causal",
             label: str = "policy") -> list[tuple[str, DryRunSpec]]:
    """What one process of an `RLConfig` run holds: the policy trained on micro-batches of rollouts (prompt +
    `max_new_tokens` each), a frozen reference when `beta` > 0, the rollout engine's KV cache (vLLM: every rollout
    of the process's share at once plus the engine's weight copy; HF: `gen_batch_size` rows at a time, sharing the
    policy's weights), LoRA and dtype when the config has them; plus a separate critic LM (`critic.kind: model`)."""
    from shared.rl.settings import check_rl_settings

    check_rl_settings(rl, layout.world_size)
    world = layout.world_size
    rollouts = -(-rl.prompts_per_step // world) * rl.generations  # the largest share of a process
    micro = -(-rollouts // (rl.mini_batches * rl.grad_accum))
    seq = prompt_tokens + rl.max_new_tokens
    dtype = getattr(rl, "dtype", "auto")
    dtype = "bfloat16" if dtype in ("auto", None) else dtype
    lora = getattr(rl, "lora", None)
    vllm = rl.generator_backend == "vllm"
    common = dict(dtype=dtype, world_size=world, sharding=layout.sharding, seq_len=seq)
    policy = DryRunSpec(model=model, kind=kind, micro_batch=micro, reference_model=rl.beta > 0,
                        lora_r=int(getattr(lora, "r", 0) or 0) if lora is not None else 0,
                        rollout_tokens=(rollouts if vllm else min(rollouts, rl.gen_batch_size)) * seq,
                        rollout_engine_weights=vllm, **common)
    specs = [(label, policy)]
    critic = getattr(rl, "critic", None)
    if rl.advantage == "gae" and getattr(critic, "kind", "head") == "model":
        specs.append(("critic", DryRunSpec(model=critic.model_path or model, kind=kind, micro_batch=micro, **common)))
    return specs


def fits_line(report: dict[str, Any], gpu_gib: float) -> str:
    total = report["memory_gib"]["total"]
    verdict = "fits" if total <= gpu_gib else "does NOT fit"
    return f"  {'on the GPU':<17}{total:9.2f} of {gpu_gib:g} GiB: {verdict} (estimate, not a measurement)"


SpecsFn = Callable[[Any, Layout], Sequence[tuple[str, DryRunSpec]]]


def report_config(cfg: Any, config_path: str | Path, specs: SpecsFn, gpu_gib: float = 80.0, out: Any = None) -> None:
    """Size a loaded, validated config: the launch layout its first line names, then each model `specs` says a
    process holds, built on the meta device; prints one report per model and whether it fits a `gpu_gib` card.
    Raises DryRunError / ConfigError / ValueError (one-line messages) on what cannot run, before printing anything."""
    out = out or sys.stdout
    layout = launch_layout(config_path)
    reports = [(label, dry_run(spec)) for label, spec in specs(cfg, layout)]
    print(f"dry run of {config_path}: the config is valid", file=out)
    print(f"launch: {layout.world_size} process(es), sharding {layout.sharding}, mixed precision "
          f"{layout.mixed_precision}; from {layout.source}", file=out)
    for label, report in reports:
        print(f"\n[{label}]", file=out)
        print(format_report(report), file=out)
        print(fits_line(report, gpu_gib), file=out)
    if len(reports) > 1:
        total = sum(r["memory_gib"]["total"] for _, r in reports)
        verdict = "fits" if total <= gpu_gib else "does NOT fit"
        print(f"\nall of the above in one process: {total:.2f} of {gpu_gib:g} GiB: {verdict} (estimate)", file=out)


def verb_dry_run(specs: str, gpu_gib: float = 80.0) -> Callable[[Any], int]:
    """The `dry_run` of a parent-CLI `Verb` (`shared.cli`): the App has loaded and validated `--config FILE` with its
    overrides; this sizes it with the package's `specs` ("module:function", imported only when `--dry-run` is given).
    Errors are one-line exceptions that the App reports as `prog verb: message`, exit 2."""

    def run(r: Any) -> int:
        if r.config_path is None:
            raise DryRunError("--dry-run needs --config FILE (the launch layout is read from its first line)")
        report_config(r.cfg, r.config_path, _resolve(specs), gpu_gib)
        return 0

    return run


def _resolve(target: str) -> Any:
    """`module:attribute` imported on use."""
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shared.dryrun", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="hub id of a bundled architecture, or a folder with config.json")
    p.add_argument("--kind", default="causal", choices=["causal", "seq2seq", "vl", "encoder"])
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPE_BYTES))
    p.add_argument("--world-size", type=int, default=1)
    p.add_argument("--sharding", default="none", choices=SHARDINGS)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--lora-r", type=int, default=0)
    p.add_argument("--reference-model", action="store_true")
    p.add_argument("--rollout-tokens", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    spec = DryRunSpec(model=a.model, kind=a.kind, dtype=a.dtype, world_size=a.world_size, sharding=a.sharding,
                      micro_batch=a.micro_batch, seq_len=a.seq_len,
                      gradient_checkpointing=not a.no_gradient_checkpointing, lora_r=a.lora_r,
                      reference_model=a.reference_model, rollout_tokens=a.rollout_tokens)
    try:
        report = dry_run(spec)
    except DryRunError as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if a.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

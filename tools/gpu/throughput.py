"""The `throughput` piece of the GPU check: vLLM decoding speed for the tiny model and for the largest model that can be
built locally from a configuration (Llama-3.1-8B's bundled architecture, random weights: vLLM's `load_format="dummy"`,
nothing downloaded), as tokens/s and as a fraction of the memory-bandwidth ceiling.

Decoding is memory-bound: each step reads every weight once and each sequence's KV cache so far. Over a timed decode
of `new` tokens for `batch` sequences after a `prompt`-token prefill,
    bytes = new x weight_bytes + sum_{t=1..new} batch x kv_bytes_per_token x (prompt + t),
and the fraction is bytes / (decode seconds x bandwidth); decode seconds = the timed run minus a prefill-only run
(one new token). The bandwidth is the H200's 4.8 TB/s datasheet figure unless `--bandwidth-tbs` says otherwise.
Without vLLM on the GPU machine the piece says so (a SKIP row) and measures the HF generator on the GPU instead, same
models and arithmetic. Smoke mode (CPU): the HF generator, and the "largest" model is Qwen2.5-0.5B's architecture cut
to one layer (random weights); the arithmetic is the same, the figures are CPU figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import Context, Row, installed, needs

PLANS = {  # (label, architecture, layer override, batch, prompt, new tokens)
    "gpu": [("tiny Qwen2 (0.6M)", None, None, 64, 128, 256),
            ("Llama-3.1-8B, random weights", "meta-llama/Llama-3.1-8B-Instruct", None, 64, 128, 256)],
    "hf": [("tiny Qwen2 (0.6M)", None, None, 64, 128, 128),
           ("Llama-3.1-8B, random weights", "meta-llama/Llama-3.1-8B-Instruct", None, 64, 128, 128)],
    "smoke": [("tiny Qwen2 (0.6M)", None, None, 4, 16, 8),
              ("Qwen2.5-0.5B cut to 1 layer, random weights", "Qwen/Qwen2.5-0.5B-Instruct", 1, 2, 8, 4)],
}


def _config_folder(ctx: Context, arch: str, layers: int | None) -> tuple[Path, dict]:
    """A folder holding only config.json for a bundled architecture (vLLM builds random weights from it)."""
    from shared.dryrun import known_architectures

    data = dict(known_architectures()[arch])
    if layers is not None:
        data["num_hidden_layers"] = layers
    folder = ctx.work / ("arch-" + arch.replace("/", "--") + (f"-{layers}l" if layers else ""))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**data, "architectures": [_arch_class(data)]}))
    return folder, data


def _arch_class(data: dict) -> str:
    return {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[data["model_type"]]


def _sizes(config: dict, params: int, dtype_bytes: int) -> tuple[float, float]:
    """(weight bytes, KV bytes per token) of a decoder config."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return params * dtype_bytes, 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes


def _fraction(ctx: Context, weight_bytes: float, kv_per_token: float, batch: int, prompt: int, new: int,
              seconds: float) -> tuple[float, float]:
    moved = new * weight_bytes + sum(batch * kv_per_token * (prompt + t) for t in range(1, new + 1))
    achieved = moved / max(seconds, 1e-9)
    return achieved / 1e12, achieved / (ctx.bandwidth_tbs * 1e12)


def _row(ctx: Context, label: str, tokens: int, decode_s: float, total_s: float, tb_s: float, frac: float,
         extra: str) -> Row:
    figures = (f"{tokens / decode_s:,.0f} tok/s decode; {tb_s:.3g} TB/s = {frac:.3g} of {ctx.bandwidth_tbs:g} TB/s"
               f" ({extra})")
    return Row("throughput", label, "PASS", total_s, figures)


def _vllm(ctx: Context, label: str, arch: str | None, layers: int | None, batch: int, prompt: int,
          new: int) -> Row:
    import torch

    vllm = needs("vllm", "vLLM throughput")
    if arch is None:
        folder = ctx.tiny()
        config = json.loads((folder / "config.json").read_text())
    else:
        folder, config = _config_folder(ctx, arch, layers)
    llm = vllm.LLM(model=str(folder), load_format="dummy" if arch else "auto", skip_tokenizer_init=True,
                   dtype="bfloat16", seed=0, gpu_memory_utilization=0.85, max_model_len=prompt + new + 8)
    params = sum(p.numel() for p in _meta_model(config).parameters())
    weight_bytes, kv = _sizes(config, params, 2)
    rng = torch.Generator().manual_seed(0)
    prompts = [{"prompt_token_ids": torch.randint(10, min(config["vocab_size"], 30000), (prompt,),
                                                  generator=rng).tolist()} for _ in range(batch)]

    def timed(tokens: int) -> float:
        params_ = vllm.SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=1.0, detokenize=False)
        start = time.perf_counter()
        llm.generate(prompts, params_, use_tqdm=False)
        return time.perf_counter() - start

    timed(new)  # warm-up: CUDA graphs, allocator
    prefill, total = timed(1), timed(new)
    decode = max(total - prefill, 1e-6)
    tb_s, frac = _fraction(ctx, weight_bytes, kv, batch, prompt, new - 1, decode)
    return _row(ctx, f"vLLM {label}", batch * (new - 1), decode, prefill + total, tb_s, frac,
                f"batch {batch}, prompt {prompt}, {new} new, {params / 1e9:.2f}B params bf16")


def _meta_model(config: dict):
    from shared.dryrun import build_on_meta
    from transformers import AutoConfig

    data = {k: v for k, v in config.items() if k not in ("architectures", "model_type", "transformers_version")}
    return build_on_meta(AutoConfig.for_model(config["model_type"], **data))


def _hf(ctx: Context, label: str, arch: str | None, layers: int | None, batch: int, prompt: int, new: int) -> Row:
    """The HF generator (float32 on the CPU, bf16 on the GPU), same arithmetic."""
    import torch
    from shared.generation import HFGenerator, SamplingParams
    from shared.modeling import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = torch.bfloat16 if ctx.cuda else torch.float32
    model, tok = load_model(ctx.tiny(), device=ctx.device, dtype=dtype)  # its tokenizer serves any model: ids in
    config = json.loads((ctx.tiny() / "config.json").read_text())
    if arch is not None:
        folder, config = _config_folder(ctx, arch, layers)
        with torch.device(ctx.device):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    weight_bytes, kv = _sizes(config, params, 2 if ctx.cuda else 4)
    gen = HFGenerator(model, tok, batch_size=batch)
    rng = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, min(config["vocab_size"], len(tok)), (prompt,), generator=rng).tolist()
               for _ in range(batch)]

    def timed(tokens: int) -> float:
        start = time.perf_counter()
        gen.generate(prompts, SamplingParams(max_new_tokens=tokens, ignore_eos=True, seed=0))
        return time.perf_counter() - start

    if ctx.cuda:
        timed(2)  # warm-up: kernels, allocator
    prefill, total = timed(1), timed(new)
    decode = max(total - prefill, 1e-6)
    tb_s, frac = _fraction(ctx, weight_bytes, kv, batch, prompt, new - 1, decode)
    where = "bf16, GPU" if ctx.cuda else "fp32, CPU"
    return _row(ctx, f"HF generator, {label}", batch * (new - 1), decode, prefill + total, tb_s, frac,
                f"batch {batch}, prompt {prompt}, {new} new, {params / 1e6:,.1f}M params {where}")


def piece_throughput(ctx: Context) -> list[Row]:
    if ctx.smoke:
        return _measure_all(_hf, ctx, PLANS["smoke"])
    if not installed("vllm"):
        skip = Row("throughput", "vLLM", "SKIP", detail="vllm is not installed: the HF generator is measured on the GPU "
                                                         "instead (tools/gpu/README.md)")
        return [skip, *_measure_all(_hf, ctx, PLANS["hf"])]
    return _measure_all(_vllm, ctx, PLANS["gpu"])


def _measure_all(measure, ctx: Context, plans: list) -> list[Row]:
    """One plan after another, freeing each model (and its engine) before the next is built."""
    import gc

    import torch

    rows = []
    for plan in plans:
        rows.append(measure(ctx, *plan))
        gc.collect()
        if ctx.cuda:
            torch.cuda.empty_cache()
    return rows

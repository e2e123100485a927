"""The starting policy: a given HF checkpoint, or the tiny calibration model SFT'd on arithmetic (cached).

With `warm_start.verbose_fraction == 0` this is exactly shared.rl.warmstart's cached policy. With a verbose share
the SFT data mixes the two solution styles of rose.data; shared's helper takes no custom records, so this module
runs the same recipe (tiny Qwen2 h128 L2, char tokenizer, shared.rl.sft.run_sft) on rose's records and caches the
result the same way: built under a temporary name, stamped with its settings, renamed into place, reused after.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from rose.config import RoseConfig, WarmStartSection

STAMP = "rose_warmstart.json"


def _settings(ws: WarmStartSection, seed: int) -> dict[str, Any]:
    return {"steps": ws.steps, "lr": ws.lr, "batch_size": ws.batch_size, "n_train": ws.n_train,
            "verbose_fraction": ws.verbose_fraction, "seed": seed, "arch": "qwen2-h128-L2-heads4-ffn512-char"}


def warm_start_dir(ws: WarmStartSection, seed: int) -> Path:
    """`warm_start.cache_dir`, else $ROSE_CACHE (default ~/.cache/rose)/warmstart/<settings tag>, shared by runs."""
    if ws.cache_dir:
        return Path(ws.cache_dir)
    root = Path(os.environ.get("ROSE_CACHE", Path.home() / ".cache" / "rose"))
    tag = f"sft{ws.steps}_lr{ws.lr:g}_b{ws.batch_size}_v{ws.verbose_fraction:g}_n{ws.n_train}_s{seed}"
    return root / "warmstart" / tag


def warm_start_policy(ws: WarmStartSection, seed: int) -> Path:
    """Directory of the SFT'd tiny policy for these settings (trained on first use)."""
    out = warm_start_dir(ws, seed)
    if ws.verbose_fraction == 0:
        from shared.rl.warmstart import sft_arithmetic_policy

        return sft_arithmetic_policy(out, steps=ws.steps, seed=seed, lr=ws.lr, batch_size=ws.batch_size,
                                     n_train=ws.n_train)
    settings = _settings(ws, seed)
    stamp = out / STAMP
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved.get("settings") == settings:
            return out
        raise FileExistsError(f"{out} holds a warm-start policy with other settings {saved.get('settings')}; "
                              "set warm_start.cache_dir to another folder")
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from shared.rl.sft import SFTSettings, run_sft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rose.data import sft_records

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    base = tiny_causal_lm(tmp / "init", tokenizer=build_tokenizer(kind="char"), seed=seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    records = sft_records(ws.n_train, seed, ws.verbose_fraction)
    model, log = run_sft(model, tokenizer, records,
                         SFTSettings(output_dir=str(tmp / "trl"), steps=ws.steps, lr=ws.lr,
                                     batch_size=ws.batch_size, seed=seed, logging_steps=50), source="rose warm start")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(tmp / "init", ignore_errors=True)
    shutil.rmtree(tmp / "trl", ignore_errors=True)
    final_loss = next((x["loss"] for x in reversed(log) if "loss" in x), None)
    (tmp / STAMP).write_text(json.dumps({"settings": settings, "final_loss": final_loss}, indent=1))
    if out.exists():  # another process finished first: keep theirs
        shutil.rmtree(tmp)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def load_policy(cfg: RoseConfig) -> tuple[torch.nn.Module, Any, Path]:
    """(model, tokenizer, directory) of the configured starting policy."""
    from shared.modeling import load_model

    path = Path(cfg.model.path) if cfg.model.path else warm_start_policy(cfg.warm_start, cfg.seed)
    model, tokenizer = load_model(str(path), kind="causal", dtype="float32", device="cpu")
    return model, tokenizer, path

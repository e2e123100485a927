"""The starting policy: a given HF checkpoint, or the tiny calibration model SFT'd on arithmetic (cached).

The SFT'd policy is shared.rl.warmstart's cached one (tiny Qwen2 h128 L2, char tokenizer, TRL SFT); with a verbose
share its SFT data are rose's records mixing the two solution styles of rose.data (`records=`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rose.config import RoseConfig, WarmStartSection


def warm_start_dir(ws: WarmStartSection, seed: int) -> Path:
    """`warm_start.cache_dir`, else $ROSE_CACHE (default ~/.cache/rose)/policies/<settings tag>, shared by runs."""
    if ws.cache_dir:
        return Path(ws.cache_dir)
    root = Path(os.environ.get("ROSE_CACHE", Path.home() / ".cache" / "rose"))
    tag = f"sft{ws.steps}_lr{ws.lr:g}_b{ws.batch_size}_v{ws.verbose_fraction:g}_n{ws.n_train}_s{seed}"
    return root / "policies" / tag


def warm_start_policy(ws: WarmStartSection, seed: int) -> Path:
    """Directory of the SFT'd tiny policy for these settings (trained on first use)."""
    from shared.rl.warmstart import sft_arithmetic_policy

    from rose.data import sft_records

    records = sft_records(ws.n_train, seed, ws.verbose_fraction) if ws.verbose_fraction else None
    return sft_arithmetic_policy(warm_start_dir(ws, seed), steps=ws.steps, seed=seed, lr=ws.lr,
                                 batch_size=ws.batch_size, n_train=ws.n_train, records=records)


def load_policy(cfg: RoseConfig) -> tuple[torch.nn.Module, Any, Path]:
    """(model, tokenizer, directory) of the configured starting policy."""
    from shared.modeling import load_model

    path = Path(cfg.model.path) if cfg.model.path else warm_start_policy(cfg.warm_start, cfg.seed)
    model, tokenizer = load_model(str(path), kind="causal", dtype="float32", device="cpu")
    return model, tokenizer, path

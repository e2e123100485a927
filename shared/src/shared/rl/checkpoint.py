"""Atomic training checkpoints that allow an exact resume.

A checkpoint directory `out/checkpoints/step_000050/` holds the model (save_pretrained, so it loads like any HF
checkpoint), the tokenizer, `trainer_state.pt` (optimizer, scheduler, trainer counters and data position) and one
`rng_rank{r}.pt` per process (python, numpy and torch generator states). Everything is written into a `.tmp`
directory first and renamed with os.replace, then `out/checkpoints/latest` is rewritten atomically, so a run
killed at any moment leaves either the previous or the new checkpoint, never a half-written one.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.atomic import replace_dir, write_text

STATE_FILE = "trainer_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing files or does not fit the model."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _barrier(accelerator: Any) -> None:
    if accelerator is not None and accelerator.num_processes > 1:
        accelerator.wait_for_everyone()


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    accelerator: Any = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically; keep the newest `keep` checkpoints. Call on every process."""
    root = Path(out_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    tmp = root / f"step_{step:06d}.tmp"
    main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    unwrapped = model if accelerator is None else accelerator.unwrap_model(model)
    if main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        unwrapped.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
             "state": state},
            tmp / STATE_FILE,
        )
    _barrier(accelerator)
    torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
    _barrier(accelerator)
    if main:
        replace_dir(tmp, final)
        write_text(root / "latest", final.name)
        done = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[: max(0, len(done) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(accelerator)
    return final


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under out_dir/checkpoints, or None."""
    root = Path(out_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if (path / STATE_FILE).exists():
            return path
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and (p / STATE_FILE).exists())
    return done[-1] if done else None


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no *.safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected:
        raise CheckpointError(f"{path}: weights not in the model: {unexpected[:5]}")
    # Tied parameters (e.g. lm_head = embed_tokens) are saved once; any other missing key is an error.
    params = dict(model.state_dict())
    loaded_ptrs = {params[k].data_ptr() for k in weights if k in params}
    untied = [k for k in missing if params[k].data_ptr() not in loaded_ptrs]
    if untied:
        raise CheckpointError(f"{path}: checkpoint lacks weights for {untied[:5]}")


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    accelerator: Any = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this process's RNG states; return the saved trainer state."""
    path = Path(path)
    if not (path / STATE_FILE).exists():
        raise CheckpointError(f"{path}: not a checkpoint (no {STATE_FILE})")
    unwrapped = model if accelerator is None else accelerator.unwrap_model(model)
    _load_weights(unwrapped, path)
    blob = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob.get("scheduler") is not None:
        scheduler.load_state_dict(blob["scheduler"])
    rank = 0 if accelerator is None else accelerator.process_index
    rng_file = path / f"rng_rank{rank}.pt"
    if not rng_file.exists():
        raise CheckpointError(f"{path}: no RNG state for process {rank} (saved with fewer processes?)")
    set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=False))
    return blob["state"]

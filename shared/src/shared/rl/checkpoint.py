"""Atomic training checkpoints that allow an exact resume.

A checkpoint directory `out/checkpoints/step_000050/` holds the model (save_pretrained, so it loads like any HF
checkpoint), the tokenizer, `trainer_state.pt` (optimizer, scheduler, trainer counters and data position) and one
`rng_rank{r}.pt` per process (python, numpy and torch generator states). Everything is written into a `.tmp`
directory first and renamed with os.replace, then `out/checkpoints/latest` is rewritten atomically, so a run
killed at any moment leaves either the previous or the new checkpoint, never a half-written one.

`MultiPolicyCheckpoint` does the same for several trainers that step together (two policies of one joint rollout):
`out/checkpoints/step_000050/<name>/` holds each trainer's checkpoint and `joint.pt` the common step and the
caller's own state (e.g. its data position); the step folder is built whole under `.tmp` and swapped in with
`shared.atomic.replace_dir`, so a resume always finds every trainer at the same step.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.atomic import replace_dir, write_text

STATE_FILE = "trainer_state.pt"
JOINT_FILE = "joint.pt"


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
    write_checkpoint(tmp, model, tokenizer, optimizer, scheduler, state, accelerator)
    _publish(root, tmp, final, keep, accelerator)
    return final


def write_checkpoint(folder: str | Path, model: torch.nn.Module, tokenizer: Any, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any], accelerator: Any = None) -> Path:
    """Write a checkpoint's files into `folder` (emptied first), not atomically: callers build it under a
    temporary name and swap it in. Call on every process (each writes its RNG state)."""
    folder = Path(folder)
    main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    unwrapped = model if accelerator is None else accelerator.unwrap_model(model)
    if main:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        unwrapped.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
             "state": state},
            folder / STATE_FILE,
        )
    _barrier(accelerator)
    torch.save(rng_state(), folder / f"rng_rank{rank}.pt")
    _barrier(accelerator)
    return folder


def _publish(root: Path, tmp: Path, final: Path, keep: int, accelerator: Any) -> None:
    """Swap the finished `tmp` step folder in, point `latest` at it, prune to the newest `keep`."""
    if accelerator is None or accelerator.is_main_process:
        replace_dir(tmp, final)
        write_text(root / "latest", final.name)
        done = sorted(p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[: max(0, len(done) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(accelerator)


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


class MultiPolicyCheckpoint:
    """Save and resume several trainers (name -> `RLTrainer`) together under one step folder.

    The trainers must be at the same step when saved. `save(extra)` stores `extra` (any picklable state of the
    caller, e.g. its prompt stream) beside them; `resume()` loads every trainer from the latest joint checkpoint,
    puts that `extra` in `self.extra` and returns True (False when there is none). Turn off the trainers' own cadence (`step_on(...,
    save=False)` or `checkpoint_every: 0`) and call `maybe_save` after each joint step."""

    def __init__(self, out_dir: str | Path, trainers: Mapping[str, Any], every: int = 0, keep: int = 2) -> None:
        if not trainers:
            raise ValueError("MultiPolicyCheckpoint needs at least one trainer")
        for name in trainers:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"MultiPolicyCheckpoint: trainer name {name!r} is not a plain folder name")
        self.root = Path(out_dir) / "checkpoints"
        self.trainers = dict(trainers)
        self.every, self.keep = every, keep
        self.accelerator = next(iter(self.trainers.values())).accelerator
        self.extra: Any = None

    @property
    def step(self) -> int:
        steps = {name: tr.step for name, tr in self.trainers.items()}
        if len(set(steps.values())) != 1:
            raise ValueError(f"MultiPolicyCheckpoint: trainers are at different steps {steps}")
        return next(iter(steps.values()))

    def save(self, extra: Any = None) -> Path:
        """Write every trainer and `extra` into one step folder, atomically. Call on every process."""
        step = self.step
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f"step_{step:06d}.tmp"
        main = self.accelerator is None or self.accelerator.is_main_process
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        _barrier(self.accelerator)
        for name, trainer in self.trainers.items():
            trainer.write_to(tmp / name)
        if main:  # written last: a folder without it is not a checkpoint
            torch.save({"step": step, "names": sorted(self.trainers), "extra": extra}, tmp / JOINT_FILE)
        _barrier(self.accelerator)
        _publish(self.root, tmp, final, self.keep, self.accelerator)
        return final

    def maybe_save(self, extra: Any = None) -> Path | None:
        """Save when the common step is a multiple of `every` (never when `every` is 0)."""
        if self.every and self.step % self.every == 0:
            return self.save(extra)
        return None

    def latest(self) -> Path | None:
        """The newest complete joint checkpoint, or None."""
        pointer = self.root / "latest"
        if pointer.exists():
            path = self.root / pointer.read_text().strip()
            if (path / JOINT_FILE).exists():
                return path
        done = sorted(p for p in self.root.glob("step_*") if p.is_dir() and (p / JOINT_FILE).exists())
        return done[-1] if done else None

    def resume(self, path: str | Path | None = None) -> bool:
        """Load every trainer from `path` (default: the latest joint checkpoint) and the saved `extra` into
        `self.extra`; False when there is no checkpoint (nothing is loaded then)."""
        path = Path(path) if path is not None else self.latest()
        if path is None:
            return False
        if not (path / JOINT_FILE).exists():
            raise CheckpointError(f"{path}: not a joint checkpoint (no {JOINT_FILE})")
        joint = torch.load(path / JOINT_FILE, map_location="cpu", weights_only=False)
        if sorted(self.trainers) != joint["names"]:
            raise CheckpointError(f"{path}: holds trainers {joint['names']}, this run has {sorted(self.trainers)}")
        for name, trainer in self.trainers.items():
            trainer.load_from(path / name)
            if trainer.step != joint["step"]:
                raise CheckpointError(f"{path / name}: trainer at step {trainer.step}, joint step {joint['step']}")
        self.extra = joint["extra"]
        return True

"""Prompt stream with a resumable position, and the metrics sink of the RL trainer.

`PromptStream` walks a dataset in seeded per-epoch permutations; its (epoch, position) is saved in checkpoints so
a resumed run draws exactly the prompts the uninterrupted run would. Every process holds the same stream and takes
the same global prompts, then keeps its own share. `MetricsLogger` appends one JSON line per step to
`metrics.jsonl` and mirrors scalars to TensorBoard (`tensorboard/` beside it) when tensorboard is installed, and
to Weights & Biases when a project is named and wandb is installed (both import-guarded: a missing one is skipped
with a warning, never a crash). The file survives kills: the first line a process logs drops lines at or after
its step (a run killed before its first checkpoint leaves no duplicates), a half-written last line is dropped
with a warning, and a bad line elsewhere is an error naming the file and line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from shared.atomic import write_text as atomic_write_text


class PromptStream:
    """Endless stream of dataset indices: a fresh permutation per epoch from a generator seeded by (seed, epoch)."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        if size < 1:
            raise ValueError("PromptStream needs a non-empty dataset")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def take(self, k: int) -> list[int]:
        out = []
        for _ in range(k):
            if self.pos >= self.size:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            out.append(self._order[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"checkpoint was taken on a dataset of {state['size']} prompts, this one has {self.size}")
        self.seed, self.epoch, self.pos = state["seed"], state["epoch"], state["pos"]
        self._order = self._permutation(self.epoch)


class MetricsLogger:
    """JSONL metrics file plus TensorBoard scalars (when importable and enabled) and W&B (when a project is named)."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True, wandb_project: str = "",
                 run_config: dict[str, Any] | None = None) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.writer = None
        self.wandb_run = None
        self._checked = False  # whether this process has reconciled the file with the step it logs from
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:  # tensorboard is an optional extra
                self.writer = None
        if wandb_project:
            try:
                import wandb
            except ImportError:
                warnings.warn(f"rl.wandb_project={wandb_project!r} but wandb is not installed; W&B logging is off",
                              stacklevel=2)
            else:
                self.wandb_run = wandb.init(project=wandb_project, dir=str(out_dir), config=run_config or {},
                                            name=Path(out_dir).name, resume="allow")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if not self._checked:
            # the first line of this process: lines at or after `step` belong to a run that died before saving
            # them in a checkpoint (or before its first one), and a half-written last line must not have our
            # line glued to it
            self.truncate_after(step - 1)
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def read(self) -> list[dict[str, Any]]:
        """The logged records. A half-written last line (a kill mid-write) is skipped; a bad line before the last
        raises ValueError naming the file and line."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                    raise ValueError("expected an object with an integer 'step'")
            except ValueError as err:  # JSONDecodeError is a ValueError
                if number == len(lines):
                    warnings.warn(f"{self.path}:{number}: dropping a half-written last line", stacklevel=2)
                    break
                raise ValueError(f"{self.path}:{number}: bad metrics line ({err}): {line[:80]!r}") from None
            records.append(record)
        return records

    def truncate_after(self, step: int) -> None:
        """Drop lines after `step` (and a half-written last line) so the file matches an uninterrupted run.

        Called on resume with the checkpoint's step, and by the first `log` of a process; rewritten atomically.
        """
        if not self.enabled:
            return
        self._checked = True
        if not self.path.exists():
            return
        kept = [record for record in self.read() if record["step"] <= step]
        text = "".join(json.dumps(record) + "\n" for record in kept)
        if text != self.path.read_text(encoding="utf-8"):
            atomic_write_text(self.path, text)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

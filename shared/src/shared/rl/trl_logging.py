"""The workspace's training-output layout for TRL trainers: their log entries go to `metrics.jsonl` (one JSON line
per logged step, with `step`) and TensorBoard scalars under `tensorboard/` in the run's output folder, the same
layout as `RLTrainer` and the command line's `Run.write_metrics` (through `shared.rl.data.MetricsLogger`).

`MetricsCallback(output_dir)` is a transformers `TrainerCallback`; `run_sft` and `run_dpo` add it. TRL's own
integrations stay available through `report_to` (e.g. "wandb"), which the settings pass through unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class MetricsCallback(TrainerCallback):
    """Mirror every `on_log` entry (numbers only) into metrics.jsonl and TensorBoard on the main process."""

    def __init__(self, output_dir: str | Path, tensorboard: bool = True) -> None:
        self.output_dir, self.tensorboard = Path(output_dir), tensorboard
        self.logger = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from shared.rl.data import MetricsLogger

        if not state.is_world_process_zero:
            return
        if state.global_step == 0:  # a fresh run: no lines of an earlier run in the same folder
            (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.logger = MetricsLogger(self.output_dir, tensorboard=self.tensorboard)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.logger is None or not logs:
            return
        numbers = {k: v for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numbers:
            self.logger.log(int(state.global_step), numbers)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None

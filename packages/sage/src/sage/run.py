"""`sage train` and `sage eval`: one preference-optimisation run from a YAML config, and format-level evaluation on
GSM8K / MATH-500 / AIME-format tasks. Each writes the resolved config and results.json into its output folder.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sage.config import SageConfig


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def save_model(model, tokenizer, out: Path) -> Path:
    """save_pretrained into a temporary folder, then rename it into place (shared.atomic)."""
    from shared.atomic import save_pretrained

    return save_pretrained(out, model, tokenizer)


def train_command(cfg: SageConfig, out_dir: Path, progress: bool = True) -> Path:
    """Train with cfg.train.method; checkpoint/resume in out_dir; final policy in out_dir/model."""
    from shared.config import save_config
    from shared.eval import write_results
    from shared.generation import HFGenerator

    import sage
    from sage.data import load_problem_set
    from sage.replicate import warm_start
    from sage.trainer import train_dpo, write_log

    started, t0 = dt.datetime.now(dt.UTC), time.time()
    _threads(cfg.train.threads)
    save_config(cfg, out_dir)
    problems = load_problem_set(cfg.data)
    model, tokenizer = warm_start(cfg, cfg.train.seed)
    gen = HFGenerator(model, tokenizer, batch_size=256)
    result = train_dpo(cfg, model, tokenizer, gen, problems, checkpoint=out_dir / "checkpoint.pt", progress=progress)
    save_model(model, tokenizer, out_dir / "model")
    write_log(result, out_dir / "train_log.jsonl")
    row = {"method": cfg.train.method, "metrics": result.metrics(), "accuracy_curve": result.curve,
           "pools": result.pools, "stopped_reason": result.stopped_reason}
    path = write_results(out_dir, "sage", sage.__version__, "train", [row], cfg, cfg.train.seed, False,
                         problems.info, started, time.time() - t0)
    print(f"{cfg.train.method}: accuracy {result.curve[0][1]:.3f} -> {result.accuracy:.3f} in {len(result.logs)} "
          f"steps (target {result.target:.3f} reached at step {result.steps_to_target}); "
          f"trivial fraction {result.trivial_fraction:.3f}")
    if result.stopped_reason:
        print(result.stopped_reason)
    print(f"wrote {path}")
    return path


def eval_command(cfg: SageConfig, out_dir: Path) -> Path:
    """Greedy accuracy and boxed-answer rate of the policy on each task in cfg.eval.tasks."""
    import copy

    from shared.config import save_config
    from shared.eval import sha256_of, write_results
    from shared.generation import HFGenerator
    from shared.rewards import extract_boxed

    import sage
    from sage.data import load_eval_problems
    from sage.evaluate import greedy_accuracy
    from sage.replicate import warm_start

    started, t0 = dt.datetime.now(dt.UTC), time.time()
    _threads(cfg.train.threads)
    save_config(cfg, out_dir)
    model, tokenizer = warm_start(cfg, cfg.train.seed)
    gen = HFGenerator(model, tokenizer, batch_size=256)
    metrics: dict[str, float] = {}
    infos = []
    for task in cfg.eval.tasks:
        data_cfg = copy.deepcopy(cfg.data)
        data_cfg.source, data_cfg.path = task, ""
        problems = load_eval_problems(data_cfg, cfg.eval.n_per_task)
        acc, texts = greedy_accuracy(gen, problems.test, cfg.eval.max_new_tokens, cfg.eval.batch_size)
        metrics[f"{task}_accuracy"] = acc
        metrics[f"{task}_boxed_rate"] = sum(extract_boxed(t) is not None for t in texts) / len(texts)
        infos.append(problems.info)
        print(f"{task}: accuracy {acc:.3f}, boxed answers {metrics[f'{task}_boxed_rate']:.3f} "
              f"({len(problems.test)} problems)")
    data = {"name": "+".join(i["name"] for i in infos), "sha256": sha256_of("".join(i["sha256"] for i in infos).encode())}
    model_name = cfg.model.path or f"tiny-warmstart-sft{cfg.model.sft_steps}"
    path = write_results(out_dir, "sage", sage.__version__, "eval", [{"method": model_name, "metrics": metrics}],
                         cfg, cfg.train.seed, False, data, started, time.time() - t0)
    print(f"wrote {path}")
    return path

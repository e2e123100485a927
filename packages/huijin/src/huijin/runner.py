"""The recipe runner: stages in order on `shared.stages`, a checkpoint per stage, an evaluation per stage.

The chain is `init` (the starting model) -> the recipe's stages in order; each is a folder stage keyed by the hash of
its spec and its parent's key (`shared.stages.stage_key`), so the key of a stage covers the whole chain up to it:
- a rerun reuses every finished stage and builds from the first unfinished one (a killed build leaves no folder,
  only its `.work` scratch, from which an RL stage resumes its last checkpoint);
- an ablation chain that drops a later stage (`no_reasoning_rl`) shares the folders of the common prefix;
- a changed setting rebuilds its stage and everything after it, nothing before.
After every stage an evaluation stage `<name>.eval` (parent: the stage) writes `eval.json`, the row of the stage x
benchmark table. Folders: `root/<stage>/<key12>/` with the model, `stage.json` (stamp), `metrics.jsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.stages import Stage, StageContext, StageResult, StageRunner

from huijin.recipe import BENCHMARKS, Recipe, stage_dict

WEIGHTS = "model.safetensors"


class CheckpointError(ValueError):
    """A finished stage folder that cannot be used (its weights are gone); a ValueError, so the CLI reports it as one
    line with exit 2."""


@dataclass
class RecipeRun:
    order: list[str]  # init and the recipe's stages, in order
    results: dict[str, StageResult]  # by stage name (and "<name>.eval")
    built: list[str]  # the stages this call built (the rest were reused)

    def table(self) -> dict[str, dict[str, float | None]]:
        """stage -> benchmark -> value (None when not evaluated), for every stage of the chain."""
        out = {}
        for name in self.order:
            ev = self.results.get(f"{name}.eval")
            metrics = json.loads((ev.path / "eval.json").read_text())["metrics"] if ev else {}
            out[name] = {b: metrics.get(b) for b in BENCHMARKS}
        return out

    def evals(self) -> dict[str, dict[str, Any]]:
        return {n: json.loads((self.results[f"{n}.eval"].path / "eval.json").read_text())
                for n in self.order if f"{n}.eval" in self.results}

    def stamp(self, name: str) -> dict[str, Any]:
        return self.results[name].stamp


def load_stage_model(name: str, path: Path) -> tuple[Any, Any]:
    """The model and tokenizer of a finished stage folder; CheckpointError names the stage when weights are gone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / WEIGHTS).is_file() or not (path / "config.json").is_file():
        raise CheckpointError(f"stage {name!r}: {path} has no model weights ({WEIGHTS}); remove that folder to rebuild "
                              f"the stage")
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    return model, AutoTokenizer.from_pretrained(path)


def _file_hashes(recipe: Recipe, name: str) -> dict[str, str]:
    from shared.eval import sha256_of

    return {s: sha256_of(recipe.sources[s].path) for s in recipe.stages[name].mixture if s in recipe.sources}


def _train_settings(recipe: Recipe, name: str) -> dict[str, Any]:
    spec = stage_dict(recipe, name)
    for section in ("cpt", "sft", "rl"):  # bookkeeping fields that do not change the trained weights
        if spec.get(section):
            for key in ("output_dir", "threads", "logging_steps", "progress", "tensorboard", "wandb_project"):
                spec[section].pop(key, None)
    return {"spec": spec, "suite": asdict(recipe.suite), "files": _file_hashes(recipe, name),
            "stop_eval_tokens": recipe.eval.max_new_tokens}


def _eval_settings(recipe: Recipe, final: bool) -> dict[str, Any]:
    from huijin.evaluate import agent_of

    e = asdict(recipe.eval)
    e.pop("batch_size")
    return {"eval": e, "final": final and bool(recipe.eval.final_only), "suite": asdict(recipe.suite),
            "agent": asdict(agent_of(recipe))}


def _trainer_stage(recipe: Recipe, name: str, parent: str, log: Callable[[str], None]) -> Stage:
    def build(ctx: StageContext) -> dict[str, Any]:
        from shared.atomic import write_json

        from huijin.trainers import TRAINERS

        parent_dir = ctx.input(parent)
        model, tok = load_stage_model(parent, parent_dir)
        spec = recipe.stages[name]
        log(f"stage {name}: {spec.trainer} from {parent_dir}")
        kwargs = {"model_dir": parent_dir} if spec.trainer in ("grpo", "agentic_grpo", "general_rl") else {}
        stamp = TRAINERS[spec.trainer](recipe, name, model, tok, ctx.work, ctx.out, **kwargs)
        trained = stamp.pop("model")
        trained.save_pretrained(ctx.out)
        tok.save_pretrained(ctx.out)
        write_json(ctx.out / "train.json", stamp)
        return {k: v for k, v in stamp.items() if k not in ("losses", "reward_curve", "groups_kept", "rm_losses")}

    return Stage(name, build, _train_settings(recipe, name), parents=(parent,))


def _init_stage(recipe: Recipe) -> Stage:
    def build(ctx: StageContext) -> dict[str, Any]:
        from huijin.trainers import build_init

        return build_init(recipe, ctx.out)

    model = {k: v for k, v in asdict(recipe.model).items() if k != "base_cache"}  # where it is kept shapes no weight
    return Stage("init", build, {"model": model, "seed": recipe.seed}, parents=())


def _eval_stage(recipe: Recipe, name: str, final: bool, log: Callable[[str], None]) -> Stage:
    def build(ctx: StageContext) -> dict[str, Any]:
        import torch
        from shared.atomic import write_json

        from huijin.evaluate import evaluate_model

        torch.set_num_threads(recipe.threads)
        model, tok = load_stage_model(name, ctx.input(name))
        result = evaluate_model(model, tok, recipe, final=final)
        write_json(ctx.out / "eval.json", {"stage": name, **result})
        log(f"stage {name}: " + " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}"
                                          for k, v in result["metrics"].items()))
        return {"metrics": result["metrics"]}

    return Stage(f"{name}.eval", build, _eval_settings(recipe, final), parents=(name,))


def chain(recipe: Recipe, until: str | None = None, log: Callable[[str], None] = print) -> list[Stage]:
    """`init`, the recipe's stages up to `until` (all by default), each followed by its evaluation stage."""
    names = list(recipe.stages)
    if until is not None:
        if until not in names:
            raise ValueError(f"--until {until!r} is not a stage of the recipe; stages: {names}")
        names = names[: names.index(until) + 1]
    stages = [_init_stage(recipe)]
    if recipe.eval.evaluate_init:
        stages.append(_eval_stage(recipe, "init", False, log))
    parent = "init"
    for i, name in enumerate(names):
        stages.append(_trainer_stage(recipe, name, parent, log))
        stages.append(_eval_stage(recipe, name, i == len(recipe.stages) - 1, log))
        parent = name
    return stages


def run_recipe(recipe: Recipe, root: str | Path, until: str | None = None,
               log: Callable[[str], None] = print) -> RecipeRun:
    """Run (or resume) the recipe's chain under `root`; returns the stage results in order."""
    import torch

    torch.set_num_threads(recipe.threads)
    stages = chain(recipe, until, log)
    runner = StageRunner(root, log=log)
    results = runner.run_chain(stages)
    order = [s.name for s in stages if not s.name.endswith(".eval")]
    return RecipeRun(order, results, list(runner.built))


def recipe_status(recipe: Recipe, root: str | Path) -> list[dict[str, Any]]:
    """Per stage (evaluations included): key, done/todo and folder; nothing is built."""
    return StageRunner(root).status(chain(recipe, log=lambda _: None))


def format_table(table: dict[str, dict[str, float | None]], benchmarks: Sequence[str] = BENCHMARKS) -> str:
    lines = ["| stage | " + " | ".join(benchmarks) + " |", "|---" * (len(benchmarks) + 1) + "|"]
    for stage, row in table.items():
        cells = ["-" if row.get(b) is None else f"{row[b]:.3f}" for b in benchmarks]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

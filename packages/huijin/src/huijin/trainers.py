"""The stage trainers (`TRAINERS`, one per recipe `trainer` name): parent model in, trained model out.

Each `train(recipe, name, model, tok, work) -> stamp fields` trains the parent stage's model in place on the stage's
mixture (`huijin.data.draw`) and returns what goes into the stage's stamp (source counts, losses, steps, reward
curve). `work` survives a kill (`shared.stages` scratch folder), so an RL stage resumes from its last checkpoint.
- `cpt`: `shared.rl.cpt.run_lm` on packed text blocks (TRL SFTTrainer).
- `sft`: `shared.rl.sft.run_sft` on token-id examples (prompt masked; tool responses masked), stopping once the
  dev metric reaches `stop.target` (`shared.rl.warmstart.StopAtTarget`), else at `sft.steps`.
- `grpo`: `shared.rl.trainer.RLTrainer` on single-turn prompts with the stage's rewards (DAPO-style options in `rl`).
- `agentic_grpo`: the same trainer with `shared.rollout.AgentLoop` rollouts in the finance tool environment.
- `general_rl`: the same trainer with a rubric judge (`JudgeClient` on the loopback stand-in, or a real endpoint)
  or a reward model trained first on (correct, incorrect) solution pairs (`shared.rl.rm.run_rm`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huijin.recipe import Recipe

EXTRA_TAGS = ["tool_call", "tool_response"]  # single tokens of the character tokenizer


def _losses(log: list[dict]) -> list[list[float]]:
    return [[float(x["step"]), round(float(x["loss"]), 5)] for x in log if "loss" in x and "step" in x]


def _keep_metrics(src: Path, out: Path, log: list[dict] | None = None) -> None:
    """The stage's per-step training records as `metrics.jsonl` in the stage folder: the trainer's own file when it
    wrote one (the work folder is removed after success), else one line per logged step of TRL's history."""
    if (src / "metrics.jsonl").is_file():
        shutil.copy2(src / "metrics.jsonl", out / "metrics.jsonl")
    elif log:
        lines = [json.dumps({"step": int(x["step"]), **{k: v for k, v in x.items() if k != "step"}})
                 for x in log if "step" in x and "loss" in x]
        (out / "metrics.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def build_init(recipe: Recipe, out: Path) -> dict[str, Any]:
    """The starting model: `model.path`; the calibration model (Qwen2 h128/L2, character tokenizer with the tool
    tags as single tokens) built from the recipe seed; or (`model.base: arithmetic`) that model SFT'd on general
    arithmetic until a validation target (character tokenizer without extra tags: the tags are spelled out)."""
    from shared.atomic import save_pretrained
    from shared.modeling import load_model
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    m = recipe.model
    if m.path:
        model, tok = load_model(m.path, kind="causal", dtype="float32", device="cpu")
        save_pretrained(out, model, tok)
        return {"source": m.path}
    if m.base == "arithmetic":
        from shared.rl.warmstart import sft_arithmetic_policy

        seed = recipe.seed if m.base_seed < 0 else m.base_seed
        # "" = the shared cache, where sage's warm start (the same settings) is the same folder, built once
        cache = Path(m.base_cache).expanduser() / f"arith-steps{m.base_steps}-target{m.base_target}-seed{seed}" \
            if m.base_cache else None
        path = sft_arithmetic_policy(cache, steps=m.base_steps, seed=seed, target_accuracy=m.base_target,
                                     eval_every=20)
        model, tok = load_model(str(path), kind="causal", dtype="float32", device="cpu")
        save_pretrained(out, model, tok)
        stamp = json.loads((path / "warmstart.json").read_text())
        return {"source": "arithmetic base", "base_folder": str(path), "base_stopped_at": stamp.get("stopped_at"),
                "base_test_accuracy": stamp.get("test_accuracy")}
    tok = build_tokenizer(kind="char", extra_tags=EXTRA_TAGS)
    tiny_causal_lm(out, tokenizer=tok, hidden=m.hidden, layers=m.layers, heads=m.heads, ffn=m.ffn, seed=recipe.seed,
                   max_positions=m.max_positions)
    return {"source": "tiny", "vocab": len(tok)}


def train_cpt(recipe: Recipe, name: str, model: Any, tok: Any, work: Path, out: Path) -> dict[str, Any]:
    from shared.rl.cpt import run_lm

    from huijin.data import draw

    spec = recipe.stages[name]
    texts, counts = draw(recipe, name)
    settings = dataclasses.replace(spec.cpt, output_dir=str(work / "trl"), seed=recipe.seed, threads=recipe.threads)
    model, log = run_lm(model, tok, texts, settings, source=f"stage {name} texts")
    _keep_metrics(work / "trl", out, log)
    return {"model": model, "counts": counts, "losses": _losses(log)}


def dev_metric(recipe: Recipe, metric: str, n: int) -> Callable[[Any, Any], float]:
    """val_fn(model, tok) for the SFT stop: greedy accuracy on dev items (dev companies and expressions)."""
    from benchmarks.synthetic.arithmetic import make_arithmetic

    from huijin.data import finance_suite
    from huijin.evaluate import boxed_accuracy, greedy

    if metric == "fin_numeric":
        items = finance_suite(recipe.suite.seed, recipe.suite.n_companies).numeric("dev", n)
        prompts, golds = [r["prompt"] for r in items], [r["answer"] for r in items]
    else:  # held-out train-split problems after the ones the `general` source uses
        items = make_arithmetic(10_000 + n, seed=0, split="train")[-n:]
        prompts, golds = [r.prompt for r in items], [r.answer for r in items]

    def val(model: Any, tok: Any) -> float:
        return boxed_accuracy(greedy(model, tok, prompts, recipe.eval.max_new_tokens, recipe.eval.batch_size), golds)

    return val


def train_sft(recipe: Recipe, name: str, model: Any, tok: Any, work: Path, out: Path) -> dict[str, Any]:
    from shared.rl.sft import run_sft
    from shared.rl.warmstart import StopAtTarget

    from huijin.data import draw, sft_examples
    from huijin.env import make_env_factory, observe_call
    from huijin.evaluate import agent_of

    spec = recipe.stages[name]
    records, counts = draw(recipe, name)
    observe = observe_call(make_env_factory(agent_of(recipe), recipe.suite.seed, recipe.suite.n_companies, "train"))
    examples = sft_examples(records, tok, observe)
    settings = dataclasses.replace(spec.sft, output_dir=str(work / "trl"), seed=recipe.seed, threads=recipe.threads)
    stop = spec.stop
    stopper = StopAtTarget(tok, dev_metric(recipe, stop.metric, stop.dev_items) if stop else None,
                           stop.target if stop else None, stop.every if stop else 1)
    model, log = run_sft(model, tok, examples, settings, source=f"stage {name} records", callbacks=[stopper])
    _keep_metrics(work / "trl", out, log)
    return {"model": model, "counts": counts, "losses": _losses(log), "stopped_at": stopper.stopped_at,
            "steps_run": max((int(x["step"]) for x in log if "step" in x), default=0),
            "dev_curve": stopper.curve, "stop": dataclasses.asdict(stop) if stop else None}


@contextlib.contextmanager
def _judge(spec: Any) -> Any:
    """A JudgeClient: on the configured endpoint, or on the rubric stand-in served on loopback."""
    from shared.rewards.judge import JudgeClient
    from shared.serving import ChatServer

    from huijin.rewards import RUBRIC_TEMPLATE, rubric_reply

    j = spec.judge
    if j is not None and j.endpoint:
        yield JudgeClient(j.endpoint, model=j.model, template=RUBRIC_TEMPLATE, score_scale=j.scale, max_tokens=64,
                          on_failure="count_incorrect")
        return
    server = ChatServer(rubric_reply, model="rubric-stand-in").start()
    try:
        yield JudgeClient(server.url, model="rubric-stand-in", template=RUBRIC_TEMPLATE,
                          score_scale=j.scale if j else 10.0, max_tokens=16)
    finally:
        server.stop()


def _train_rm(recipe: Recipe, name: str, model_dir: Path, work: Path) -> tuple[Any, dict[str, Any]]:
    """A reward model from the parent policy's weights, trained on (correct, incorrect) pairs of train problems;
    its pair accuracy is measured on held-out pairs."""
    from shared.rewards.rm import RewardModel
    from shared.rl.rm import run_rm

    from huijin.data import builtin_items
    from huijin.rewards import preference_pairs

    rs = recipe.stages[name].rm
    pool = builtin_items("general", recipe.suite.seed, recipe.suite.n_companies)
    pairs = preference_pairs(pool[: rs.pairs + rs.held_out], seed=recipe.seed)
    train, held = pairs[: rs.pairs], pairs[rs.pairs:]
    rm = RewardModel.load(str(model_dir))
    settings = dataclasses.replace(rs.train, output_dir=str(work / "rm"), seed=recipe.seed, threads=recipe.threads)
    before = rm.pair_accuracy(held)
    trained, log = run_rm(rm.model, rm.tokenizer, train, settings, source=f"stage {name} preference pairs")
    rm = RewardModel(trained, rm.tokenizer)
    return rm, {"rm_pair_accuracy_before": before, "rm_pair_accuracy": rm.pair_accuracy(held),
                "rm_losses": _losses(log), "rm_pairs": len(train), "rm_held_out": len(held)}


def train_rl(recipe: Recipe, name: str, model: Any, tok: Any, work: Path, out: Path, model_dir: Path | None = None
             ) -> dict[str, Any]:
    """GRPO for the three RL trainers; they differ in rollouts (agentic) and reward services (judge, RM)."""
    from benchmarks.synthetic.finance import LARGE_METRICS, SMALL_METRICS
    from shared.rl.trainer import RLTrainer

    from huijin.data import draw
    from huijin.env import tool_schemas
    from huijin.rewards import RewardContext, make_reward_fn

    spec = recipe.stages[name]
    records, counts = draw(recipe, name)
    cfg = dataclasses.replace(spec.rl, output_dir=str(work / "rl"), seed=recipe.seed, threads=recipe.threads,
                              tensorboard=False)
    ctx = RewardContext(agent=spec.agent, schemas=tool_schemas(SMALL_METRICS + LARGE_METRICS))
    stamp: dict[str, Any] = {"counts": counts}
    with contextlib.ExitStack() as stack:
        if "rubric" in spec.reward:
            ctx.judge = stack.enter_context(_judge(spec))
            ctx.judge_workers = spec.judge.workers if spec.judge else 4
            stamp["judge"] = spec.judge.endpoint if spec.judge and spec.judge.endpoint else \
                "rubric stand-in: deterministic rule on the loopback ChatServer, read by JudgeClient"
        if "rm" in spec.reward:
            ctx.rm, rm_stamp = _train_rm(recipe, name, model_dir, work)
            stamp.update(rm_stamp)
        rollout_fn = _agentic_rollout(recipe, name, tok, cfg) if spec.trainer == "agentic_grpo" else None
        holder: dict[str, Any] = {}
        trainer = RLTrainer(cfg, model, tok, records, make_reward_fn(spec.reward, ctx),
                            rollout_fn=rollout_fn(holder) if rollout_fn else None)
        holder["trainer"] = trainer
        t0 = time.perf_counter()
        resumed_from = trainer.step if trainer.resume() else 0  # a killed earlier build left a checkpoint in work
        history = trainer.train()
    _keep_metrics(work / "rl", out)
    stamp.update({"model": trainer.policy, "reward_curve": [round(float(h["reward"]), 4) for h in history],
                  "groups_kept": [int(h.get("groups_kept", 0)) for h in history], "rl_seconds": time.perf_counter() - t0,
                  "resumed_from_step": resumed_from,
                  "reward_counters": dict(ctx.counters)})
    return stamp


def _agentic_rollout(recipe: Recipe, name: str, tok: Any, cfg: Any) -> Callable[[dict], Callable]:
    """rollout_fn factory: AgentLoop episodes on the trainer's own generator, seeded by step and group."""

    def make(holder: dict[str, Any]) -> Callable:
        def rollout_fn(recs: list, n: int, group_ids: list) -> list:
            from huijin.evaluate import tool_episodes

            trainer = holder["trainer"]
            seed = recipe.seed * 100_003 + trainer.step * 997 + (int(group_ids[0]) if group_ids else 0)
            spec = recipe.stages[name]
            return tool_episodes(trainer.policy, tok, recs, spec.agent, recipe, "train", temperature=cfg.temperature,
                                 batch_size=cfg.gen_batch_size, n=n, group_ids=group_ids, seed=seed)

        return rollout_fn

    return make


TRAINERS: dict[str, Callable[..., dict[str, Any]]] = {
    "cpt": train_cpt, "sft": train_sft, "grpo": train_rl, "agentic_grpo": train_rl, "general_rl": train_rl,
}  # fmt: skip

"""The replication's cached warm start (key, miss then hit, shared stage 1, refusal of a foreign folder), the dev
split (disjoint from train and test), the per-step group statistics, the paired differences and the packaged
full config."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from matchtir.config import MatchTIRConfig
from matchtir.data import suite_samples
from matchtir.env import make_env_factory
from matchtir.replicate import CONFIG_DIR, paired_differences, row_config
from matchtir.train import group_stats, sft_examples
from matchtir.warmstart import STAMP, cached_warm_start, warm_start_key
from shared.config import load_config
from shared.modeling.tiny import build_tokenizer
from shared.rollout.trajectory import Trajectory


def tiny_cfg(cache: Path, **ws) -> MatchTIRConfig:
    cfg = MatchTIRConfig()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, suite="copy", train_tasks=12, sft_traces=6, test_tasks=4, dev_tasks=4),
        model=dataclasses.replace(cfg.model, hidden=32, ffn=64, heads=2, vocab_size=400),
        sft=dataclasses.replace(cfg.sft, steps=3, batch_size=4, logging_steps=1),
        rollout=dataclasses.replace(cfg.rollout, parallel_calls=True),
        warm_start=dataclasses.replace(cfg.warm_start, cache_dir=str(cache), stage2_steps=2, **ws))


def test_warm_start_key_tracks_weight_settings_only(tmp_path):
    cfg = tiny_cfg(tmp_path)
    key = warm_start_key(cfg, 0)
    assert key.endswith("-seed0") and warm_start_key(cfg, 1).endswith("-seed1")
    same = [dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, logging_steps=7, threads=2, report_to="wandb")),
            dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_tasks=9, dev_tasks=9)),
            dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, lr=1.0)),
            dataclasses.replace(cfg, warm_start=dataclasses.replace(cfg.warm_start, cache_dir="/elsewhere"))]
    assert all(warm_start_key(c, 0) == key for c in same)
    other = [dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, lr=1e-3)),
             dataclasses.replace(cfg, warm_start=dataclasses.replace(cfg.warm_start, stage2_lr=5e-4)),
             dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sft_traces=5)),
             dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden=64))]
    assert all(warm_start_key(c, 0) != key for c in other)
    assert warm_start_key(cfg, 1).split("-")[0] != key.split("-")[0]  # the seed is hashed too


def test_cache_miss_then_hit_with_shared_stage1(tmp_path):
    cfg = tiny_cfg(tmp_path / "cache", stage1_seed=0)
    logs: list[str] = []
    path0, hit0 = cached_warm_start(cfg, 0, tmp_path / "run" / "seed0", logs.append)
    assert not hit0 and (path0 / "model.safetensors").exists()
    stamp = json.loads((path0 / STAMP).read_text())
    assert stamp["settings"]["stage1"]["seed"] == 0 and [s["steps"] for s in stamp["stages"]] == [2]
    assert len(logs) == 2  # stage 1 (seed 0), then seed 0's stage 2
    built = (path0 / "model.safetensors").stat().st_mtime_ns
    path0b, hit = cached_warm_start(cfg, 0, tmp_path / "run" / "seed0", logs.append)
    assert (path0b, hit) == (path0, True) and (path0 / "model.safetensors").stat().st_mtime_ns == built
    path1, hit1 = cached_warm_start(cfg, 1, tmp_path / "run" / "seed1", logs.append)
    assert not hit1 and path1 != path0 and len(logs) == 3  # seed 1 trains stage 2 only, from the shared stage 1
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 3 and not any(".tmp" in f for f in folders)  # stage 1 + two finals, no leftovers


def test_cache_refuses_a_folder_with_other_settings(tmp_path):
    cfg = tiny_cfg(tmp_path / "cache", stage1_seed=-1)
    target = tmp_path / "cache" / warm_start_key(cfg, 0)
    target.mkdir(parents=True)
    (target / STAMP).write_text(json.dumps({"settings": {"seed": 0, "other": True}}))
    with pytest.raises(FileExistsError, match="other settings"):
        cached_warm_start(cfg, 0, tmp_path / "run" / "seed0", print)


def test_dev_split_is_apart_from_train_and_test(tmp_path):
    d = tiny_cfg(tmp_path).data
    train, dev, test = (suite_samples(d, s) for s in ("train", "dev", "test"))
    texts = [{s["messages"][0]["content"] for s in part} for part in (train, dev, test)]
    assert len(dev) == 4 and not texts[0] & texts[1] and not texts[1] & texts[2]
    bigger = suite_samples(dataclasses.replace(d, train_tasks=16), "train")
    assert bigger[12:] == dev  # the dev tasks are the train-split draws right after the training tasks
    with pytest.raises(ValueError, match="dev_tasks must be > 0"):
        suite_samples(dataclasses.replace(d, dev_tasks=0), "dev")
    with pytest.raises(ValueError, match="no dev split is drawn from data files"):
        suite_samples(dataclasses.replace(d, train_file="x.jsonl"), "dev")


def test_group_stats_counts_groups_with_reward_spread():
    def traj(gid: int, turn_rewards: list[float], solve: float) -> Trajectory:
        t = Trajectory(prompt_ids=[1], group_id=gid, turn_rewards=turn_rewards)
        t.metadata["scores"] = {"solve_f1": solve}
        return t

    trajs = [traj(0, [0.5], 1.0), traj(0, [0.5], 0.0), traj(1, [0.0], 0.5), traj(1, [1.0], 0.5)]
    # group 0: totals 0.5 + 0 and 0.5 + 0 (no spread); group 1: 0 + 0.2 and 1 + 0 (spread)
    stats = group_stats(trajs, [0.0, 0.0, 0.2, 0.0])
    assert stats == {"groups": 2, "informative_share": 0.5, "train_solve_f1": 0.5}


def test_paired_differences_per_seed():
    def seed(traj: float, km: float, km_traj: float = 0.0) -> dict:
        base = {"solve_rate": 0.0, "precision": 0.0, "answer_f1": 0.0, "mean_turns": 2.0}
        return {"metrics": {"trajectory": {**base, "solve_f1": traj}, "km": {**base, "solve_f1": km},
                            "km_traj": {**base, "solve_f1": km_traj}}}

    out = paired_differences([seed(0.2, 0.3), seed(0.25, 0.2)], ["trajectory", "km"])
    assert set(out) == {"km-trajectory"}
    d = out["km-trajectory"]["solve_f1"]
    assert d["per_seed"] == pytest.approx([0.1, -0.05])
    assert d["mean"] == pytest.approx(0.025) and d["sd"] == pytest.approx(0.075) and d["ahead"] == 1
    assert paired_differences([seed(0.2, 0.3)], ["km"]) == {}
    # the paper's variable alone: km (dual-level) against km_traj (same matching rewards, trajectory-level)
    both = paired_differences([seed(0.2, 0.3, 0.28), seed(0.25, 0.2, 0.24)], ["trajectory", "km_traj", "km"])
    assert both["km-km_traj"]["solve_f1"]["per_seed"] == pytest.approx([0.02, -0.04])
    assert both["km_traj-trajectory"]["solve_f1"]["per_seed"] == pytest.approx([0.08, -0.01])


def test_rows_isolate_the_advantage_and_the_reward():
    cfg = load_config(MatchTIRConfig, CONFIG_DIR / "replicate.yaml")
    km, km_traj, traj = (row_config(cfg, r) for r in ("km", "km_traj", "trajectory"))
    assert km.reward == km_traj.reward and km.reward.scheme == "matching" and km.reward.mode == "hard"
    assert (km.advantage.mode, km_traj.advantage.mode) == ("dual", "trajectory")
    assert km_traj.advantage == traj.advantage and traj.reward.scheme == "outcome"


def test_packaged_full_config():
    path = CONFIG_DIR / "replicate.yaml"
    assert path.read_text().splitlines()[0].startswith("# uv run matchtir replicate")
    cfg = load_config(MatchTIRConfig, path)
    assert cfg.warm_start.cache_dir and cfg.warm_start.stage2_steps > 0 and cfg.warm_start.stage1_seed == 0
    assert cfg.data.dev_tasks > 0 and cfg.rl.eval_every > 0
    assert set(yaml.safe_load(path.read_text())) <= {f.name for f in dataclasses.fields(MatchTIRConfig)}


@pytest.mark.parametrize("name", ["replicate.yaml", "replicate_quick.yaml"])
def test_warm_start_step_trains_the_per_turn_batch_of_0_3(name):
    """Up to 0.3.0 a warm-start step trained 32 single-turn records. One masked example now holds a whole gold
    trace (a parallel call turn and the answer turn), so the replication takes 16 traces per step: 32 trained
    turns per step again, the same tokens and epochs per step. With 32 traces a step trained 64 turns and every
    epoch count doubled (README: the warm start of the first 0.4.0 run)."""
    cfg = load_config(MatchTIRConfig, CONFIG_DIR / name)
    samples = suite_samples(cfg.data, "train")[: cfg.data.sft_traces]
    tok = build_tokenizer(kind="char")
    examples = sft_examples(samples[:90], tok, cfg.data.prompt_style, make_env_factory(), cfg.rollout.parallel_calls)
    eos = tok.eos_token_id
    turns = [sum(1 for i, m in zip(ex["input_ids"], ex["completion_mask"]) if m and i == eos) for ex in examples]
    assert set(turns) == {2}  # every trace: one call turn, one answer turn, each ended by a trained eos
    assert cfg.sft.batch_size * turns[0] == 32  # trained turns per optimizer step

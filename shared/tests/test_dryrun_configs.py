"""Dry runs of whole configs: launch layout from the config's first line, RLConfig -> DryRunSpec by hand, the
context-length check, the colocated engine's weights, and `--dry-run` on a parent-CLI verb
(`verb_dry_run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from shared.dryrun import (
    DryRunError,
    DryRunSpec,
    GiB,
    Layout,
    dry_run,
    header_command,
    launch_layout,
    rl_specs,
    verb_dry_run,
)
from shared.rl.critic import CriticConfig
from shared.rl.settings import RLConfig

FSDP4 = "distributed_type: FSDP\nnum_processes: 4\nmixed_precision: bf16\n"
ZERO2 = "distributed_type: DEEPSPEED\nnum_processes: 8\nmixed_precision: bf16\ndeepspeed_config:\n  zero_stage: 2\n"


def _config(tmp_path, header: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(header + "\nseed: 0\n")
    return path


def test_launch_layout_reads_the_accelerate_config_its_command_names(tmp_path):
    (tmp_path / "accel").mkdir()
    (tmp_path / "accel" / "fsdp4.yaml").write_text(FSDP4)
    (tmp_path / "accel" / "z2.yaml").write_text(ZERO2)
    sub = tmp_path / "pkg" / "configs"
    sub.mkdir(parents=True)
    fsdp = _config(sub, "# accelerate launch --config_file accel/fsdp4.yaml -m foo.cli train --config x.yaml")
    layout = launch_layout(fsdp)  # accel/fsdp4.yaml found above the config (the repository root)
    assert (layout.world_size, layout.sharding, layout.mixed_precision) == (4, "fsdp", "bf16")
    assert "accel/fsdp4.yaml" in layout.source
    z2 = _config(sub, "# accelerate launch --config_file accel/z2.yaml --num_processes 2 -m foo.cli train", "z.yaml")
    assert (launch_layout(z2).world_size, launch_layout(z2).sharding) == (2, "zero2")
    plain = _config(sub, "# uv run foo train --config x.yaml", "p.yaml")
    assert launch_layout(plain) == Layout()
    ddp = _config(sub, "# accelerate launch --num_processes 2 -m foo.cli train", "d.yaml")
    assert (launch_layout(ddp).world_size, launch_layout(ddp).sharding) == (2, "ddp")
    missing = _config(sub, "# accelerate launch --config_file accel/nope.yaml -m foo.cli train", "m.yaml")
    with pytest.raises(DryRunError, match="accel/nope.yaml, which does not exist"):
        launch_layout(missing)


def test_header_command_joins_continued_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# accelerate launch --config_file a.yaml \\\n#   -m foo.cli train\n# a description\nseed: 0\n")
    assert header_command(path) == "accelerate launch --config_file a.yaml -m foo.cli train"


def test_rl_specs_by_hand():
    rl = RLConfig(prompts_per_step=64, generations=8, mini_batches=4, grad_accum=4, max_new_tokens=1000, beta=0.001,
                  generator_backend="vllm")
    [(label, spec)] = rl_specs(rl, "Qwen/Qwen2.5-7B-Instruct", 500, Layout(world_size=8, sharding="fsdp"))
    # 64 prompts over 8 processes = 8 prompts x 8 generations = 64 rollouts; 16 micro-batches of 4
    assert label == "policy" and spec.micro_batch == 4 and spec.seq_len == 1500
    assert spec.reference_model and spec.rollout_engine_weights and spec.rollout_tokens == 64 * 1500
    assert (spec.world_size, spec.sharding, spec.dtype) == (8, "fsdp", "bfloat16")
    hf = RLConfig(prompts_per_step=8, generations=8, gen_batch_size=16, max_new_tokens=100)
    [(_, spec)] = rl_specs(hf, "Qwen/Qwen2.5-0.5B-Instruct", 28, Layout())
    assert spec.rollout_tokens == 16 * 128 and not spec.rollout_engine_weights and not spec.reference_model
    assert spec.micro_batch == 64  # one micro-batch holds the step's 64 rollouts
    critic = RLConfig(advantage="gae", critic=CriticConfig(kind="model", model_path="Qwen/Qwen2.5-0.5B-Instruct"))
    labels = [label for label, _ in rl_specs(critic, "Qwen/Qwen2.5-1.5B-Instruct", 10, Layout())]
    assert labels == ["policy", "critic"]
    with pytest.raises(ValueError, match="micro-batches"):
        rl_specs(RLConfig(prompts_per_step=8, generations=2, mini_batches=4, grad_accum=2), "m", 1, Layout(world_size=8))


def test_rollout_engine_weights_and_the_context_check():
    spec = DryRunSpec(model="Qwen/Qwen2.5-Math-7B", seq_len=4096, rollout_engine_weights=True)
    report = dry_run(spec)
    assert report["memory_gib"]["rollout_weights"] == pytest.approx(7_615_616_512 * 2 / GiB)
    with pytest.raises(DryRunError, match="attends to 4096 tokens, but the config asks for 5000"):
        dry_run(DryRunSpec(model="Qwen/Qwen2.5-Math-7B", seq_len=5000))
    inference = dry_run(DryRunSpec(model="Qwen/Qwen2.5-0.5B-Instruct", trainable=False, seq_len=8))
    assert inference["trainable_parameters"] == 0 and inference["memory_gib"]["optimizer"] == 0
    encoder = dry_run(DryRunSpec(model="intfloat/e5-base-v2", kind="encoder", seq_len=128, micro_batch=2,
                                 gradient_checkpointing=False))
    assert encoder["memory_gib"]["activations"] == pytest.approx(34 * 768 * 256 * 12 / GiB)  # no vocabulary head


@dataclass
class _Model:
    path: str = "Qwen/Qwen2.5-0.5B-Instruct"


@dataclass
class _Toy:
    model: _Model = field(default_factory=_Model)
    seq: int = 64
    seed: int = 0

    def validate(self) -> None:
        if self.seq < 1:
            raise ValueError("seq must be >= 1")


def _toy_specs(cfg, layout):
    return [("policy", DryRunSpec(model=cfg.model.path, seq_len=cfg.seq, world_size=layout.world_size))]


def _toy_app(tmp_path, monkeypatch):
    """A parent-CLI App whose `train` offers --dry-run (its run function records that it ran) and whose `eval` not."""
    import sys
    import types

    from shared.cli import App, Verb

    module = types.ModuleType("toy_dryrun_module")
    module.specs = _toy_specs
    monkeypatch.setitem(sys.modules, "toy_dryrun_module", module)
    ran: list[str] = []
    verbs = [Verb("train", "train", lambda run: ran.append("train"), config=lambda: _Toy, seed_key="seed",
                  model_keys=("model.path",), dry_run=verb_dry_run("toy_dryrun_module:specs")),
             Verb("eval", "eval", lambda run: ran.append("eval"), config=lambda: _Toy)]
    return App(prog="toy", version="0", description="toy", verbs=verbs), ran


def test_dry_run_verb_prints_each_model_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub id is not cached: the model-path check would refuse it
    app, ran = _toy_app(tmp_path, monkeypatch)
    path = _config(tmp_path, "# uv run toy train --config run.yaml")
    out_dir = tmp_path / "out"
    assert app.main(["train", "seq=128", "--config", str(path), "--dry-run", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "the config is valid" in out and "494,032,768 total" in out and "micro-batch 1 x 128 tokens" in out
    assert "fits" in out
    assert ran == [] and not out_dir.exists()  # nothing ran, no folder was claimed
    with pytest.raises(SystemExit):
        app.main(["train", "--help"])
    assert "--dry-run" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["seq=0"], "toy train: seq must be >= 1"),
    (["nope=1"], "nope"),
    (["model.path=someone/unknown"], "neither a local folder"),
])
def test_dry_run_verb_refuses_bad_configs_in_one_line(tmp_path, capsys, monkeypatch, argv, message):
    app, ran = _toy_app(tmp_path, monkeypatch)
    path = _config(tmp_path, "# uv run toy train --config run.yaml")
    assert app.main(["train", "--config", str(path), "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("toy train: ") and message in err[0], err
    assert ran == []


def test_dry_run_needs_a_config_and_is_only_offered_where_given(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app, ran = _toy_app(tmp_path, monkeypatch)
    assert app.main(["train", "--dry-run"]) == 2
    assert "needs --config" in capsys.readouterr().err
    path = _config(tmp_path, "# uv run toy eval --config run.yaml")
    assert app.main(["eval", "--config", str(path), "--dry-run"]) == 2
    assert "unrecognized arguments: --dry-run" in capsys.readouterr().err
    # without the flag the verb's checks apply (the uncached hub id is refused) and then it runs
    assert app.main(["train", "--config", str(path)]) == 2 and "no cached copy" in capsys.readouterr().err
    assert app.main(["train", "--config", str(path), "model.path="]) == 0 and ran == ["train"]

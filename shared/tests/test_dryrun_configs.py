"""Dry runs of whole configs: launch layout from the config's first line, RLConfig -> DryRunSpec by hand, the
context-length check, the colocated engine's weights, and the package-CLI entry points (`config_dry_run`, `cli_hook`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from shared.dryrun import (
    DryRunError,
    DryRunSpec,
    GiB,
    Layout,
    cli_hook,
    config_dry_run,
    dry_run,
    header_command,
    launch_layout,
    rl_specs,
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


def test_config_dry_run_prints_each_model_and_refuses_bad_configs(tmp_path, capsys):
    path = _config(tmp_path, "# uv run toy train --config run.yaml")
    assert config_dry_run("toy train", _Toy, path, ["seq=128"], _toy_specs) == 0
    out = capsys.readouterr().out
    assert "the config is valid" in out and "494,032,768 total" in out and "micro-batch 1 x 128 tokens" in out
    assert "fits" in out
    assert config_dry_run("toy train", _Toy, path, ["seq=0"], _toy_specs) == 2
    assert capsys.readouterr().err.strip() == "toy train: seq must be >= 1"
    assert config_dry_run("toy train", _Toy, path, ["nope=1"], _toy_specs) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and err[0].startswith("toy train: ")
    assert config_dry_run("toy train", _Toy, path, ["model.path=someone/unknown"], _toy_specs) == 2
    assert "neither a local folder" in capsys.readouterr().err
    assert config_dry_run("toy train", _Toy, None, [], _toy_specs) == 2
    assert "needs --config" in capsys.readouterr().err


def test_cli_hook_only_acts_on_dry_run_of_its_verbs(tmp_path, capsys, monkeypatch):
    import sys
    import types

    module = types.ModuleType("toy_dryrun_module")
    module.Toy, module.specs = _Toy, _toy_specs
    monkeypatch.setitem(sys.modules, "toy_dryrun_module", module)
    path = _config(tmp_path, "# uv run toy train --config run.yaml")
    target = ("toy_dryrun_module:Toy", "toy_dryrun_module:specs")
    assert cli_hook("toy", ["train", "--config", str(path)], *target) is None
    assert cli_hook("toy", ["eval", "--config", str(path), "--dry-run"], *target) is None
    assert cli_hook("toy", ["train", "seq=32", f"--config={path}", "--dry-run", "--out", "x"], *target) == 0
    assert "micro-batch 1 x 32 tokens" in capsys.readouterr().out

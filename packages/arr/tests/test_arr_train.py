"""One joint RL step moves both roles' weights (and the schedule decides which); a killed run resumes at its joint
checkpoint. Rollouts come from scripted generators (varied answers and verdicts), updates run on real tiny models."""

import random
from pathlib import Path

import arr
import pytest
import torch
from arr.config import ARRConfig
from arr.protocol import REASONER, VERIFIER
from arr.train import build_policies, joint_rollout, rl_train, score_rollout
from arr.warmstart import ARR_EXTRA_TAGS, ScriptedGenerator
from shared.config import load_config


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    tok = build_tokenizer(kind="char", extra_tags=ARR_EXTRA_TAGS)
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny"), tokenizer=tok, hidden=32, layers=1, heads=2, ffn=64,
                          max_positions=2048)


def _config(tmp_path, *overrides):
    return load_config(ARRConfig, None, [f"output_dir={tmp_path}", "rl.steps=1", "rl.prompts_per_step=2",
                                         "rl.generations=4", "rl.lr=0.01", "protocol.reasoner_tokens=200",
                                         "protocol.verifier_tokens=200", "train.checkpoint_every=1", *overrides])


def _script(policies, seed=0):
    """Scripted replies: the reasoner searches, then answers right or wrong; the verifier accepts or rejects."""
    rng = random.Random(seed)

    def reasoner(context):
        if "<information>" not in context:
            return "<think>K</think><search>Where was Kara Nelo born?</search>"
        return f"<verify>yes</verify><think>a</think><answer>{rng.choice(['Lomiville', 'Pofeville'])}</answer>"

    def verifier(context):
        if context.rstrip().endswith("</answer>"):
            return f"<verify>{rng.choice(['Lomiville', 'x'])}</verify><final_answer>Lomiville</final_answer>"
        if rng.random() < 0.5:
            return "<verify>Lomiville</verify><selected_doc>Doc 1</selected_doc><response>Lomiville</response>"
        return "<verify>no</verify><response>No answer in the documents.</response>"

    tok = policies.tokenizer
    for name, fn in ((REASONER, reasoner), (VERIFIER, verifier)):
        if name in policies.trainers:
            policies.trainers[name].generator = ScriptedGenerator(tok, fn)


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def _changed(before, trainer):
    after = trainer.policy.state_dict()
    return max(float((after[k] - v).abs().max()) for k, v in before.items())


def test_one_step_changes_both_roles(tmp_path, tiny_dir, record, evidence):
    cfg = _config(tmp_path)
    policies = build_policies(cfg, {REASONER: tiny_dir, VERIFIER: tiny_dir}, tmp_path / "rl", verifier=True)
    _script(policies)
    before = {name: _weights(tr) for name, tr in policies.trainers.items()}
    history = rl_train(cfg, policies, [record, {**record, "id": "q2"}], evidence(), tmp_path / "rl", True,
                       progress=False)
    assert len(history) == 1 and history[0]["process_reward"] != 0.0
    for name, tr in policies.trainers.items():
        assert tr.step == 1
        assert _changed(before[name], tr) > 0, f"{name} did not move"
    assert (tmp_path / "rl" / "checkpoints").is_dir()


def test_alternate_schedule_updates_the_reasoner_first(tmp_path, tiny_dir, record, evidence):
    cfg = _config(tmp_path, "train.schedule=alternate")
    policies = build_policies(cfg, {REASONER: tiny_dir, VERIFIER: tiny_dir}, tmp_path / "rl", verifier=True)
    _script(policies)
    before = {name: _weights(tr) for name, tr in policies.trainers.items()}
    rl_train(cfg, policies, [record, {**record, "id": "q2"}], evidence(), tmp_path / "rl", True, progress=False)
    assert _changed(before[REASONER], policies.trainers[REASONER]) > 0
    assert _changed(before[VERIFIER], policies.trainers[VERIFIER]) == 0.0
    assert policies.trainers[VERIFIER].step == 1  # an empty update keeps both at the same step


def test_shared_policy_updates_on_both_roles_normalised_apart(tmp_path, tiny_dir, record, evidence):
    cfg = _config(tmp_path, "roles.policies=shared")
    policies = build_policies(cfg, {"shared": tiny_dir}, tmp_path / "rl", verifier=True)
    tok = policies.tokenizer
    shared = policies.trainers["shared"]
    rng = random.Random(1)
    shared.generator = ScriptedGenerator(tok, lambda c: (
        "<verify>v</verify><final_answer>Lomiville</final_answer>" if c.rstrip().endswith("</answer>") else
        "<verify>v</verify><response>no</response>" if c.startswith("Verify") else
        "<think>K</think><search>q</search>" if "<information>" not in c else
        f"<verify>no</verify><think>a</think><answer>{rng.choice(['Lomiville', 'Pofeville'])}</answer>"))
    before = _weights(shared)
    rollout = joint_rollout(cfg, policies.generators, evidence(), [record], 4, seed=0, temperature=1.0, verifier=True)
    score_rollout(cfg, rollout, tok, verifier=True)
    keys = {t.group for t in rollout.all()}
    assert keys == {("q1", REASONER), ("q1", VERIFIER)}
    rl_train(cfg, policies, [record], evidence(), tmp_path / "rl", True, progress=False)
    assert _changed(before, shared) > 0


def test_resume_continues_from_the_joint_checkpoint(tmp_path, tiny_dir, record, evidence):
    cfg = _config(tmp_path, "rl.steps=2")
    records = [record, {**record, "id": "q2"}]
    policies = build_policies(cfg, {REASONER: tiny_dir, VERIFIER: tiny_dir}, tmp_path / "rl", verifier=True)
    _script(policies)
    cfg_one = _config(tmp_path, "rl.steps=1")
    rl_train(cfg_one, policies, records, evidence(), tmp_path / "rl", True, progress=False)
    saved = {name: _weights(tr) for name, tr in policies.trainers.items()}
    again = build_policies(cfg, {REASONER: tiny_dir, VERIFIER: tiny_dir}, tmp_path / "rl", verifier=True)
    _script(again, seed=1)
    history = rl_train(cfg, again, records, evidence(), tmp_path / "rl", True, progress=False)
    assert [h["step"] for h in history] == [1, 2]  # step 1 came back from the checkpoint, step 2 is new
    for name, tr in again.trainers.items():
        assert tr.step == 2
        assert _changed(saved[name], tr) > 0
    loaded = build_policies(cfg, {REASONER: tiny_dir, VERIFIER: tiny_dir}, tmp_path / "rl2", verifier=True)
    from shared.rl.checkpoint import MultiPolicyCheckpoint

    assert MultiPolicyCheckpoint(tmp_path / "rl", loaded.trainers).resume()
    for name, tr in loaded.trainers.items():
        assert all(torch.equal(v, again.trainers[name].policy.state_dict()[k])
                   for k, v in tr.policy.state_dict().items())


def test_warm_start_cache_key_ignores_logging_fields():
    # report_to, logging_steps, threads and output_dir leave the weights alone, so turning on wandb must reuse the
    # cached warm starts; the packaged config's keys are the folders its full and quick runs built (arr 0.1.0)
    import dataclasses

    from arr.warmstart import role_stamp, settings_hash

    cfg = load_config(ARRConfig, str(Path(arr.__file__).parent / "configs" / "replicate.yaml"), [])
    keys = {}
    for name, steps in (("reasoner", cfg.warm_start.reasoner_steps), ("verifier", cfg.warm_start.verifier_steps)):
        sft = dataclasses.replace(cfg.sft, steps=steps, seed=cfg.warm_start.seed)
        keys[name] = settings_hash(role_stamp(cfg, name, sft))
        noisy = dataclasses.replace(sft, report_to="wandb", logging_steps=3, threads=4, output_dir="elsewhere")
        assert settings_hash(role_stamp(cfg, name, noisy)) == keys[name]
        assert settings_hash(role_stamp(cfg, name, dataclasses.replace(sft, lr=sft.lr * 2))) != keys[name]
    assert keys == {"reasoner": "e324004d67dcf666", "verifier": "4e93224611ba1abd"}

"""Masked multi-turn SFT from token ids: TRL's loss is exactly the mean next-token loss over mask-1 tokens (checked
against a hand computation on the tiny Qwen2), a short run lowers it, trajectories become examples without
re-tokenising, and bad examples are refused naming record and field before any training."""

import pytest
import torch
from shared.rl.sft import SFTSettings, run_sft, trajectory_to_example
from shared.rollout.trajectory import Trajectory
from transformers import AutoModelForCausalLM, AutoTokenizer


def _model(path):
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _examples():
    """Three transcripts: prompt (mask 0), a policy turn, an observation (mask 0), a second policy turn."""
    g = torch.Generator().manual_seed(0)
    out = []
    for prompt, turn1, obs, turn2 in ((3, 4, 2, 3), (5, 6, 4, 5), (2, 3, 1, 1)):
        ids = torch.randint(10, 90, (prompt + turn1 + obs + turn2,), generator=g).tolist()
        mask = [0] * prompt + [1] * turn1 + [0] * obs + [1] * turn2
        out.append({"input_ids": ids, "completion_mask": mask})
    return out


@torch.no_grad()
def _hand_loss(model, examples, use_mask=True):
    """Mean over the targeted tokens of -log p(token i | tokens < i); token 0 is never a target."""
    total, count = 0.0, 0
    for ex in examples:
        ids = ex["input_ids"]
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        for i in range(1, len(ids)):
            if ex["completion_mask"][i] or not use_mask:
                total -= float(logp[i - 1, ids[i]])
                count += 1
    return total / count


def test_token_loss_is_the_hand_loss_over_mask_one_tokens(tiny_qwen2_dir, tmp_path):
    model, tok = _model(tiny_qwen2_dir)
    examples = _examples()
    masked, everything = _hand_loss(model, examples), _hand_loss(model, examples, use_mask=False)
    assert abs(masked - everything) > 0.01  # the test can tell the two apart
    # lr 0: the one logged step is the loss of the untouched model over the whole batch
    settings = SFTSettings(output_dir=str(tmp_path), steps=1, lr=0.0, batch_size=3, warmup_steps=0, logging_steps=1)
    _, log = run_sft(model, tok, examples, settings)
    logged = next(x for x in log if "loss" in x)
    assert logged["loss"] == pytest.approx(masked, abs=1e-4)
    assert logged["num_tokens"] == sum(len(e["input_ids"]) for e in examples)  # nothing appended or cut


def test_short_masked_run_lowers_the_masked_loss(tiny_qwen2_dir, tmp_path):
    model, tok = _model(tiny_qwen2_dir)
    examples = _examples()
    before = _hand_loss(model, examples)
    settings = SFTSettings(output_dir=str(tmp_path), steps=30, lr=3e-3, batch_size=3, warmup_steps=0,
                           lr_schedule="constant", logging_steps=10)
    model, _ = run_sft(model, tok, examples, settings)
    after = _hand_loss(model.eval(), examples)
    print("masked loss before", before, "after", after)
    assert after < 0.5 * before


def test_trajectory_to_example_keeps_ids_and_loss_mask():
    traj = Trajectory(prompt_ids=[5, 6, 7])
    traj.append([20, 21], policy=True)
    traj.append([30, 31, 32], policy=False)  # observation
    traj.append([22], policy=True)
    ex = trajectory_to_example(traj)
    assert ex == {"input_ids": [5, 6, 7, 20, 21, 30, 31, 32, 22], "completion_mask": [0, 0, 0, 1, 1, 0, 0, 0, 1]}
    with_eos = trajectory_to_example(traj, eos_id=2)
    assert with_eos["input_ids"][-1] == 2 and with_eos["completion_mask"][-1] == 1 and len(with_eos["input_ids"]) == 10
    traj.append([2], policy=True)  # already ends with eos: nothing appended
    assert trajectory_to_example(traj, eos_id=2)["input_ids"] == [5, 6, 7, 20, 21, 30, 31, 32, 22, 2]
    traj.loss_mask.pop()
    with pytest.raises(ValueError, match="loss_mask has 6 entries for 7 response ids"):
        trajectory_to_example(traj)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"input_ids": [1, 2, 3], "completion_mask": [0, 1]}, r"record 1 \(id 'x'\): field 'completion_mask' has 2 entries for 3"),
        ({"input_ids": [1, 2, 3], "completion_mask": [0, 2, 1]}, "must hold only 0 and 1"),
        ({"input_ids": [1, 2, 3], "completion_mask": [1, 0, 0]}, "marks no token after the first"),
        ({"input_ids": [1, 2, 99999], "completion_mask": [0, 1, 1]}, "'input_ids' holds 99999, outside the vocabulary"),
        ({"input_ids": [1] * 600, "completion_mask": [1] * 600}, "600 tokens exceed max_length 512"),
        ({"input_ids": "abc", "completion_mask": [0, 1, 1]}, "'input_ids' must be a non-empty list of integers"),
        ({"prompt": "a", "completion": "b"}, r"record 1 \(id 'x'\): expected a mapping with \('input_ids'"),
    ],
)
def test_bad_token_examples_name_record_and_field(tiny_qwen2_dir, tmp_path, bad, message):
    model, tok = _model(tiny_qwen2_dir)
    records = [_examples()[0], {"id": "x", **bad}]
    with pytest.raises(ValueError, match=message):
        run_sft(model, tok, records, SFTSettings(output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # refused before any training

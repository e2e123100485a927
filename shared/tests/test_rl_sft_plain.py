"""shared.rl.sft_plain: the masked loss by hand, the prompt/completion encoding, errors before training, a loss that
falls, early stopping through StopAtTarget, and cached_sft_policy with sft_fn."""

import pytest
import torch
from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
from shared.rl.sft import SFTSettings
from shared.rl.sft_plain import batch_loss, encode_examples, run_plain_sft
from transformers import AutoModelForCausalLM


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="char")


def _model(tok, tmp_path, seed=0):
    return AutoModelForCausalLM.from_pretrained(tiny_causal_lm(tmp_path / f"m{seed}", tokenizer=tok, hidden=32,
                                                               layers=1, heads=2, ffn=64, seed=seed))


def test_encoding_prompt_then_completion_then_eos(tok):
    (ids, mask), = encode_examples(tok, [{"prompt": "ab", "completion": "cd"}], 16)
    a, b, c, d = (tok(ch, add_special_tokens=False)["input_ids"][0] for ch in "abcd")
    assert ids == [a, b, c, d, tok.eos_token_id] and mask == [0, 0, 1, 1, 1]
    (ids2, mask2), = encode_examples(tok, [{"input_ids": [5, 6, 7], "completion_mask": [0, 1, 1]}], 16)
    assert (ids2, mask2) == ([5, 6, 7], [0, 1, 1])
    with pytest.raises(ValueError, match="record 0: 5 tokens exceed max_length 4"):
        encode_examples(tok, [{"prompt": "ab", "completion": "cd"}], 4)


def test_batch_loss_by_hand(tok, tmp_path):
    model = _model(tok, tmp_path)
    examples = [([5, 6, 7, 8], [0, 0, 1, 1]), ([9, 10, 11], [0, 1, 0])]
    total, n = batch_loss(model, examples, tok.pad_token_id)
    assert n == 3  # targets 7, 8 of row 0 and 10 of row 1
    with torch.no_grad():
        lp0 = torch.log_softmax(model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits[0], -1)
        lp1 = torch.log_softmax(model(input_ids=torch.tensor([[9, 10, 11]])).logits[0], -1)
    by_hand = -(lp0[1, 7] + lp0[2, 8] + lp1[0, 10])
    assert float(total.detach()) == pytest.approx(float(by_hand), rel=1e-5)


def test_bad_records_fail_before_training(tok, tmp_path):
    model = _model(tok, tmp_path)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="record 1"):
        run_plain_sft(model, tok, [{"prompt": "a", "completion": "b"}, {"prompt": "a"}], SFTSettings(steps=2))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_loss_falls_and_callback_stops(tok, tmp_path):
    records = [{"prompt": f"{i}+{i}=", "completion": str(2 * i)} for i in range(8)]
    settings = SFTSettings(output_dir=str(tmp_path / "o"), steps=80, lr=3e-3, batch_size=8, warmup_steps=5,
                           logging_steps=10, max_length=32)
    model, log = run_plain_sft(_model(tok, tmp_path), tok, records, settings)
    assert [e["step"] for e in log] == list(range(10, 81, 10))
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]

    class StopAt:
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 7:
                control.should_training_stop = True

    _, log = run_plain_sft(_model(tok, tmp_path, 1), tok, records, settings, callbacks=[StopAt()])
    assert log[-1]["step"] == 7


def test_cached_sft_policy_with_plain_trainer(tok, tmp_path):
    from shared.rl.warmstart import cached_sft_policy

    records = [{"prompt": "x=", "completion": "1"}] * 4
    calls = []

    def val(model, tokenizer):
        calls.append(1)
        return 1.0  # reaches the target at the first measurement

    settings = SFTSettings(steps=50, batch_size=4, lr=1e-3, warmup_steps=0, logging_steps=5, max_length=16)
    path = cached_sft_policy(tmp_path / "ws", lambda scratch: (_model(tok, tmp_path, 2), tok), records, val_fn=val,
                             target=0.5, settings=settings, eval_every=5, key={"trainer": "plain"},
                             sft_fn=run_plain_sft)
    import json

    stamp = json.loads((path / "warmstart.json").read_text())
    assert stamp["stopped_at"] == 5 and len(calls) == 1 and (path / "config.json").is_file()

"""Regression for `shared.modeling.clone_model`: the copy of a model that TRL has trained must compute with, and
train, its own weights. A `copy.deepcopy` kept TRL's instance-bound forward wrapper, so the copy ran the source
model (matchtir's RL rows never updated; an RL reference copied that way would follow the live policy)."""

import torch
from shared.modeling import clone_model, load_model
from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
from shared.rl.sft import SFTSettings, run_sft


def test_clone_after_sft_uses_and_trains_its_own_weights(tmp_path):
    torch.manual_seed(0)
    tok = build_tokenizer(kind="char")
    path = tiny_causal_lm(tmp_path / "m", tokenizer=tok, hidden=32, layers=1, heads=2, ffn=64)
    model, tok = load_model(str(path), kind="causal", dtype="float32", device="cpu")
    records = [{"prompt": f"Q{i}:", "completion": f" {i}"} for i in range(8)]
    model, _ = run_sft(model, tok, records, SFTSettings(output_dir=str(tmp_path / "sft"), steps=2, batch_size=4,
                                                        warmup_steps=0, logging_steps=1))
    copy = clone_model(model)
    assert copy is not model
    assert all(torch.equal(copy.state_dict()[k], v) for k, v in model.state_dict().items())
    ids = torch.tensor([tok("Q1: 1")["input_ids"]])
    copy(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for p in copy.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in model.parameters())  # the source model is untouched

    # The copy computes with its own weights: scaling them changes its logits and not the source's.
    with torch.no_grad():
        before = model(input_ids=ids).logits.clone()
        for p in copy.parameters():
            p.mul_(0.5)
        assert not torch.allclose(copy(input_ids=ids).logits, before)
        assert torch.allclose(model(input_ids=ids).logits, before)


def test_clone_of_a_plain_module_is_a_deep_copy():
    layer = torch.nn.Linear(3, 2)
    twin = clone_model(layer)
    assert twin is not layer and torch.equal(twin.weight, layer.weight)
    with torch.no_grad():
        twin.weight.zero_()
    assert layer.weight.abs().sum() > 0

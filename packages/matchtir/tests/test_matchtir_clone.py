"""Regression: a replication row's copy of the warm-started policy must train its own weights. After TRL's SFT a
`copy.deepcopy` of the model ran the source model's forward, so RL gradients never reached the copy."""

import torch
from matchtir.train import clone_model
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
from shared.rl.sft import SFTSettings, run_sft


def test_clone_after_sft_gets_its_own_gradients(tmp_path):
    tok = build_tokenizer(kind="char")
    path = tiny_causal_lm(tmp_path / "m", tokenizer=tok, hidden=32, layers=1, heads=2, ffn=64)
    model, tok = load_model(str(path), kind="causal", dtype="float32", device="cpu")
    records = [{"prompt": f"Q{i}:", "completion": f" {i}"} for i in range(8)]
    model, _ = run_sft(model, tok, records, SFTSettings(output_dir=str(tmp_path / "sft"), steps=2, batch_size=4,
                                                        warmup_steps=0, logging_steps=1))
    copy = clone_model(model)
    source = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(copy.state_dict()[k], v) for k, v in source.items())
    ids = torch.tensor([tok("Q1: 1")["input_ids"]])
    copy(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for p in copy.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in model.parameters())  # the source model is untouched

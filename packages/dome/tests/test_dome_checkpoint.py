"""GR training checkpoints: a run killed mid-way and resumed ends with the same parameters as an uninterrupted one."""

import pytest
import torch
from dome.docids import naive_ids
from dome.gr import CheckpointError, Example, GenerativeRetriever, train
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer, tiny_t5

DOCS = {"a": ["red apples", "apple trees"], "b": ["blue ocean", "deep sea"], "c": ["snow peak", "cold air"]}


@pytest.fixture(scope="module")
def init_path(tmp_path_factory):
    tok = build_tokenizer(kind="char")
    tok.add_tokens([f"<id_{i}>" for i in range(10)], special_tokens=True)
    return tiny_t5(tmp_path_factory.mktemp("ckpt") / "t5", tokenizer=tok, d_model=16, d_ff=32, layers=1, heads=2)


def _fresh(path) -> tuple[GenerativeRetriever, list[Example]]:
    model, tok = load_model(str(path), kind="seq2seq", dtype="float32", device="cpu")
    gr = GenerativeRetriever(model, tok, naive_ids(list(DOCS)), max_input_tokens=16)
    return gr, [Example(q, gr.scheme.ids[d]) for d, qs in DOCS.items() for q in qs]


class Killed(RuntimeError):
    pass


def test_kill_and_resume_matches_uninterrupted(init_path, tmp_path):
    args = dict(steps=5, batch_size=3, lr=1e-2, warmup=2, seed=5)
    gr, ex = _fresh(init_path)
    full = train(gr, ex, **args)
    reference = {k: v.clone() for k, v in gr.model.state_dict().items()}

    gr, ex = _fresh(init_path)
    ckpt = tmp_path / "ckpt" / "train.pt"
    calls = {"n": 0}
    real_loss = gr.loss

    def dying_loss(batch):  # the process "dies" during step 4, after the step-2 checkpoint
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed("simulated kill")
        return real_loss(batch)

    gr.loss = dying_loss
    with pytest.raises(Killed):
        train(gr, ex, checkpoint=ckpt, checkpoint_every=2, **args)
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    assert not ckpt.with_name("train.pt.tmp").exists()

    gr, ex = _fresh(init_path)  # a new process: fresh initial weights, state comes from the checkpoint
    resumed = train(gr, ex, checkpoint=ckpt, checkpoint_every=2, resume=True, **args)
    assert resumed["resumed_from"] == 2
    assert resumed["losses"] == pytest.approx(full["losses"], abs=1e-6)
    for k, v in gr.model.state_dict().items():
        assert torch.allclose(v, reference[k], atol=1e-6), k
    assert torch.load(ckpt, weights_only=False)["step"] == 5


def test_resume_refuses_missing_or_mismatched_checkpoint(init_path, tmp_path):
    gr, ex = _fresh(init_path)
    ckpt = tmp_path / "train.pt"
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        train(gr, ex, steps=2, batch_size=2, lr=1e-3, checkpoint=ckpt, resume=True)
    train(gr, ex, steps=2, batch_size=2, lr=1e-3, checkpoint=ckpt, checkpoint_every=1)
    with pytest.raises(CheckpointError, match=r"train.pt: field 'steps' is 2 in the checkpoint but 4"):
        train(gr, ex, steps=4, batch_size=2, lr=1e-3, checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        train(gr, ex, steps=2, batch_size=2, lr=1e-3, checkpoint=ckpt, resume=True)


def test_retriever_turns_off_every_dropout(init_path):
    gr, ex = _fresh(init_path)
    rates = [m.p if isinstance(m, torch.nn.Dropout) else m.dropout for m in gr.model.modules()
             if isinstance(m, torch.nn.Dropout) or isinstance(getattr(m, "dropout", None), float)]
    assert rates and all(r == 0.0 for r in rates)  # T5 attention keeps its own float rate besides nn.Dropout
    gr.model.train()
    assert torch.equal(gr.loss(ex).detach(), gr.loss(ex).detach())  # train mode is deterministic

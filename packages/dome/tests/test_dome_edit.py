"""Editing a (random) tiny T5 retriever: the new docID is stored for its queries, old predictions are kept."""

import dataclasses

import pytest
import torch
from dome.config import EditConfig
from dome.docids import naive_ids
from dome.edit import KeyValueEditor
from dome.gr import Example, GenerativeRetriever, VocabularyError
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer, tiny_t5

OLD = {
    "a": ["red apples grow", "apple orchard trees"],
    "b": ["blue ocean waves", "deep sea fish"],
    "c": ["mountain snow peak", "cold alpine air"],
    "d": ["desert sand dunes", "hot dry wind"],
}
NEW = {"e": ["jazz piano music", "late night jazz club", "saxophone solo"]}


@pytest.fixture()
def retriever(tmp_path):
    torch.manual_seed(0)
    tok = build_tokenizer(kind="char")
    tok.add_tokens([f"<id_{i}>" for i in range(10)], special_tokens=True)
    path = tiny_t5(tmp_path / "t5", tokenizer=tok, d_model=32, d_ff=256, layers=2, heads=2, seed=0)
    model, tok = load_model(str(path), kind="seq2seq", dtype="float32", device="cpu")
    return GenerativeRetriever(model, tok, naive_ids(list(OLD)), max_input_tokens=32)


def _examples(gr, table):
    return [Example(q, gr.scheme.ids[d]) for d, qs in table.items() for q in qs]


@pytest.mark.parametrize("loss,update", [("hybrid", "null_space"), ("hard", "plain")])
def test_edit_stores_new_docid_and_keeps_old(retriever, loss, update):
    gr = retriever
    old = _examples(gr, OLD)
    before = _old_logprobs(gr, old)
    cfg = EditConfig(layers=[0, 1], loss=loss, update=update, steps=40, lr=0.5, clamp_norm=4.0, alpha=1e-3,
                     null_energy=1e-6, cov_weight=10.0)
    editor = KeyValueEditor(gr, cfg, [0, 1])
    editor.add_preserved(old)
    gr.add_documents(list(NEW))
    assert gr.scheme.ids["e"] == (4,)
    new = _examples(gr, NEW)
    log = editor.edit(new)
    assert log["keys"] == sum(len(e.docid) + 1 for e in new)
    top = [hits[0][0] for hits in gr.retrieve([e.text for e in new], k=3)]
    assert top == ["e"] * len(new)
    drift = (_old_logprobs(gr, old) - before).abs().max().item()
    # null space: the update cannot reach the old keys; plain: the C0 term keeps them close
    assert drift < (1e-2 if update == "null_space" else 0.1)


@torch.no_grad()
def _old_logprobs(gr, examples):
    enc = gr.encode([e.text for e in examples])
    dec, labels, mask = gr.decoder_tensors([e.docid for e in examples])
    logp = torch.log_softmax(gr.model(**enc, decoder_input_ids=dec).logits, -1)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask


def test_vocabulary_must_express_docids(tmp_path):
    tok = build_tokenizer(kind="char")
    path = tiny_t5(tmp_path / "t5", tokenizer=tok, d_model=16, d_ff=32, layers=1, heads=2)
    model, tok = load_model(str(path), kind="seq2seq", dtype="float32", device="cpu")
    with pytest.raises(VocabularyError, match="cannot express docID symbols"):
        GenerativeRetriever(model, tok, naive_ids(["x", "y"]), source="tiny")


def test_editor_rejects_bad_layers(retriever):
    with pytest.raises(ValueError, match="decoder layers"):
        KeyValueEditor(retriever, EditConfig(), [5])
    with pytest.raises(ValueError, match="edit.update"):
        KeyValueEditor(retriever, EditConfig(update="magic"), [0])


@pytest.mark.parametrize("last", [0, 1])
def test_upper_forward_matches_full_model(retriever, last):
    """The edit-vector loop re-runs only the blocks above the edited layer; it must equal the full forward."""
    gr = retriever
    ex = _examples(gr, OLD)
    editor = KeyValueEditor(gr, EditConfig(), [last])
    enc = editor._encoded(ex)
    dec, _, _ = gr.decoder_tensors([e.docid for e in ex])
    h0, base, logits_of = editor._upper_forward(enc, dec, last)
    assert torch.allclose(logits_of(h0), base, atol=1e-5)
    nudged = h0.clone()
    nudged[:, 0] += 1.0  # a change of h at the edited layer must reach the logits through the upper blocks
    assert not torch.allclose(logits_of(nudged), base, atol=1e-3)


def test_edit_vector_early_stop_on_hard_loss(retriever):
    """edit.stop_loss ends the edit-vector steps once the hard-label loss of the current δ is that low."""
    gr = retriever
    editor = KeyValueEditor(gr, EditConfig(steps=20, loss="hard"), [1])
    editor.add_preserved(_examples(gr, OLD))
    gr.add_documents(list(NEW))
    new = _examples(gr, NEW)
    first = editor.optimise_targets(new)[2]
    assert first["steps"] == 20
    editor.cfg = dataclasses.replace(editor.cfg, stop_loss=1e6)  # above the starting loss: no step at all
    z, mask, log = editor.optimise_targets(new)
    assert log["steps"] == 0
    editor.cfg = dataclasses.replace(editor.cfg, stop_loss=first["hard"] * 3)
    early = editor.optimise_targets(new)[2]
    assert 0 < early["steps"] < 20 and early["hard"] <= first["hard"] * 3

"""Causal tracing finds a planted critical decoder layer; constrained decoding only yields docIDs of the collection."""

import pytest
import torch
from dome.tracing import critical_layers, trace_decoder_layers
from dome.trie import DocIdTrie, constrained_beam_search
from shared.modeling.tiny import build_tokenizer, tiny_t5
from transformers import T5ForConditionalGeneration


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    torch.manual_seed(0)
    tok = build_tokenizer(kind="char")
    path = tiny_t5(tmp_path_factory.mktemp("t5"), tokenizer=tok, d_model=32, d_ff=64, layers=3, heads=2, seed=0)
    model = T5ForConditionalGeneration.from_pretrained(path).eval()
    return model, tok


def _planted(model, critical: int):
    """Only decoder layer `critical` has a strong FFN; later layers cannot read the (corrupted) encoder."""
    planted = T5ForConditionalGeneration(model.config).eval()
    planted.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i, block in enumerate(planted.decoder.block):
            wo = block.layer[-1].DenseReluDense.wo.weight
            wo.mul_(30.0 if i == critical else 0.05)
            if i > critical:
                block.layer[1].EncDecAttention.o.weight.zero_()
    return planted


def test_tracing_finds_planted_layer(t5):
    model, tok = t5
    enc = tok(["the cat sat", "a dog ran far", "birds fly south", "fish swim"], return_tensors="pt", padding=True)
    g = torch.Generator().manual_seed(1)
    dec = torch.randint(5, 40, (4, 4), generator=g)
    dec[:, 0] = model.config.decoder_start_token_id
    for critical in (0, 1):
        planted = _planted(model, critical)
        with torch.no_grad():
            labels = planted(**enc, decoder_input_ids=dec).logits.argmax(-1)  # the clean model's own predictions
        out = trace_decoder_layers(
            planted, enc["input_ids"], enc["attention_mask"], dec, labels, torch.ones_like(labels, dtype=torch.float),
            noise=3.0, samples=3, seed=0,
        )
        assert out["p_clean"] > out["p_corrupt"]
        assert max(range(3), key=lambda i: out["effects"][i]) == critical
        assert critical_layers(out["effects"], 1) == [critical]
    with pytest.raises(ValueError, match="top must be"):
        critical_layers([0.1, 0.2], 3)


def test_constrained_decoding_only_yields_valid_docids(t5):
    model, tok = t5
    eos = tok.eos_token_id
    docids = [[10, 11], [10, 12], [10, 11, 13], [20], [21, 22, 23]]
    trie = DocIdTrie(docids, eos_id=eos)
    enc = tok(["query one", "another query", "x"], return_tensors="pt", padding=True)
    ranked = constrained_beam_search(model, enc["input_ids"], enc["attention_mask"], trie, num_beams=4)
    valid = {tuple(d) for d in docids}
    for hits in ranked:
        seqs = [s for s, _ in hits]
        assert len(seqs) == 4 and len(set(seqs)) == 4
        assert all(s in valid for s in seqs)
        scores = [sc for _, sc in hits]
        assert scores == sorted(scores, reverse=True)
    # more beams than docIDs: the ranking holds every docID exactly once
    ranked = constrained_beam_search(model, enc["input_ids"], enc["attention_mask"], trie, num_beams=10)
    assert all(sorted(s for s, _ in hits) == sorted(valid) for hits in ranked)
    # the same trie drives HF generate through prefix_allowed_tokens_fn
    out = model.generate(
        **enc, num_beams=3, num_return_sequences=3, max_new_tokens=6, length_penalty=0.0,
        prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(model.config.decoder_start_token_id),
    )
    for row in out.tolist():
        body = row[1:]
        body = body[: body.index(eos)] if eos in body else body
        assert tuple(body) in valid


def test_beam_scores_equal_teacher_forced_logprobs(t5):
    model, tok = t5
    eos = tok.eos_token_id
    trie = DocIdTrie([[10, 11], [10, 12], [20]], eos_id=eos)
    enc = tok(["some query"], return_tensors="pt")
    hits = constrained_beam_search(model, enc["input_ids"], enc["attention_mask"], trie, num_beams=3)[0]
    for seq, score in hits:
        target = list(seq) + [eos]
        dec = torch.tensor([[model.config.decoder_start_token_id, *target[:-1]]])
        with torch.no_grad():
            logp = torch.log_softmax(model(**enc, decoder_input_ids=dec).logits, -1)[0]
        expected = sum(float(logp[i, t]) for i, t in enumerate(target))
        assert score == pytest.approx(expected, abs=1e-4)

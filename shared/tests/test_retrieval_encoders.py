"""Tests for shared.retrieval.encoders: pooling on hand-made tensors, the offline MiniLM, save/load, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shared.retrieval.encoders import EncoderLoadError, TextEncoder, default_model_path, pool_hidden_states

torch.set_num_threads(2)

# Two sequences of length 3, dim 2; row 0 has its last position padded, row 1 is full.
HIDDEN = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
        [[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]],
    ]
)
RIGHT_MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_mean_pooling_ignores_padding() -> None:
    pooled = pool_hidden_states(HIDDEN, RIGHT_MASK, "mean")
    # row 0: mean of (1,2) and (3,4) = (2,3); row 1: mean of three = (2,4)
    assert torch.allclose(pooled, torch.tensor([[2.0, 3.0], [2.0, 4.0]]))


def test_cls_pooling_takes_first_position() -> None:
    pooled = pool_hidden_states(HIDDEN, RIGHT_MASK, "cls")
    assert torch.allclose(pooled, torch.tensor([[1.0, 2.0], [0.0, 1.0]]))


def test_last_pooling_right_padding() -> None:
    pooled = pool_hidden_states(HIDDEN, RIGHT_MASK, "last")
    # row 0's last real token is position 1 -> (3,4); row 1's is position 2 -> (4,8)
    assert torch.allclose(pooled, torch.tensor([[3.0, 4.0], [4.0, 8.0]]))


def test_last_pooling_left_padding() -> None:
    hidden = torch.tensor(
        [
            [[100.0, 100.0], [1.0, 2.0], [3.0, 4.0]],
            [[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]],
        ]
    )
    left_mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    pooled = pool_hidden_states(hidden, left_mask, "last")
    assert torch.allclose(pooled, torch.tensor([[3.0, 4.0], [4.0, 8.0]]))


def test_pooling_rejects_unknown_mode_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_hidden_states(HIDDEN, RIGHT_MASK, "max")
    with pytest.raises(ValueError, match="expected hidden"):
        pool_hidden_states(HIDDEN, RIGHT_MASK[:, :2], "mean")


def test_missing_model_path_names_it(tmp_path) -> None:
    missing = tmp_path / "no-such-encoder"
    with pytest.raises(EncoderLoadError, match="no-such-encoder"):
        TextEncoder(str(missing))
    with pytest.raises(EncoderLoadError, match="no-such-encoder"):
        TextEncoder.load(missing)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder(None, device="cpu", batch_size=8)


def test_default_is_offline_minilm(minilm: TextEncoder) -> None:
    assert minilm.source == str(default_model_path())
    assert minilm.dim == 384


def test_minilm_query_closer_to_matching_passage(minilm: TextEncoder) -> None:
    query = minilm.encode_queries(["Which city is the capital of France?"])
    passages = minilm.encode_passages(
        [
            "Paris is the capital and most populous city of France.",
            "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
        ]
    )
    assert query.dtype == np.float32 and query.shape == (1, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    sims = (passages @ query.T).ravel()
    assert sims[0] > sims[1] + 0.3


def test_padding_in_batch_does_not_change_embedding(minilm: TextEncoder) -> None:
    alone = minilm.embed(["short text"])
    batched = minilm.embed(["short text", "a much longer text that forces padding onto the first one"])
    assert np.allclose(alone[0], batched[0], atol=1e-5)


def test_prefixes_are_applied(minilm: TextEncoder) -> None:
    prefixed = TextEncoder(
        None,
        device="cpu",
        query_prefix="query: ",
        passage_prefix="passage: ",
        model=minilm.model,
        tokenizer=minilm.tokenizer,
    )
    assert np.allclose(prefixed.encode_queries(["cats"]), minilm.embed(["cats"], "query: "), atol=1e-6)
    assert np.allclose(prefixed.encode_passages(["cats"]), minilm.embed(["passage: cats"]), atol=1e-6)
    assert not np.allclose(prefixed.encode_queries(["cats"]), minilm.embed(["cats"]), atol=1e-3)


def test_empty_batch_and_bad_text(minilm: TextEncoder) -> None:
    empty = minilm.encode_queries([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="text 1 must be a str"):
        minilm.encode_passages(["fine", 3])
    with pytest.raises(TypeError, match="single str"):
        minilm.encode_queries("not a list")


def _tiny_encoder(minilm: TextEncoder, pooling: str = "mean") -> TextEncoder:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=minilm.tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return TextEncoder(
        "tiny-bert",
        pooling=pooling,
        query_prefix="q: ",
        passage_prefix="p: ",
        max_length=32,
        device="cpu",
        model=BertModel(config),
        tokenizer=minilm.tokenizer,
    )


def test_forward_embeddings_keeps_gradients(minilm: TextEncoder) -> None:
    encoder = _tiny_encoder(minilm)
    encoder.model.train()
    batch = encoder.tokenize(["alpha beta", "gamma"], encoder.query_prefix)
    emb = encoder.forward_embeddings(batch)
    assert emb.requires_grad and emb.shape == (2, 16)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    emb[0].sum().backward()
    assert encoder.model.embeddings.word_embeddings.weight.grad is not None


def test_save_load_round_trip(minilm: TextEncoder, tmp_path) -> None:
    encoder = _tiny_encoder(minilm, pooling="cls")
    expected = encoder.encode_queries(["round trip"])
    encoder.save(tmp_path / "enc")
    loaded = TextEncoder.load(tmp_path / "enc", device="cpu")
    assert loaded.pooling == "cls" and loaded.query_prefix == "q: " and loaded.max_length == 32
    assert np.allclose(loaded.encode_queries(["round trip"]), expected, atol=1e-6)


def test_load_rejects_bad_settings_file(minilm: TextEncoder, tmp_path) -> None:
    encoder = _tiny_encoder(minilm)
    out = encoder.save(tmp_path / "enc")
    (out / "text_encoder.json").write_text('{"pooling": "mean", "temperature": 0.1}')
    with pytest.raises(EncoderLoadError, match="temperature"):
        TextEncoder.load(out, device="cpu")

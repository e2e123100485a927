"""DPO / RPO / IPO loss golden values, completion masks, and margins of a tiny model against its own reference."""

import copy

import pytest
import torch
from sage.pairs import Pair
from sage.policy import ReferenceCache, encode_pairs, pair_margins, preference_loss, sequence_logprobs


def test_preference_loss_golden():
    # N = 2 pairs; rows [chosen..., rejected...]
    policy = torch.tensor([-1.0, -2.0, -3.0, -1.0])
    ref = torch.tensor([-2.0, -2.0, -2.0, -2.0])
    counts = torch.tensor([2.0, 4.0, 3.0, 3.0])
    # h = (pc - rc) - (pr - rr) = [1 - (-1), 0 - 1] = [2, -1]; beta 0.5 -> margins [1.0, -0.5]
    loss, margins = preference_loss(policy, ref, counts, beta=0.5, kind="dpo")
    assert margins.tolist() == pytest.approx([1.0, -0.5])
    # -log sigmoid(1) = 0.3132617, -log sigmoid(-0.5) = 0.9740770; mean = 0.6436693
    assert float(loss) == pytest.approx(0.6436693, abs=1e-6)
    # rpo adds sft_weight * mean(-pc / len_c) = mean(1/2, 2/4) = 0.5 -> 1.1436693
    loss, _ = preference_loss(policy, ref, counts, beta=0.5, kind="rpo", sft_weight=1.0)
    assert float(loss) == pytest.approx(1.1436693, abs=1e-6)
    # ipo: (h - 1/(2 beta))^2 = (2 - 1)^2, (-1 - 1)^2 = 1, 4 -> mean 2.5
    loss, _ = preference_loss(policy, ref, counts, beta=0.5, kind="ipo")
    assert float(loss) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unknown preference loss"):
        preference_loss(policy, ref, counts, beta=0.5, kind="kto")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    path = tiny_causal_lm(tmp_path_factory.mktemp("tiny"), tokenizer=build_tokenizer(kind="char"), hidden=32,
                          layers=1, heads=2, ffn=64, seed=0)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _pairs():
    return [Pair("p1", "q1", "Q: 1+2=?\nA: ", "\\boxed{3}", "\\boxed{4}"),
            Pair("p2", "q2", "Q: 10+5-1=?\nA: ", "10+5=15. 15-1=14. \\boxed{14}", "\\boxed{9}")]


def test_completion_mask_covers_completion_and_eos_only(tiny):
    _, tok = tiny
    batch = encode_pairs(tok, _pairs())
    assert batch.n_pairs == 2 and batch.input_ids.shape[0] == 4
    # char tokenizer: one token per character; "\boxed{3}" is 9 chars + eos = 10 label positions;
    # "10+5=15. 15-1=14. \boxed{14}" is 8 + 1 + 8 + 1 + 10 = 28 chars + eos = 29
    assert batch.completion_mask.sum(-1).tolist() == [10.0, 29.0, 10.0, 10.0]
    prompt_len = len("Q: 1+2=?\nA: ")
    row = batch.completion_mask[0]
    assert row[: prompt_len - 1].sum() == 0 and row[prompt_len - 1] == 1  # first label is the first answer char


def test_margins_zero_against_own_copy_and_move_after_a_step(tiny):
    model, tok = tiny
    model = copy.deepcopy(model)
    ref = ReferenceCache(copy.deepcopy(model).eval(), tok)
    pairs = _pairs()
    assert pair_margins(model, tok, pairs, ref, beta=0.1) == pytest.approx([0.0, 0.0], abs=1e-6)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        logps, counts = sequence_logprobs(model, encode_pairs(tok, pairs))
        loss, _ = preference_loss(logps, ref.logps(pairs), counts, beta=0.1, kind="dpo")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = pair_margins(model, tok, pairs, ref, beta=0.1)
    assert all(m > 0 for m in after)  # DPO raised the chosen over the rejected on both pairs

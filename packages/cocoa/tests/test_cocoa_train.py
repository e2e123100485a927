"""Learning tests on the tiny Qwen2-VL: each stage's loss moves, GradCache matches on the real model."""

import pytest
import torch
from cocoa.data import TrainPair
from cocoa.evaluate import reconstruction_probe
from cocoa.losses import info_nce
from cocoa.model import Item
from cocoa.train import contrastive_step, optimise, stage1_loss, stage2_loss

TEXTS = ["a red circle", "three green triangles", "the digit 7 in blue", "a blue square"]


def _items(random_image):
    return [Item(t, random_image(k)) for k, t in enumerate(TEXTS)]


def test_stage2_lowers_reconstruction_from_eos(tiny_model, random_image):
    items = _items(random_image)
    before = reconstruction_probe(tiny_model, items)
    logs = optimise(tiny_model, lambda b: stage2_loss(tiny_model, b, 0.1), items, 30, 4, 3e-3, 3, 0, "stage2")
    after = reconstruction_probe(tiny_model, items)
    assert logs[-1]["patch"] < logs[0]["patch"]
    assert after < 0.6 * before


def test_stage1_needs_bidirectional_attention_and_learns(tiny_model, random_image):
    items = _items(random_image)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="bidirectional"):
        stage1_loss(tiny_model, items, 0.4, 0.5, 0.1, gen)
    tiny_model.input_attention = "bidirectional"
    logs = optimise(
        tiny_model, lambda b: stage1_loss(tiny_model, b, 0.4, 0.5, 0.1, gen), items, 30, 4, 3e-3, 3, 0, "stage1"
    )
    first = sum(x["mlm"] for x in logs[:5]) / 5
    last = sum(x["mlm"] for x in logs[-5:]) / 5
    assert last < first


def test_contrastive_loss_falls(tiny_model, random_image):
    pairs = [TrainPair(Item("", random_image(k)), Item(t), Item(TEXTS[(k + 1) % 4])) for k, t in enumerate(TEXTS)]
    logs = optimise(
        tiny_model, lambda b: contrastive_step(tiny_model, b, 0.05, True, 0), pairs, 25, 4, 3e-3, 3, 0, "stage3"
    )
    assert logs[-1]["nce"] < 0.5 * logs[0]["nce"]


def test_contrastive_step_masks_duplicate_positives(tiny_model, random_image):
    # two image queries of one class share the label text "red": equal content, so not each other's negative
    pairs = [TrainPair(Item("", random_image(k)), Item(label)) for k, label in enumerate(["red", "blue", "red"])]
    loss, log = contrastive_step(tiny_model, pairs, 0.05, False, 0)
    assert log["dup_positive_queries"] == 2
    with torch.no_grad():
        q = tiny_model.embed(tiny_model.encode_items([p.query for p in pairs]))
        t = tiny_model.embed(tiny_model.encode_items([p.positive for p in pairs]))
    assert loss.item() == pytest.approx(info_nce(q, t, 0.05, target_keys=["red", "blue", "red"]).item(), abs=1e-5)
    assert abs(loss.item() - info_nce(q, t, 0.05).item()) > 1e-3
    # equal text with different images are different candidates: nothing to mask
    pairs = [TrainPair(Item("q"), Item("x", random_image(k))) for k in range(3)]
    assert contrastive_step(tiny_model, pairs, 0.05, False, 0)[1]["dup_positive_queries"] == 0


def test_grad_cache_equals_full_batch_on_the_model(tiny_model, random_image):
    pairs = [TrainPair(Item(t, random_image(k)), Item(TEXTS[(k + 2) % 4])) for k, t in enumerate(TEXTS)]
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    tiny_model.zero_grad()
    loss, _ = contrastive_step(tiny_model, pairs, 0.05, False, 0)
    loss.backward()
    full = [None if p.grad is None else p.grad.clone() for p in params]
    tiny_model.zero_grad()
    none, log = contrastive_step(tiny_model, pairs, 0.05, False, 2)
    assert none is None and log["nce"] == pytest.approx(loss.item(), abs=1e-5)
    compared = 0
    for p, want in zip(params, full):
        if want is None:
            continue
        assert torch.allclose(p.grad, want, atol=1e-5, rtol=1e-4)
        compared += 1
    assert compared > 10


def test_lora_contrastive_trains_adapters_and_merges_back(tiny_model, random_image):
    from cocoa.config import CocoaConfig
    from cocoa.pipeline import contrastive

    cfg = CocoaConfig()
    cfg.contrastive.steps, cfg.contrastive.batch_size, cfg.contrastive.lora_r, cfg.contrastive.lr = 3, 4, 4, 1e-2
    pairs = [TrainPair(Item("", random_image(k)), Item(t)) for k, t in enumerate(TEXTS)]
    q_proj = tiny_model.core.model.language_model.layers[0].self_attn.q_proj.weight.detach().clone()
    vision = next(tiny_model.core.model.visual.parameters()).detach().clone()
    contrastive(tiny_model, pairs, cfg, seed=0)
    assert not hasattr(tiny_model.backbone, "get_base_model")  # adapters merged, plain model again
    merged = tiny_model.core.model.language_model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(merged, q_proj)  # the merged adapter changed the attention weights
    assert torch.equal(next(tiny_model.core.model.visual.parameters()), vision)  # frozen outside the adapters

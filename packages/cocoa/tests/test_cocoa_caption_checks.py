"""The checks that the generative starting model reads its images: caption likelihoods, caption ranking (with the
tie rule), image reliance learning on a tiny set, and the choice of generative pre-training items."""

import pytest
import torch
from cocoa import evaluate
from cocoa.config import CocoaConfig
from cocoa.data import EvalDataset, EvalQuery
from cocoa.evaluate import caption_nll, caption_ranking, image_reliance
from cocoa.model import Item
from cocoa.pipeline import generative_items
from cocoa.suite import Suite
from cocoa.train import generative_loss, optimise

CAPTIONS = ["a red circle", "three green triangles", "the digit 7 in blue", "a blue square"]


def test_caption_nll_sums_the_generative_loss_of_one_item(tiny_model, random_image):
    item = Item(CAPTIONS[1], random_image(1))
    loss, _ = generative_loss(tiny_model, [item])
    batch = tiny_model.encode_items([item])
    n_predicted = int(batch.text_token.sum()) + 1  # the text tokens and <EOS>
    assert caption_nll(tiny_model, [item])[0].item() == pytest.approx(loss.item() * n_predicted, rel=1e-4)
    # batching with padding does not change an item's value
    both = caption_nll(tiny_model, [Item(CAPTIONS[0], random_image(0)), item])
    assert both[1].item() == pytest.approx(loss.item() * n_predicted, rel=1e-4)


def test_caption_ranking_counts_unique_lowest_gold(monkeypatch, random_image):
    image = random_image(0)
    queries = [
        EvalQuery(Item("find a caption", image), [Item("a"), Item("b"), Item("c")], gold=0),
        EvalQuery(Item("find a caption", image), [Item("a"), Item("b"), Item("c")], gold=2),
        EvalQuery(Item("find a caption", image), [Item("a"), Item("b")], gold=1),
    ]
    # query 1: gold lowest (hit); query 2: gold not lowest (miss); query 3: gold tied with another (miss)
    values = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.5, 0.5])
    monkeypatch.setattr(evaluate, "caption_nll", lambda model, items, batch_size=64: values[: len(items)])
    assert caption_ranking(None, EvalDataset("i2t", "retrieval", queries)) == pytest.approx(1 / 3)


def test_caption_ranking_rejects_image_candidates(tiny_model, random_image):
    q = EvalQuery(Item("", random_image(0)), [Item("a", random_image(1)), Item("b")], gold=0)
    with pytest.raises(ValueError, match="t2i has not"):
        caption_ranking(tiny_model, EvalDataset("t2i", "retrieval", [q]))


def test_captioning_makes_the_model_read_its_images(tiny_model, random_image):
    # four images, four captions: the captions can only be told apart by the image
    items = [Item(t, random_image(10 + k)) for k, t in enumerate(CAPTIONS)]
    before = image_reliance(tiny_model, items)
    optimise(tiny_model, lambda b: generative_loss(tiny_model, b), items, 60, 4, 3e-3, 5, 0, "generative")
    after = image_reliance(tiny_model, items)
    assert abs(before) < 0.1 and after > 0.5


def test_generative_items_follow_the_config():
    caption, qa = Item("a red circle"), Item("What shape is shown? circle")
    suite = Suite("toy", [], [], [caption, qa], [caption], ["a red circle"], "0")
    cfg = CocoaConfig()
    assert generative_items(suite, cfg) == [caption]
    cfg.generative.texts = "captions_qa"
    assert generative_items(suite, cfg) == [caption, qa]

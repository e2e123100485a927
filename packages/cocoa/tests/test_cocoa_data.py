"""MMEB-format parsing: gold handling, item reuse, and clear errors for bad records."""

import io

import pytest
from cocoa.data import DataError, ImageSource, ItemFactory, decode_image, parse_eval, parse_train
from PIL import Image


def _png_bytes(colour=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (28, 28), colour).save(buf, format="PNG")
    return buf.getvalue()


IMAGES = {"img-a": _png_bytes(), "img-b": _png_bytes((0, 0, 255))}


def _factory() -> ItemFactory:
    return ItemFactory(ImageSource(IMAGES.__getitem__))


def test_eval_records_gold_and_shared_candidates():
    records = [
        {
            "qry_text": "<|image_1|> Represent the given image",
            "qry_img": "img-a",
            "tgt_text": ["red", "blue"],
            "tgt_img": [None, None],
        },
        {
            "qry_text": "<|image_1|> Represent the given image",
            "qry_img": "img-b",
            "tgt_text": ["blue", "red"],
            "tgt_img": [None, None],
        },
    ]
    queries = parse_eval(records, "toy.jsonl", _factory())
    assert [q.gold for q in queries] == [0, 0]
    assert queries[0].query.text == "Represent the given image"  # image tag dropped, image kept
    assert queries[0].query.image.getpixel((0, 0)) == (255, 0, 0)
    # the same candidate text is one shared Item, so evaluation embeds it once
    assert queries[0].candidates[0] is queries[1].candidates[1]


def test_explicit_positive_must_be_in_the_candidates():
    rec = {"qry_text": "q", "tgt_text": ["x", "gold"], "pos_text": "gold"}
    assert parse_eval([rec], "toy.jsonl", _factory())[0].gold == 1
    missing = {"qry_text": "q", "tgt_text": ["x", "y"], "pos_text": "gold"}
    with pytest.raises(DataError, match=r"toy.jsonl, record 1, field 'tgt_text'.*does not contain the gold"):
        parse_eval([missing], "toy.jsonl", _factory())


def test_empty_candidate_list_is_an_error():
    with pytest.raises(DataError, match="record 2, field 'tgt_text': empty candidate list"):
        parse_eval([{"qry_text": "q", "tgt_text": ["a"]}, {"qry_text": "q", "tgt_text": []}], "toy.jsonl", _factory())


def test_empty_text_without_image_is_an_error():
    with pytest.raises(DataError, match=r"train.jsonl, record 1, field 'qry_text': empty text and no image"):
        parse_train([{"qry_text": "  ", "tgt_text": ["a", "b"]}], "train.jsonl", _factory())
    with pytest.raises(DataError, match="record 1, field 'qry_text': missing"):
        parse_train([{"tgt_text": ["a"]}], "train.jsonl", _factory())


def test_undecodable_image_names_the_record():
    images = ImageSource({"broken": b"not an image at all"}.__getitem__)
    rec = {"qry_text": "q", "qry_img": "broken", "tgt_text": ["a"]}
    with pytest.raises(DataError, match=r"bad.jsonl, record 1, field 'qry_text': image could not be decoded"):
        parse_eval([rec], "bad.jsonl", ItemFactory(images))
    with pytest.raises(DataError, match="unknown image id"):
        parse_eval([{**rec, "qry_img": "nope"}], "bad.jsonl", ItemFactory(images))


def test_image_paths_resolve_against_the_root(tmp_path):
    Image.new("RGB", (28, 28), (0, 255, 0)).save(tmp_path / "g.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    source = ImageSource(root=tmp_path)
    assert source("g.png", "here").getpixel((1, 1)) == (0, 255, 0)
    with pytest.raises(DataError, match="does not exist"):
        source("missing.png", "here")
    with pytest.raises(DataError, match="could not be decoded"):
        decode_image(tmp_path / "junk.png", "here")


def test_train_pairs_take_candidate_one_as_hard_negative():
    pairs = parse_train([{"qry_text": "q", "tgt_text": ["pos", "neg", "other"]}], "t", _factory())
    assert (pairs[0].positive.text, pairs[0].negative.text) == ("pos", "neg")
    single = parse_train([{"qry_text": "q", "tgt_text": ["pos"]}], "t", _factory())
    assert single[0].negative is None


@pytest.mark.parametrize("combos", ["heldout", "seen"])
def test_eval_combos_choose_heldout_or_training_combinations(combos):
    from benchmarks.synthetic.images import heldout_combo, read_scene
    from cocoa.config import DataConfig
    from cocoa.suite import synthetic_suite

    cfg = DataConfig(train_size=8, eval_queries=8, candidates=3, image_size=56, eval_combos=combos)
    suite = synthetic_suite(cfg)
    i2t = next(d for d in suite.evals if d.name == "i2t")
    for q in i2t.queries:
        objects = read_scene(q.query.image)  # pixel oracle: (shape, colour, digit) left to right
        held = [heldout_combo(str(d) if s == "digit" else s, c) for s, c, d in objects]
        assert any(held) if combos == "heldout" else not any(held)


def test_unknown_eval_combos_is_an_error():
    from cocoa.config import DataConfig
    from cocoa.suite import synthetic_suite

    with pytest.raises(DataError, match="eval_combos"):
        synthetic_suite(DataConfig(train_size=4, eval_queries=4, image_size=56, eval_combos="mixed"))


def test_tiny_tokenizer_learns_from_training_texts_only(tmp_path, monkeypatch):
    from cocoa import replicate
    from cocoa.config import CocoaConfig, DataConfig
    from cocoa.suite import synthetic_suite

    suite = synthetic_suite(DataConfig(train_size=12, eval_queries=6, candidates=4, image_size=56), seed=0)
    train = {it.text for it in suite.generative} | {
        x.text for p in suite.train for x in (p.query, p.positive, p.negative) if x is not None
    }
    evals = {it.text for ds in suite.evals for q in ds.queries for it in (q.query, *q.candidates)}
    eval_only = evals - train
    assert eval_only  # held-out combinations: captions and labels the training split never shows
    seen = {}

    class Built(Exception):
        pass

    def fake_build_tiny(out_dir, texts, cfg, image_size, seed=0):
        seen["texts"] = list(texts)
        raise Built

    monkeypatch.setattr(replicate, "build_tiny", fake_build_tiny)
    with pytest.raises(Built):
        replicate.base_model(tmp_path, suite, CocoaConfig(), seed=0)
    assert set(seen["texts"]) == train
    assert not eval_only & set(seen["texts"])

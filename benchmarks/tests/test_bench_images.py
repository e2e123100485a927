"""Tests for the procedural image suite: rendering, captions, MMEB items, held-out combos and the pixel oracle."""

import json

import numpy as np
import pytest
from benchmarks.synthetic.images import (
    Scene,
    SceneObject,
    heldout_combo,
    make_image_suite,
    oracle_pick,
    read_scene,
)


def test_hand_built_scene_renders_and_reads_back():
    scene = Scene(
        "s", "two", 56,
        [SceneObject("triangle", "blue", 30, 5, 14, 14), SceneObject("circle", "orange", 3, 20, 12, 12)],
    )  # fmt: skip
    assert scene.caption == "an orange circle and a blue triangle"
    assert scene.question == "What colour is the triangle?" and scene.answer == "blue"
    img = scene.render()
    assert img.size == (56, 56)
    assert read_scene(img) == [("circle", "orange", None), ("triangle", "blue", None)]
    for d in range(10):
        digit = Scene("d", "digit", 56, [SceneObject("digit", "red", 9, 7, 13, 24, d)])
        assert read_scene(digit.render()) == [("digit", "red", d)]


@pytest.mark.parametrize("size", [56, 112])
def test_pixel_oracle_scores_p_at_1_of_one(size):
    suite = make_image_suite(40, seed=0, size=size, kinds=("count", "two", "single", "digit"))
    for task, items in suite.mmeb.items():
        assert len(items) == 40
        assert all(oracle_pick(it, suite.image) == 0 for it in items), task
        assert all(len(set(it.tgt_text)) == len(it.tgt_text) for it in items if it.qry_img is not None)


def test_deterministic_by_seed():
    a = make_image_suite(12, seed=3)
    b = make_image_suite(12, seed=3)
    assert a.pairs == b.pairs
    assert np.array_equal(np.asarray(a.image("img-train-3-0")), np.asarray(b.image("img-train-3-0")))
    assert a.pairs != make_image_suite(12, seed=4).pairs


def test_heldout_combos_only_in_test():
    def combos(suite):
        return {
            (o.shape if o.digit is None else str(o.digit), o.colour) for s in suite.scenes.values() for o in s.objects
        }

    train = make_image_suite(80, seed=0, heldout_combos=True)
    test = make_image_suite(30, seed=0, split="test", heldout_combos=True)
    assert not any(heldout_combo(*c) for c in combos(train))
    for scene in test.scenes.values():
        assert any(heldout_combo(o.shape if o.digit is None else str(o.digit), o.colour) for o in scene.objects)


def test_grid_alignment_knob():
    off = make_image_suite(30, seed=0, grid_aligned=False)
    assert all(o.x % 14 and o.y % 14 for s in off.scenes.values() for o in s.objects)
    on = make_image_suite(30, seed=0, grid_aligned=True)
    assert all(o.x % 14 == 0 and o.y % 14 == 0 for s in on.scenes.values() for o in s.objects)


def test_save_writes_mmeb_jsonl_with_image_paths(tmp_path):
    make_image_suite(6, seed=0).save(tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "mmeb" / "t2i.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["qry_img"] is None
    assert all((tmp_path / p).is_file() for p in rows[0]["tgt_img"])
    assert (tmp_path / "pairs.jsonl").is_file()


def test_bad_arguments():
    with pytest.raises(ValueError, match="kinds"):
        make_image_suite(3, kinds=("video",))
    with pytest.raises(ValueError, match="size"):
        make_image_suite(3, size=16)

"""Procedural image-text pairs (shapes, colours, counts, digits) with captions, questions and MMEB meta-tasks.

Scenes are drawn with PIL, without anti-aliasing, on a white background: `count` (1-4 identical shapes),
`two` (two different objects, captioned left to right), `single` (one object) and `digit` (a seven-segment digit
in a colour). Each scene has a caption and a VQA question/answer, and the suite builds MMEB-format items for the
classification, VQA and retrieval (text->image and image->text) meta-tasks, candidate 0 being the positive.

Knobs: `size` (56 px as calibrated, 112 for harder runs), `grid_aligned` (False places objects off the patch grid),
`kinds` (include "two" for two-object captions), and `heldout_combos` (some (shape or digit, colour) pairs appear
only in the test split, to measure compositional generalisation). `read_scene` is a pixel oracle: it recovers the
caption and answers from the rendered pixels alone, so `oracle_pick` scores P@1 = 1 on every meta-task.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.data.records import MMEBItem
from benchmarks.synthetic.jsonl import write_jsonl

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (150, 60, 190),
    "orange": (240, 130, 20),
}
SHAPES = ("circle", "square", "triangle")
KINDS = ("count", "two", "single", "digit")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
# seven-segment layout: segments lit per digit (a top, b upper right, c lower right, d bottom, e lower left,
# f upper left, g middle)
SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg", 5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip
INSTRUCTIONS = {
    "classification": "<|image_1|> Represent the given image for classification",
    "vqa": "<|image_1|> Represent the given image with the following question: {q}",
    "t2i": "Find me an everyday image that matches the given caption: {c}",
    "i2t": "<|image_1|> Find an image caption describing the given everyday image.",
}


@dataclass
class SceneObject:
    shape: str  # circle | square | triangle | digit
    colour: str
    x: int
    y: int
    w: int
    h: int
    digit: int | None = None


@dataclass
class Scene:
    id: str
    kind: str
    size: int
    objects: list[SceneObject] = field(default_factory=list)

    @property
    def caption(self) -> str:
        return caption_of(self.kind, [(o.shape, o.colour, o.digit) for o in sorted(self.objects, key=lambda o: o.x)])

    @property
    def question(self) -> str:
        return question_of(self.kind, [(o.shape, o.colour, o.digit) for o in sorted(self.objects, key=lambda o: o.x)])

    @property
    def answer(self) -> str:
        return answer_of(self.kind, [(o.shape, o.colour, o.digit) for o in sorted(self.objects, key=lambda o: o.x)])

    def render(self) -> Image.Image:
        img = Image.new("RGB", (self.size, self.size), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for o in self.objects:
            rgb = COLOURS[o.colour]
            box = [o.x, o.y, o.x + o.w - 1, o.y + o.h - 1]
            if o.shape == "circle":
                draw.ellipse(box, fill=rgb)
            elif o.shape == "square":
                draw.rectangle(box, fill=rgb)
            elif o.shape == "triangle":
                draw.polygon(
                    [(o.x, o.y + o.h - 1), (o.x + o.w - 1, o.y + o.h - 1), (o.x + (o.w - 1) / 2, o.y)], fill=rgb
                )
            else:
                for seg in SEGMENTS[o.digit]:
                    draw.rectangle(_segment_box(seg, o.x, o.y, o.w, o.h), fill=rgb)
        return img


def _thickness(h: int) -> int:
    return max(2, h // 6)


def _segment_box(seg: str, x: int, y: int, w: int, h: int) -> list[int]:
    t, mid = _thickness(h), h // 2
    boxes = {
        "a": (0, 0, w, t),
        "b": (w - t, 0, w, mid + t // 2 + 1),
        "c": (w - t, mid - t // 2, w, h),
        "d": (0, h - t, w, h),
        "e": (0, mid - t // 2, t, h),
        "f": (0, 0, t, mid + t // 2 + 1),
        "g": (0, mid - t // 2, w, mid - t // 2 + t),
    }
    x0, y0, x1, y1 = boxes[seg]
    return [x + x0, y + y0, x + x1 - 1, y + y1 - 1]


def caption_of(kind: str, objs: list[tuple[str, str, int | None]]) -> str:
    """Canonical caption from (shape, colour, digit) tuples sorted left to right."""
    if kind == "count":
        shape, colour, _ = objs[0]
        n = len(objs)
        return f"{NUMBER_WORDS[n]} {colour} {shape}{'s' if n > 1 else ''}"
    if kind == "digit":
        return f"the digit {objs[0][2]} in {objs[0][1]}"
    return " and ".join(f"{'an' if c[0] in 'aeiou' else 'a'} {c} {s}" for s, c, _ in objs)


def question_of(kind: str, objs: list[tuple[str, str, int | None]]) -> str:
    if kind == "count":
        return f"How many {objs[0][0]}s are there?"
    if kind == "digit":
        return "What digit is shown?"
    if kind == "two":
        return f"What colour is the {objs[-1][0]}?"
    return "What shape is shown?"


def answer_of(kind: str, objs: list[tuple[str, str, int | None]]) -> str:
    if kind == "count":
        return str(len(objs))
    if kind == "digit":
        return str(objs[0][2])
    if kind == "two":
        return objs[-1][1]
    return objs[0][0]


def heldout_combo(item: str, colour: str, fraction: float = 0.25) -> bool:
    """Whether a (shape or digit, colour) pair is reserved for the test split when combos are held out."""
    bucket = int(hashlib.sha256(f"{item}|{colour}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def _place(rng: random.Random, size: int, w: int, h: int, taken: list, grid_aligned: bool, patch: int):
    for _ in range(200):
        if grid_aligned:
            x = rng.randrange(0, max(1, (size - w) // patch + 1)) * patch
            y = rng.randrange(0, max(1, (size - h) // patch + 1)) * patch
        else:
            x, y = rng.randint(1, size - w - 1), rng.randint(1, size - h - 1)
            if x % patch == 0:
                x += 1 if x + w < size - 1 else -1
            if y % patch == 0:
                y += 1 if y + h < size - 1 else -1
        if x + w > size or y + h > size:
            continue
        # two pixels of white between objects keep same-colour objects separate components
        if all(x + w + 2 <= a or a + c + 2 <= x or y + h + 2 <= b or b + d + 2 <= y for a, b, c, d in taken):
            taken.append((x, y, w, h))
            return x, y
    return None


def _draw_scene(kind: str, sid: str, size: int, rng: random.Random, grid_aligned: bool, patch: int, combo_ok):
    for _ in range(500):
        objs: list[SceneObject] = []
        taken: list = []
        lo, hi = max(10, size * 15 // 100), max(12, size * 28 // 100)
        if kind == "digit":
            digit, colour = rng.randrange(10), rng.choice(list(COLOURS))
            if not combo_ok([(str(digit), colour)]):
                continue
            h = rng.randint(max(14, size * 35 // 100), max(16, size * 50 // 100))
            w = max(7, h * 55 // 100)
            pos = _place(rng, size, w, h, taken, grid_aligned, patch)
            if pos:
                return Scene(sid, kind, size, [SceneObject("digit", colour, pos[0], pos[1], w, h, digit)])
            continue
        if kind == "count":
            specs = [(rng.choice(SHAPES), rng.choice(list(COLOURS)))] * rng.randint(1, 4)
        elif kind == "two":
            (s1, s2), (c1, c2) = rng.sample(SHAPES, 2), rng.sample(list(COLOURS), 2)
            specs = [(s1, c1), (s2, c2)]
        else:
            specs = [(rng.choice(SHAPES), rng.choice(list(COLOURS)))]
        if not combo_ok(specs):
            continue
        for shape, colour in specs:
            s = rng.randint(lo, hi)
            pos = _place(rng, size, s, s, taken, grid_aligned, patch)
            if pos is None:
                break
            objs.append(SceneObject(shape, colour, pos[0], pos[1], s, s))
        if len(objs) == len(specs) and len({o.x for o in objs}) == len(objs):
            return Scene(sid, kind, size, objs)
    raise ValueError(f"could not place a {kind} scene in {size}px images; raise size")


def label_of(kind: str, objs: list[tuple[str, str, int | None]]) -> str:
    """Class label for the classification meta-task (one label space per scene kind)."""
    if kind == "count":
        return f"{len(objs)} {objs[0][0]}{'s' if len(objs) > 1 else ''}"
    if kind == "digit":
        return str(objs[0][2])
    if kind == "two":
        return " and ".join(s for s, _, _ in objs)
    return f"{objs[0][1]} {objs[0][0]}"


def _label_space(kind: str) -> list[str]:
    if kind == "count":
        return [f"{n} {s}{'s' if n > 1 else ''}" for s in SHAPES for n in NUMBER_WORDS]
    if kind == "digit":
        return [str(d) for d in range(10)]
    if kind == "two":
        return [f"{a} and {b}" for a in SHAPES for b in SHAPES if a != b]
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _answer_space(kind: str) -> list[str]:
    return {"count": [str(n) for n in NUMBER_WORDS], "digit": [str(d) for d in range(10)], "two": list(COLOURS)}.get(
        kind, list(SHAPES)
    )


@dataclass
class ImageSuite:
    """Scenes by id, image-text pairs, and MMEB items per meta-task; images are rendered on demand."""

    scenes: dict[str, Scene]
    pairs: list[dict]
    mmeb: dict[str, list[MMEBItem]]

    def image(self, image_id: str) -> Image.Image:
        return self.scenes[image_id].render()

    def save(self, out_dir: str | Path) -> Path:
        """Write images/<id>.png, pairs.jsonl and mmeb/<meta_task>.jsonl (image fields become relative paths)."""
        out = Path(out_dir)
        (out / "images").mkdir(parents=True, exist_ok=True)
        for sid, scene in self.scenes.items():
            scene.render().save(out / "images" / f"{sid}.png")
        rel = lambda i: None if i is None else f"images/{i}.png"  # noqa: E731
        write_jsonl([{**p, "image": rel(p["image"])} for p in self.pairs], out / "pairs.jsonl")
        for task, items in self.mmeb.items():
            rows = [
                {**it.to_dict(), "qry_img": rel(it.qry_img), "tgt_img": [rel(t) for t in it.tgt_img]} for it in items
            ]
            write_jsonl(rows, out / "mmeb" / f"{task}.jsonl")
        return out


def make_image_suite(
    n: int,
    seed: int = 0,
    split: str = "train",
    size: int = 56,
    kinds: tuple[str, ...] = ("count", "single", "digit"),
    heldout_combos: bool = False,
    grid_aligned: bool = False,
    patch: int = 14,
    n_candidates: int = 8,
) -> ImageSuite:
    """`n` scenes (kinds cycled in order) with captions, VQA pairs and MMEB items for all four query types."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")

    def combo_ok(specs: list[tuple[str, str]]) -> bool:
        if not heldout_combos:
            return True
        held = [heldout_combo(item, colour) for item, colour in specs]
        return any(held) if split == "test" else not any(held)

    rng = random.Random(f"images|{seed}|{split}|{size}")
    scenes: dict[str, Scene] = {}
    for i in range(n):
        sid = f"img-{split}-{seed}-{i}"
        scenes[sid] = _draw_scene(kinds[i % len(kinds)], sid, size, rng, grid_aligned, patch, combo_ok)
    pairs = [
        {"image": s.id, "kind": s.kind, "caption": s.caption, "question": s.question, "answer": s.answer}
        for s in scenes.values()
    ]
    return ImageSuite(scenes, pairs, _mmeb_items(scenes, rng, n_candidates, f"synthetic-{split}"))


def _mmeb_items(scenes: dict[str, Scene], rng: random.Random, k: int, dataset: str) -> dict[str, list[MMEBItem]]:
    # one MMEB dataset per task (`<dataset>-t2i`, ...): MMEB averages P@1 per dataset, then per meta-task
    out: dict[str, list[MMEBItem]] = {"classification": [], "vqa": [], "t2i": [], "i2t": []}
    ordered = list(scenes.values())
    for s in ordered:
        objs = [(o.shape, o.colour, o.digit) for o in sorted(s.objects, key=lambda o: o.x)]
        label = label_of(s.kind, objs)
        labels = [label] + rng.sample(
            [x for x in _label_space(s.kind) if x != label], min(k, len(_label_space(s.kind))) - 1
        )
        out["classification"].append(
            MMEBItem(
                f"{s.id}-cls",
                "classification",
                f"{dataset}-classification",
                INSTRUCTIONS["classification"],
                s.id,
                labels,
                [None] * len(labels),
            )
        )
        space = _answer_space(s.kind)
        answers = [s.answer] + rng.sample([a for a in space if a != s.answer], min(k, len(space)) - 1)
        out["vqa"].append(
            MMEBItem(
                f"{s.id}-vqa",
                "vqa",
                f"{dataset}-vqa",
                INSTRUCTIONS["vqa"].format(q=s.question),
                s.id,
                answers,
                [None] * len(answers),
            )
        )
        # one scene per other caption, so no two candidates share a caption
        others = list({o.caption: o for o in ordered if o.caption != s.caption}.values())
        negatives = rng.sample(others, min(k - 1, len(others)))
        out["t2i"].append(
            MMEBItem(
                f"{s.id}-t2i",
                "retrieval",
                f"{dataset}-t2i",
                INSTRUCTIONS["t2i"].format(c=s.caption),
                None,
                [""] * (len(negatives) + 1),
                [s.id] + [o.id for o in negatives],
            )
        )
        out["i2t"].append(
            MMEBItem(
                f"{s.id}-i2t",
                "retrieval",
                f"{dataset}-i2t",
                INSTRUCTIONS["i2t"],
                s.id,
                [s.caption] + [o.caption for o in negatives],
                [None] * (len(negatives) + 1),
            )
        )
    return out  # fmt: skip


def read_scene(img: Image.Image) -> list[tuple[str, str, int | None]]:
    """Pixel oracle: (shape, colour, digit) of every object, left to right, from the rendered pixels only."""
    from scipy import ndimage

    arr = np.asarray(img.convert("RGB"))
    found = []
    for colour, rgb in COLOURS.items():
        mask = np.all(arr == np.array(rgb, dtype=arr.dtype), axis=-1)
        labels, count = ndimage.label(mask)
        for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
            comp = labels[sl] == idx
            h, w = comp.shape
            if h > 1.3 * w:  # seven-segment digits are tall, shapes have square boxes
                found.append((sl[1].start, ("digit", colour, _read_digit(comp))))
                continue
            fill = comp.mean()
            shape = "square" if fill > 0.92 else "circle" if fill > 0.66 else "triangle"
            found.append((sl[1].start, (shape, colour, None)))
    return [obj for _, obj in sorted(found, key=lambda t: t[0])]


def _read_digit(comp: np.ndarray) -> int:
    h, w = comp.shape
    if w < 0.3 * h:
        return 1
    t, mid = _thickness(h), h // 2
    probes = {
        "a": (t // 2, w // 2), "b": (h // 4, w - 1 - t // 2), "c": (3 * h // 4, w - 1 - t // 2),
        "d": (h - 1 - t // 2, w // 2), "e": (3 * h // 4, t // 2), "f": (h // 4, t // 2), "g": (mid, w // 2),
    }  # fmt: skip
    lit = "".join(seg for seg, (r, c) in probes.items() if comp[r, c])
    for digit, segs in SEGMENTS.items():
        if segs == lit:
            return digit
    raise ValueError(f"unreadable seven-segment pattern {lit!r}")


def _kinds_for(objs: list[tuple[str, str, int | None]]) -> list[str]:
    if objs and objs[0][0] == "digit":
        return ["digit"]
    kinds = ["count"] if len({(s, c) for s, c, _ in objs}) == 1 else []
    if len(objs) == 1:
        kinds.append("single")
    if len(objs) == 2:
        kinds.append("two")
    return kinds


def oracle_pick(item: MMEBItem, image: callable) -> int:
    """Index of the candidate the pixel oracle chooses; `image(id)` returns the rendered PIL image."""
    if item.meta_task == "retrieval" and item.qry_img is None:
        caption = item.qry_text.split(": ", 1)[1]
        for i, img_id in enumerate(item.tgt_img):
            objs = read_scene(image(img_id))
            if any(caption_of(k, objs) == caption for k in _kinds_for(objs)):
                return i
        return -1
    objs = read_scene(image(item.qry_img))
    kinds = _kinds_for(objs)
    if item.meta_task == "classification":
        wanted = {label_of(k, objs) for k in kinds}
    elif item.meta_task == "vqa":
        question = item.qry_text.split(": ", 1)[1]
        wanted = {answer_of(k, objs) for k in kinds if question_of(k, objs) == question}
    else:
        wanted = {caption_of(k, objs) for k in kinds}
    for i, text in enumerate(item.tgt_text):
        if text in wanted:
            return i
    return -1

"""The data a CoCoA run uses: training pairs, MMEB-format evaluation datasets and generative pre-training items.

``synthetic`` builds the procedural image-text suite of ``benchmarks.synthetic.images`` made hard enough not to
saturate a tiny model: 112 px images, objects placed off the 14 px patch grid, all four scene kinds (two-object
captions included), and held-out (shape or digit, colour) combinations that appear only in the test split.
``mmeb`` reads an MMEB-format folder (``mmeb/<dataset>.jsonl`` plus images, the layout ``ImageSuite.save``
writes), the way a user brings real MMEB data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.eval import sha256_of

from cocoa.config import DataConfig
from cocoa.data import DataError, EvalDataset, ImageSource, ItemFactory, TrainPair, parse_eval, parse_train
from cocoa.model import Item

KINDS = ("count", "two", "single", "digit")
# dataset name in the suite -> MMEB meta-task
SYNTHETIC_TASKS = {"classification": "classification", "vqa": "vqa", "t2i": "retrieval", "i2t": "retrieval"}


@dataclass
class Suite:
    name: str
    train: list[TrainPair]
    evals: list[EvalDataset]
    generative: list[Item]  # image + caption, image + question and answer
    captions: list[Item]  # image + caption only (a subset of ``generative``)
    texts: list[str]  # the training texts (generative items and training pairs): the tiny tokenizer's input
    sha256: str


def synthetic_suite(cfg: DataConfig, seed: int = 0) -> Suite:
    """Train split (cfg.train_size scenes) and a held-out-combination test split (cfg.eval_queries scenes)."""
    from benchmarks.synthetic.images import make_image_suite

    common = dict(
        size=cfg.image_size, kinds=KINDS, heldout_combos=True, grid_aligned=False, n_candidates=cfg.candidates
    )
    train = make_image_suite(cfg.train_size, seed=seed, split="train", **common)
    if cfg.eval_combos == "heldout":
        test = make_image_suite(cfg.eval_queries, seed=seed, split="test", **common)
    elif cfg.eval_combos == "seen":  # other scenes of the training combinations (another generator seed)
        test = make_image_suite(cfg.eval_queries, seed=seed + 1, split="train", **common)
    else:
        raise DataError(f"data.eval_combos must be 'heldout' or 'seen', got {cfg.eval_combos!r}")
    make_train = ItemFactory(ImageSource(train.image))
    make_test = ItemFactory(ImageSource(test.image))
    pairs: list[TrainPair] = []
    for task in SYNTHETIC_TASKS:
        pairs += parse_train(train.mmeb[task], f"synthetic train/{task}", make_train)
    evals = [
        EvalDataset(task, meta, parse_eval(test.mmeb[task], f"synthetic test/{task}", make_test))
        for task, meta in SYNTHETIC_TASKS.items()
    ]
    generative, captions = [], []
    for p in train.pairs:
        image = make_train.images(p["image"], "synthetic train pairs")
        captions.append(Item(p["caption"], image))
        generative += [captions[-1], Item(f"{p['question']} {p['answer']}", image)]
    # the tiny tokenizer learns from training texts only: evaluation queries and candidates (held-out attribute
    # combinations) must not shape its merges
    texts = [it.text for it in generative]
    texts += [x.text for p in pairs for x in (p.query, p.positive, p.negative) if x is not None]
    records = [it.to_dict() for task in SYNTHETIC_TASKS for it in train.mmeb[task] + test.mmeb[task]]
    digest = sha256_of(json.dumps(records, sort_keys=True).encode())
    name = f"synthetic-images-{cfg.image_size}px-{cfg.eval_combos}-s{seed}"
    return Suite(name, pairs, evals, generative, captions, sorted(set(texts)), digest)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {n}: not valid JSON ({err.msg})") from err
    return rows


def mmeb_folder_suite(cfg: DataConfig) -> Suite:
    """An MMEB-format folder: ``mmeb/<dataset>.jsonl`` for evaluation, ``train/<dataset>.jsonl`` (optional) for
    training pairs and ``pairs.jsonl`` (image, caption) for generative pre-training; images relative to the folder."""
    root = Path(cfg.path)
    if not (root / "mmeb").is_dir():
        raise DataError(f"{root}: no mmeb/ folder of <dataset>.jsonl evaluation files")
    make = ItemFactory(ImageSource(root=root))
    evals = []
    for path in sorted((root / "mmeb").glob("*.jsonl")):
        rows = _read_jsonl(path)[: cfg.eval_queries]
        if not rows:
            raise DataError(f"{path}: no records")
        meta = rows[0].get("meta_task")
        if not meta:
            raise DataError(f"{path}, record 1, field 'meta_task': missing")
        evals.append(EvalDataset(path.stem, meta, parse_eval(rows, str(path), make)))
    train: list[TrainPair] = []
    for path in sorted((root / "train").glob("*.jsonl")) if (root / "train").is_dir() else []:
        train += parse_train(_read_jsonl(path)[: cfg.train_size], str(path), make)
    generative = []
    if (root / "pairs.jsonl").is_file():
        for n, row in enumerate(_read_jsonl(root / "pairs.jsonl"), start=1):
            if "caption" not in row or not row.get("image"):
                raise DataError(f"{root / 'pairs.jsonl'}, line {n}: needs 'image' and 'caption'")
            generative.append(make(row["caption"], row["image"], f"{root / 'pairs.jsonl'}, line {n}"))
    texts = sorted({it.text for it in generative} | {x.text for p in train for x in (p.query, p.positive, p.negative) if x})
    digest = sha256_of(sorted(str(p) for p in root.rglob("*.jsonl")))
    return Suite(root.name, train, evals, generative, list(generative), texts, digest)


def load_suite(cfg: DataConfig, seed: int = 0) -> Suite:
    if cfg.suite == "synthetic":
        return synthetic_suite(cfg, seed)
    if cfg.suite == "mmeb":
        return mmeb_folder_suite(cfg)
    raise DataError(f"data.suite must be 'synthetic' or 'mmeb', got {cfg.suite!r}")

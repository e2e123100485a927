"""MMEB-format records -> model items, with clear errors for bad input.

An MMEB record (``benchmarks.data.MMEBItem`` or its JSON dict) holds a query (``qry_text`` and an optional image
``qry_img``) and a candidate list (``tgt_text`` / ``tgt_img``) whose entry 0 is the positive, as in the MMEB eval
files; VLM2Vec's ``qry_img_path`` / ``tgt_img_path`` spellings are accepted too. Image fields are references that
an ``ImageSource`` resolves: ids of the in-memory procedural suite, or paths relative to a dataset folder, or raw
bytes. MMEB's ``<|image_1|>`` image tag is dropped from the text because the model always places the image first.
Training pairs are (query, candidate 0) with candidate 1 as the hard negative.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from cocoa.model import Item

IMAGE_TAG = re.compile(r"<\|image_\d+\|>")


class DataError(ValueError):
    """A record that cannot be used; the message names the source, the record and the field."""


@dataclass
class TrainPair:
    query: Item
    positive: Item
    negative: Item | None = None


@dataclass
class EvalQuery:
    query: Item
    candidates: list[Item]
    gold: int


@dataclass
class EvalDataset:
    name: str
    meta_task: str
    queries: list[EvalQuery]


def decode_image(value: Any, where: str) -> Image.Image:
    """Decode bytes, a path or a PIL image to RGB; DataError naming ``where`` when it cannot be decoded."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    try:
        if isinstance(value, bytes | bytearray):
            img = Image.open(io.BytesIO(value))
        elif isinstance(value, str | Path):
            if not Path(value).is_file():
                raise DataError(f"{where}: image file {str(value)!r} does not exist")
            img = Image.open(value)
        else:
            raise DataError(f"{where}: expected an image path, bytes or PIL image, got {type(value).__name__}")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{where}: image could not be decoded ({err})") from err
    return img.convert("RGB")


class ImageSource:
    """Resolves image references once each: ``lookup(ref)`` may return a PIL image, bytes or a path; a string
    reference without a lookup is a path relative to ``root``."""

    def __init__(self, lookup: Callable[[str], Any] | None = None, root: str | Path | None = None):
        self.lookup = lookup
        self.root = Path(root) if root is not None else None
        self._cache: dict[Any, Image.Image] = {}

    def __call__(self, ref: Any, where: str) -> Image.Image:
        key = ref if isinstance(ref, str | bytes) else id(ref)
        if key not in self._cache:
            value = ref
            if isinstance(ref, str) and self.lookup is not None:
                try:
                    value = self.lookup(ref)
                except KeyError as err:
                    raise DataError(f"{where}: unknown image id {ref!r}") from err
            elif isinstance(ref, str) and self.root is not None and not Path(ref).is_absolute():
                value = self.root / ref
            self._cache[key] = decode_image(value, where)
        return self._cache[key]


class ItemFactory:
    """Builds Items and reuses one Item per (text, image) so repeated candidates are embedded once."""

    def __init__(self, images: ImageSource):
        self.images = images
        self._items: dict[tuple, Item] = {}

    def __call__(self, text: Any, image: Any, where: str) -> Item:
        if text is not None and not isinstance(text, str):
            raise DataError(f"{where}: text must be a string, got {type(text).__name__}")
        clean = IMAGE_TAG.sub("", text or "").strip()
        has_image = image is not None and not (isinstance(image, str) and not image.strip())
        if not clean and not has_image:
            raise DataError(f"{where}: empty text and no image")
        key = (clean, image if isinstance(image, str | None) else id(image))
        if key not in self._items:
            self._items[key] = Item(clean, self.images(image, where) if has_image else None)
        return self._items[key]


def _as_dict(record: Any, where: str) -> Mapping:
    if is_dataclass(record):
        return asdict(record)
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected an MMEB record (object), got {type(record).__name__}")
    return record


def _candidates(rec: Mapping, where: str) -> tuple[list, list]:
    texts = rec.get("tgt_text", [])
    images = rec.get("tgt_img", rec.get("tgt_img_path", []))
    texts = [] if texts is None else texts
    images = [] if images is None else images
    if not isinstance(texts, list) or not isinstance(images, list):
        raise DataError(f"{where}, field 'tgt_text': candidates must be lists")
    n = max(len(texts), len(images))
    if n == 0:
        raise DataError(f"{where}, field 'tgt_text': empty candidate list, so the gold (candidate 0) is missing")
    if texts and images and len(texts) != len(images):
        raise DataError(f"{where}, field 'tgt_img': {len(images)} images for {len(texts)} candidate texts")
    return (texts or [""] * n), (images or [None] * n)


def parse_eval(records: list, source: str, make: ItemFactory) -> list[EvalQuery]:
    """MMEB eval records -> queries with candidate lists. The gold is candidate 0, or the candidate equal to an
    explicit ``pos_text``/``pos_img``; a list that does not contain that gold is an error naming the record."""
    out = []
    for i, record in enumerate(records):
        where = f"{source}, record {i + 1}"
        rec = _as_dict(record, where)
        if "qry_text" not in rec:
            raise DataError(f"{where}, field 'qry_text': missing")
        texts, images = _candidates(rec, where)
        gold = 0
        if "pos_text" in rec or "pos_img" in rec:
            pos = (rec.get("pos_text") or "", rec.get("pos_img"))
            hits = [k for k in range(len(texts)) if ((texts[k] or ""), images[k]) == pos]
            if not hits:
                raise DataError(f"{where}, field 'tgt_text': the candidate list does not contain the gold {pos!r}")
            gold = hits[0]
        query = make(rec.get("qry_text"), rec.get("qry_img", rec.get("qry_img_path")), f"{where}, field 'qry_text'")
        cands = [make(t, im, f"{where}, candidate {k}") for k, (t, im) in enumerate(zip(texts, images))]
        out.append(EvalQuery(query, cands, gold))
    return out


def parse_train(records: list, source: str, make: ItemFactory) -> list[TrainPair]:
    """MMEB records -> (query, positive = candidate 0, hard negative = candidate 1 when present) pairs."""
    pairs = []
    for i, record in enumerate(records):
        where = f"{source}, record {i + 1}"
        rec = _as_dict(record, where)
        if "qry_text" not in rec:
            raise DataError(f"{where}, field 'qry_text': missing")
        texts, images = _candidates(rec, where)
        query = make(rec.get("qry_text"), rec.get("qry_img", rec.get("qry_img_path")), f"{where}, field 'qry_text'")
        positive = make(texts[0], images[0], f"{where}, candidate 0")
        negative = make(texts[1], images[1], f"{where}, candidate 1") if len(texts) > 1 else None
        pairs.append(TrainPair(query, positive, negative))
    return pairs

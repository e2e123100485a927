"""MMEB loader: per-dataset query/candidate lists with images (TIGER-Lab MMEB-eval layout).

Each record holds `qry_text`, `qry_img_path`, `tgt_text` (list) and `tgt_img_path` (list); the first candidate is
the positive. Files are jsonl (or .json arrays) per dataset; image paths are relative to an image root and are
checked to exist, so a missing image is reported with its record instead of failing later inside a processor.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_json_array, iter_jsonl, require
from benchmarks.data.records import MMEBItem

META_TASKS = ("classification", "vqa", "retrieval", "grounding")


def load_mmeb(
    path: str | Path, meta_task: str, image_root: str | Path | None = None, dataset: str | None = None
) -> list[MMEBItem]:
    """Load one MMEB dataset file; `image_root` defaults to the file's folder."""
    path = Path(path)
    if meta_task not in META_TASKS:
        raise ValueError(f"meta_task must be one of {META_TASKS}, got {meta_task!r}")
    root = Path(image_root) if image_root is not None else path.parent
    rows = iter_jsonl(path) if path.suffix == ".jsonl" else iter_json_array(path)
    out = []
    for line, obj in rows:
        qry_text = require(obj, "qry_text", path, line, str)
        qry_img = obj.get("qry_img_path") or None
        tgt_text = require(obj, "tgt_text", path, line, list)
        tgt_img = obj.get("tgt_img_path") or [None] * len(tgt_text)
        if not isinstance(tgt_img, list) or len(tgt_img) != len(tgt_text):
            raise DataError(path, "must be a list as long as tgt_text", line=line, field="tgt_img_path")
        if not tgt_text:
            raise DataError(path, "empty candidate list", line=line, field="tgt_text")
        for field, p in [("qry_img_path", qry_img)] + [("tgt_img_path", t) for t in tgt_img]:
            if p and not (root / p).is_file():
                raise DataError(path, f"image {p!r} not found under {root}", line=line, field=field)
        out.append(
            MMEBItem(
                id=str(obj.get("id", f"{path.stem}-{line}")),
                meta_task=meta_task,
                dataset=dataset or path.stem,
                qry_text=qry_text,
                qry_img=str(root / qry_img) if qry_img else None,
                tgt_text=[str(t) for t in tgt_text],
                tgt_img=[str(root / t) if t else None for t in tgt_img],
            )
        )
    return out

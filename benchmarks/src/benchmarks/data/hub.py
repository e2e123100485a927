"""Fetching the official datasets from the HF hub through `datasets`, with a local-file path that works offline.

`load_hf(name, split, cache_dir)` looks for `cache_dir/<name>/<split>.jsonl` first; when it is missing it asks the
hub (unless HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set), saves the split there as jsonl and loads it with the
format's loader. Offline, or when the hub cannot be reached, it raises a DataError that says which file to put
where. Only hub datasets whose row layout matches one of our loaders are listed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.math import load_aime, load_gsm8k, load_math500
from benchmarks.data.qa import load_flashrag, load_hotpotqa, load_nq_open


@dataclass(frozen=True)
class HubSource:
    repo: str
    config: str | None
    loader: Callable[[Path], list]
    official: str  # where to get the file by hand


def _flashrag(subset: str) -> HubSource:
    return HubSource("RUC-NLPIR/FlashRAG_datasets", subset, load_flashrag, f"FlashRAG_datasets/{subset}/<split>.jsonl")


HUB: dict[str, HubSource] = {
    "gsm8k": HubSource("openai/gsm8k", "main", load_gsm8k, "github.com/openai/grade-school-math data/<split>.jsonl"),
    "nq_open": HubSource("google-research-datasets/nq_open", "nq_open", load_nq_open, "nq_open/NQ-open.<split>.jsonl"),
    "hotpotqa": HubSource("hotpotqa/hotpot_qa", "distractor", load_hotpotqa, "HotpotQA distractor, HF schema jsonl"),
    "math500": HubSource("HuggingFaceH4/MATH-500", None, load_math500, "HuggingFaceH4/MATH-500 test.jsonl"),
    "aime24": HubSource("HuggingFaceH4/aime_2024", None, load_aime, "Qwen2.5-Math evaluation/data/aime24/test.jsonl"),
    **{
        f"flashrag/{s}": _flashrag(s)
        for s in ("nq", "triviaqa", "popqa", "bamboogle", "hotpotqa", "2wikimultihopqa", "musique")
    },
}


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def local_path(name: str, split: str, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / name.replace("/", "__") / f"{split}.jsonl"


def load_hf(name: str, split: str, cache_dir: str | Path) -> list:
    """Records of one split of a hub dataset, from `cache_dir` when present, else fetched and cached there."""
    if name not in HUB:
        raise KeyError(f"unknown hub dataset {name!r}; known: {sorted(HUB)}")
    source, path = HUB[name], local_path(name, split, cache_dir)
    if path.is_file():
        return source.loader(path)
    how = (
        f"put the {split} split in the official format ({source.official}) at {path}, "
        f"or run once with network access to fetch {source.repo}"
    )
    if _offline():
        raise DataError(path, f"not found and the HF hub is offline: {how}")
    try:
        import datasets

        ds = datasets.load_dataset(source.repo, source.config, split=split, cache_dir=str(Path(cache_dir) / "hf"))
    except Exception as e:  # network, auth and missing-split errors all end in the same instruction
        raise DataError(path, f"could not fetch {source.repo} ({type(e).__name__}: {e}); {how}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ds.to_json(str(tmp), lines=True, force_ascii=False)
    os.replace(tmp, path)
    return source.loader(path)

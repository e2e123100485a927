"""The real data slices bundled with the package (see benchmarks/DATA.md for origins and licences).

`load_bundled(name)` returns typed records for each slice; `bundled_path(rel)` gives a file's path inside the
installed package, so method packages read the same files without touching any path outside the wheel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.data.finance import load_tatqa
from benchmarks.data.math import load_aime, load_gsm8k, load_math500
from benchmarks.data.qa import (
    load_flashrag,
    load_hotpotqa,
    load_musique,
    load_nq_open,
    load_passage_corpus,
    load_qa_pairs,
)
from benchmarks.data.retrieval import load_cranfield
from benchmarks.data.tools import load_bfcl

DATA_DIR = Path(__file__).resolve().parent.parent / "data_files"
_BFCL = "tool_use/bfcl"


def bundled_path(rel: str) -> Path:
    """Absolute path of a bundled file or folder; FileNotFoundError lists what is bundled on a typo."""
    path = DATA_DIR / rel
    if not path.exists():
        raise FileNotFoundError(f"{rel!r} is not bundled; bundled datasets: {sorted(BUNDLED)} (under {DATA_DIR})")
    return path


def _bfcl(category: str) -> Callable[[], list]:
    def load():
        answers = DATA_DIR / _BFCL / "possible_answer" / f"BFCL_v4_{category}.json"
        return load_bfcl(
            DATA_DIR / _BFCL / f"BFCL_v4_{category}.json",
            answers if answers.is_file() else None,
            DATA_DIR / _BFCL / "multi_turn_func_doc",
        )

    return load


BUNDLED: dict[str, Callable[[], object]] = {
    "nq_open": lambda: load_nq_open(DATA_DIR / "qa/nq_open/NQ-open.dev.jsonl"),
    "triviaqa": lambda: load_flashrag(DATA_DIR / "qa/triviaqa/test.jsonl"),
    "bamboogle": lambda: load_flashrag(DATA_DIR / "qa/bamboogle/test.jsonl"),
    "hotpotqa": lambda: load_hotpotqa(DATA_DIR / "qa/hotpotqa/dev.jsonl"),
    "2wikimultihopqa": lambda: load_qa_pairs(
        DATA_DIR / "qa/2wikimultihopqa/2wikimultihop_dev_questions_and_answers.json", "2wiki"
    ),
    "musique": lambda: load_qa_pairs(DATA_DIR / "qa/musique/musique_dev_questions_and_answers.json", "musique"),
    "hipporag_hotpotqa": lambda: load_hotpotqa(DATA_DIR / "retrieval/hipporag_hotpotqa/hotpotqa_train.json"),
    "hipporag_hotpotqa_corpus": lambda: load_passage_corpus(
        DATA_DIR / "retrieval/hipporag_hotpotqa/hotpotqa_train_corpus.json"
    ),
    "hipporag_musique": lambda: load_musique(DATA_DIR / "retrieval/hipporag_musique/musique_train.json"),
    "hipporag_musique_corpus": lambda: load_passage_corpus(
        DATA_DIR / "retrieval/hipporag_musique/musique_train_corpus.json"
    ),
    "gsm8k": lambda: load_gsm8k(DATA_DIR / "math/gsm8k/test.jsonl"),
    "math500": lambda: load_math500(DATA_DIR / "math/math500/test.jsonl"),
    "aime24": lambda: load_aime(DATA_DIR / "math/aime24/test.jsonl"),
    "cranfield": lambda: load_cranfield(DATA_DIR / "retrieval/cranfield"),
    "tatqa": lambda: load_tatqa(DATA_DIR / "finance/tatqa/tatqa_dataset_dev.json"),
    **{
        f"bfcl_{c}": _bfcl(c)
        for c in (
            "simple_python",
            "multiple",
            "parallel",
            "parallel_multiple",
            "live_simple",
            "irrelevance",
            "multi_turn_base",
        )
    },
}


def load_bundled(name: str):
    """Records of one bundled slice, e.g. `load_bundled("gsm8k")`; KeyError lists the names."""
    if name not in BUNDLED:
        raise KeyError(f"no bundled dataset {name!r}; bundled: {sorted(BUNDLED)}")
    return BUNDLED[name]()

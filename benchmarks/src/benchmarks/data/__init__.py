"""Loaders for the real benchmark formats, typed records, the bundled real slices and the hub path.

Every loader returns dataclass records (see `records.py`) and raises `DataError` naming the file, the line or
record, and the field on malformed input.
"""

from benchmarks.data.bundled import BUNDLED, DATA_DIR, bundled_path, load_bundled
from benchmarks.data.errors import DataError
from benchmarks.data.finance import load_finqa, load_tatqa
from benchmarks.data.hub import HUB, load_hf
from benchmarks.data.math import load_aime, load_gsm8k, load_math500
from benchmarks.data.mmeb import load_mmeb
from benchmarks.data.qa import (
    load_2wiki,
    load_flashrag,
    load_hotpotqa,
    load_musique,
    load_nq_open,
    load_passage_corpus,
    load_popqa,
    load_qa_pairs,
)
from benchmarks.data.records import (
    Document,
    FunctionCallRecord,
    GenRetrievalSplit,
    MathRecord,
    MMEBItem,
    MultiHopRecord,
    Paragraph,
    QARecord,
    RetrievalSet,
    TableQARecord,
)
from benchmarks.data.retrieval import load_beir, load_cranfield, load_msmarco, load_nq320k, load_qrels
from benchmarks.data.tools import load_bfcl

__all__ = [
    "BUNDLED", "DATA_DIR", "HUB", "DataError", "Document", "FunctionCallRecord", "GenRetrievalSplit", "MathRecord",
    "MMEBItem", "MultiHopRecord", "Paragraph", "QARecord", "RetrievalSet", "TableQARecord", "bundled_path",
    "load_2wiki", "load_aime", "load_beir", "load_bfcl", "load_bundled", "load_cranfield", "load_finqa",
    "load_flashrag", "load_gsm8k", "load_hf", "load_hotpotqa", "load_math500", "load_mmeb", "load_msmarco",
    "load_musique", "load_nq320k", "load_nq_open", "load_passage_corpus", "load_popqa", "load_qa_pairs",
    "load_qrels", "load_tatqa",
]  # fmt: skip

"""Loaders for the real benchmark formats, typed records, and the bundled real data slices."""

from benchmarks.data.errors import DataError
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

__all__ = [
    "DataError",
    "Document",
    "FunctionCallRecord",
    "GenRetrievalSplit",
    "MathRecord",
    "MMEBItem",
    "MultiHopRecord",
    "Paragraph",
    "QARecord",
    "RetrievalSet",
    "TableQARecord",
]

"""Typed records returned by the loaders and the synthetic suites (one dataclass per data shape).

Loaders of different file formats map onto these few shapes, so a task or a method reads a QA set the same way
whether it came from NQ-open, TriviaQA or 2Wiki, and an MMEB meta-task the same way whether real or synthetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class QARecord:
    """Open-domain QA (FlashRAG layout): a question and every acceptable answer."""

    id: str
    question: str
    golden_answers: list[str]
    metadata: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Paragraph:
    title: str
    sentences: list[str]
    is_supporting: bool = False

    @property
    def text(self) -> str:
        return " ".join(s.strip() for s in self.sentences)


@dataclass
class MultiHopRecord:
    """HotpotQA / 2Wiki / MuSiQue with context: paragraphs, supporting facts (title, sentence index), steps."""

    id: str
    question: str
    golden_answers: list[str]
    paragraphs: list[Paragraph]
    supporting_facts: list[tuple[str, int]] = field(default_factory=list)
    decomposition: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass
class MathRecord:
    """A math problem with its final answer (and the reference solution when the file has one)."""

    id: str
    problem: str
    answer: str
    solution: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """FlashRAG / Search-R1 `"Title"\\ntext` (just the text when there is no title)."""
        return f'"{self.title}"\n{self.text}' if self.title else self.text


@dataclass
class RetrievalSet:
    """Corpus, queries and graded qrels {qid: {docid: grade}} (BEIR, MS MARCO, Cranfield, NQ320k test)."""

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class GenRetrievalSplit:
    """NQ320k-style generative retrieval: documents, (query, docid) training pairs and test pairs."""

    docs: dict[str, Document]
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]


@dataclass
class MMEBItem:
    """One MMEB query with its candidate list; candidate 0 is the positive, as in the MMEB eval files."""

    id: str
    meta_task: str  # classification | vqa | retrieval | grounding
    dataset: str
    qry_text: str
    qry_img: str | None
    tgt_text: list[str]
    tgt_img: list[str | None]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FunctionCallRecord:
    """BFCL item: the conversation turns, the function docs, and the accepted calls (empty for irrelevance)."""

    id: str
    turns: list[list[dict]]
    functions: list[dict]
    possible_answer: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass
class TableQARecord:
    """TAT-QA / FinQA question over a table and text; `program` is the FinQA DSL program when given."""

    id: str
    question: str
    answer: str | float | list
    table: list[list[str]]
    paragraphs: list[str]
    answer_type: str = ""
    scale: str = ""
    program: str = ""
    metadata: dict = field(default_factory=dict)

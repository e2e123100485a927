"""BFCL loader: questions + function docs (+ possible answers), for single-turn and multi-turn categories.

BFCL files are JSON lines despite their .json names. Multi-turn items name `involved_classes` whose function docs
live in multi_turn_func_doc/<file>.json; pass that folder to attach them.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl, require
from benchmarks.data.records import FunctionCallRecord

# BFCL's class name -> function-doc file (bfcl_eval/constants)
MULTI_TURN_DOCS = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}


def load_bfcl(
    questions: str | Path, possible_answers: str | Path | None = None, func_doc_dir: str | Path | None = None
) -> list[FunctionCallRecord]:
    """Join BFCL questions with their ground truth by id; a question without an answer entry is an error."""
    questions = Path(questions)
    answers: dict[str, list] = {}
    if possible_answers is not None:
        for line, obj in iter_jsonl(possible_answers):
            answers[str(require(obj, "id", possible_answers, line))] = require(
                obj, "ground_truth", possible_answers, line, list
            )
    docs_cache: dict[str, list[dict]] = {}
    out = []
    for line, obj in iter_jsonl(questions):
        qid = str(require(obj, "id", questions, line))
        turns = require(obj, "question", questions, line, list)
        if not turns or not all(isinstance(t, list) for t in turns):
            raise DataError(questions, "expected a list of turns (lists of messages)", line=line, field="question")
        functions = obj.get("function")
        if functions is None:
            classes = require(obj, "involved_classes", questions, line, list)
            functions = []
            if func_doc_dir is not None:
                for cls in classes:
                    if cls not in MULTI_TURN_DOCS:
                        raise DataError(questions, f"unknown class {cls!r}", line=line, field="involved_classes")
                    if cls not in docs_cache:
                        docs_cache[cls] = [o for _, o in iter_jsonl(Path(func_doc_dir) / MULTI_TURN_DOCS[cls])]
                    functions += docs_cache[cls]
        if possible_answers is not None and qid not in answers and not qid.startswith("irrelevance"):
            raise DataError(
                questions, f"no ground truth for id {qid!r} in {Path(possible_answers).name}", line=line, field="id"
            )
        meta = {k: obj[k] for k in ("initial_config", "involved_classes", "path", "excluded_function") if k in obj}
        out.append(FunctionCallRecord(qid, turns, functions, answers.get(qid, []), meta))
    return out

"""Seed questions of the synthesis pipeline, normalised to one record shape, and the search corpus they come with.

A seed is `{id, question, golden_answers, source, split, hops, support, kb?}`:
- `support`: the supporting paragraphs `[{title, sentences, on_path}]` (`on_path`: indices of the supporting
  sentences when the source says which, else None);
- `kb` (synthetic KB seeds only): `{start, relations}`, the chain the question walks.

Sources (`seeds.source`):
- `kb`: `benchmarks.synthetic.kb` with the (entity, chain) split (`split_by="entity_chain"`: every (entity, relation)
  hop belongs to one split and a question is kept only in the split of all its hops, so no test hop occurs in any
  training question). 2-hop questions seed L1/L2, 3-hop questions seed L3. `dev_per_level` training seeds per hop
  count are set aside as the dev split (hash order).
- `hotpotqa` / `musique`: the bundled real slices (`benchmarks.data.load_bundled("hotpotqa" |
  "hipporag_musique")`), HotpotQA with sentence-level supporting facts, MuSiQue with supporting paragraphs.
- `jsonl`: a file of `{id, question, golden_answers, supporting_facts?: [{title, text}] | [[title, sentence]],
  paragraphs?: [{title, text, is_supporting}]}`.
A record without an answer is a `DataError` naming file, line and field; a record without supporting facts is one
too when L2/L3 are asked for and `missing_support` is "error" (with "skip" its L2/L3 are dropped later, reason
`no_supporting_facts`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.data.errors import DataError

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def _hash_order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def kb_seeds(settings: Any) -> tuple[list[dict], list[dict], Any]:
    """(seeds, corpus, kb) of the synthetic KB (module docstring)."""
    from benchmarks.synthetic.kb import make_kb, make_kb_questions, question_pool

    k = settings.kb
    kb = make_kb(n_people=k.n_people, n_companies=k.n_companies, n_cities=k.n_cities, n_countries=k.n_countries,
                 seed=k.seed)
    title_of = {pid: title for title, pid in kb.passage_ids.items()}
    seeds: list[dict] = []
    for split in ("train", "test"):
        pool = question_pool(kb, split, (2, 3), "entity_chain", k.test_fraction)
        for q in make_kb_questions(kb, len(pool), seed=k.seed, hops=(2, 3), split=split, split_by="entity_chain",
                                   test_fraction=k.test_fraction):
            start = title_of[q.sub_questions[0].passage_id]
            support = [{"title": title_of[s.passage_id], "sentences": split_sentences(kb.passages[title_of[s.passage_id]]),
                        "on_path": None} for s in q.sub_questions]
            seeds.append({"id": f"kb{k.seed}:{start}|{'>'.join(q.relations)}", "question": q.question,
                          "golden_answers": q.golden_answers, "source": "kb", "split": split, "hops": q.hops,
                          "support": support, "kb": {"start": start, "relations": list(q.relations)},
                          "sub_questions": [{"question": s.question, "answer": s.answer,
                                             "passage_id": s.passage_id} for s in q.sub_questions]})
    for hops in (2, 3):  # dev: the first training seeds of each hop count in hash order (never trained on)
        train = sorted((s for s in seeds if s["split"] == "train" and s["hops"] == hops),
                       key=lambda s: _hash_order(s["id"]))
        for s in train[: k.dev_per_level]:
            s["split"] = "dev"
    seeds.sort(key=lambda s: s["id"])
    return seeds, kb.corpus(), kb


def _support_from_paragraphs(paragraphs: Sequence[Any], facts: Sequence[tuple[str, int]]) -> list[dict]:
    on_path: dict[str, list[int]] = {}
    for title, idx in facts:
        on_path.setdefault(str(title), []).append(int(idx))
    out = []
    for p in paragraphs:
        if p.is_supporting or p.title in on_path:
            sentences = list(p.sentences) if len(p.sentences) > 1 else split_sentences(p.text)
            out.append({"title": p.title, "sentences": [s.strip() for s in sentences if s.strip()],
                        "on_path": sorted(on_path[p.title]) if p.title in on_path else None})
    return out


def bundled_seeds(name: str) -> tuple[list[dict], list[dict]]:
    """(seeds, corpus) of a bundled real slice: "hotpotqa" or "musique" (hipporag_musique)."""
    from benchmarks.data import load_bundled

    records = load_bundled("hotpotqa" if name == "hotpotqa" else "hipporag_musique")
    seeds, corpus, seen = [], [], {}
    for r in records:
        hops = max(2, len(r.decomposition)) if r.decomposition else 2
        seeds.append({"id": f"{name}:{r.id}", "question": r.question, "golden_answers": list(r.golden_answers),
                      "source": name, "split": "", "hops": hops,
                      "support": _support_from_paragraphs(r.paragraphs, r.supporting_facts)})
        for p in r.paragraphs:
            if p.title not in seen:
                seen[p.title] = len(corpus)
                corpus.append({"id": f"{name}-{len(corpus)}", "contents": f'"{p.title}"\n{p.text}'})
    return seeds, corpus


def _jsonl_support(obj: dict, path: Path, line: int) -> list[dict]:
    facts = obj.get("supporting_facts") or []
    paragraphs = obj.get("paragraphs") or []
    if not isinstance(facts, list) or not isinstance(paragraphs, list):
        raise DataError(path, "expected a list", line=line, field="supporting_facts" if not isinstance(facts, list)
                        else "paragraphs")
    by_title: dict[str, dict] = {}
    for i, p in enumerate(paragraphs):
        if not isinstance(p, dict) or not isinstance(p.get("title"), str) or not isinstance(p.get("text"), str):
            raise DataError(path, "each paragraph needs string 'title' and 'text'", line=line, field=f"paragraphs[{i}]")
        if p.get("is_supporting"):
            by_title[p["title"]] = {"title": p["title"], "sentences": split_sentences(p["text"]), "on_path": None}
    for i, f in enumerate(facts):
        if isinstance(f, dict) and isinstance(f.get("title"), str) and isinstance(f.get("text"), str):
            by_title.setdefault(f["title"], {"title": f["title"], "sentences": split_sentences(f["text"]),
                                             "on_path": None})
        elif isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and isinstance(f[1], int):
            para = next((p for p in paragraphs if isinstance(p, dict) and p.get("title") == f[0]), None)
            if para is None:
                raise DataError(path, f"names paragraph {f[0]!r}, which 'paragraphs' does not hold", line=line,
                                field=f"supporting_facts[{i}]")
            entry = by_title.setdefault(f[0], {"title": f[0], "sentences": split_sentences(para["text"]),
                                               "on_path": []})
            entry["on_path"] = sorted({*(entry["on_path"] or []), f[1]})
        else:
            raise DataError(path, "expected {title, text} or [title, sentence index]", line=line,
                            field=f"supporting_facts[{i}]")
    return list(by_title.values())


def jsonl_seeds(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(seeds, corpus) of a seed file (module docstring); the corpus holds every paragraph and supporting text."""
    from benchmarks.data.io import iter_jsonl, require, str_list

    path = Path(path)
    seeds, corpus, seen = [], [], set()
    for line, obj in iter_jsonl(path):
        qid = str(obj.get("id", f"line{line}"))
        question = require(obj, "question", path, line, str)
        if not question.strip():
            raise DataError(path, "empty question", line=line, field="question")
        golds = str_list(obj, "golden_answers", path, line)
        if not any(g.strip() for g in golds):
            raise DataError(path, "no non-empty answer", line=line, field="golden_answers")
        support = _jsonl_support(obj, path, line)
        seeds.append({"id": qid, "question": question, "golden_answers": golds, "source": str(path),
                      "split": str(obj.get("split", "")), "hops": int(obj.get("hops", 2)), "support": support,
                      "where": f"{path}:{line}"})
        texts = [(p["title"], p["text"]) for p in obj.get("paragraphs") or []]
        texts += [(s["title"], " ".join(s["sentences"])) for s in support]
        for title, text in texts:
            if title not in seen:
                seen.add(title)
                corpus.append({"id": f"doc-{len(corpus)}", "contents": f'"{title}"\n{text}'})
    if not seeds:
        raise DataError(path, "no seed records")
    return seeds, corpus


def load_seeds(settings: Any, levels: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """(seeds, corpus) of `settings.source`, limited to `settings.limit`; checks supporting facts (docstring)."""
    if settings.source == "kb":
        seeds, corpus, _ = kb_seeds(settings)
    elif settings.source in ("hotpotqa", "musique"):
        seeds, corpus = bundled_seeds(settings.source)
    else:
        seeds, corpus = jsonl_seeds(settings.path)
    if settings.limit > 0:
        seeds = seeds[: settings.limit]
    needs_support = any(lv in ("L2", "L3") for lv in levels)
    if needs_support and settings.missing_support == "error":
        for i, s in enumerate(seeds):
            if not s["support"]:
                where = s.get("where") or f"{settings.source} record {i} (id {s['id']!r})"
                raise DataError(where, "missing: L2/L3 obfuscate entities from supporting facts (set "
                                "seeds.missing_support=skip to keep only its L1)", field="supporting_facts")
    return seeds, corpus

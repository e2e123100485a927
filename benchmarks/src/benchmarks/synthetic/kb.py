"""Synthetic knowledge base with 1-3-hop questions and a passage corpus for search agents.

Invented entities (people, companies, cities, countries) and relations (born_in, works_for, mentor,
headquartered_in, located_in, founded_in, language) are written out as one passage per entity. A question chains
relations from a person or company; each record carries its gold answer, one sub-question per hop with the
passage that supports it, and the supporting passage ids. The corpus is `[{id, contents}]` with FlashRAG /
Search-R1 contents `"Title"\\ntext`, so it drops into `shared.retrieval`. `solve` is a scripted oracle that
answers every question by reading only the corpus passages, hop by hop, which shows the questions are solvable
from search. Deterministic by seed.

Splits (`make_kb_questions(..., split_by=...)`): `"entity"` puts a question in the split of its start entity, so
train and test questions never share a subject, but their later hops can coincide (the mentor of a test person
may be a training question's subject); `"entity_chain"` assigns every hop, i.e. every (entity, relation) link and
so every (sub-question, gold passage) pair, to a split and keeps a question only in the split all its hops are in,
so no test hop appears in any training question while test entities still occur in training questions about
their other relations. Sizes for a test set of >= 512 questions: `make_kb(**LARGE_KB)` (300 people, 378
passages) with `split_by="entity_chain"` has 886 test and 934 training questions (seed 0).

`entity_description` writes an entity as a phrase of its own facts ("the person who works for X Corp and whose
mentor is Y") that fits no other entity of its type, for questions that hide the entity's name.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import asdict, dataclass, field

_SYLLABLES = ("ka", "lo", "mi", "ra", "ne", "to", "sa", "vu", "de", "po", "li", "zo", "fe", "ga", "ru", "hi")
_LANGS = ("Veltic", "Orran", "Sundic", "Maleth", "Quorish", "Tamber", "Elvane", "Dorric")
_SUFFIX = {"company": " Corp", "city": "ville", "country": "land"}

# relation -> (subject type, object type, passage sentence, one-hop question)
RELATIONS: dict[str, tuple[str, str, str, str]] = {
    "born_in": ("person", "city", "{s} was born in {o}.", "Where was {s} born?"),
    "works_for": ("person", "company", "{s} works for {o}.", "Which company does {s} work for?"),
    "mentor": ("person", "person", "The mentor of {s} is {o}.", "Who is the mentor of {s}?"),
    "headquartered_in": ("company", "city", "{s} is headquartered in {o}.", "Where is {s} headquartered?"),
    "founded_in": ("company", "year", "{s} was founded in {o}.", "In which year was {s} founded?"),
    "located_in": ("city", "country", "{s} is a city in {o}.", "In which country is {s}?"),
    "language": ("country", "language", "The official language of {o_of} is {o}.", "What is the language of {s}?"),
}

# relation -> relative clause describing its subject (entity_description)
CLAUSES: dict[str, str] = {
    "born_in": "who was born in {o}",
    "works_for": "who works for {o}",
    "mentor": "whose mentor is {o}",
    "headquartered_in": "that is headquartered in {o}",
    "founded_in": "that was founded in {o}",
    "located_in": "that is in {o}",
    "language": "whose official language is {o}",
}

# KB sizes whose "entity_chain" split holds >= 512 test questions (886 at seed 0; 934 training questions)
LARGE_KB: dict[str, int] = {"n_people": 300, "n_companies": 40, "n_cities": 30, "n_countries": 8}
SPLITS_BY = ("entity", "entity_chain")

# chain of relations -> natural question about the start entity
TEMPLATES: dict[tuple[str, ...], str] = {
    ("born_in",): "Where was {s} born?",
    ("works_for",): "Which company does {s} work for?",
    ("mentor",): "Who is the mentor of {s}?",
    ("headquartered_in",): "Where is {s} headquartered?",
    ("founded_in",): "In which year was {s} founded?",
    ("born_in", "located_in"): "In which country was {s} born?",
    ("works_for", "headquartered_in"): "In which city is the company that {s} works for headquartered?",
    ("works_for", "founded_in"): "In which year was the company that {s} works for founded?",
    ("mentor", "born_in"): "Where was the mentor of {s} born?",
    ("headquartered_in", "located_in"): "In which country is {s} headquartered?",
    (
        "works_for",
        "headquartered_in",
        "located_in",
    ): "In which country is the company that {s} works for headquartered?",
    ("mentor", "works_for", "headquartered_in"): "In which city is the employer of the mentor of {s} headquartered?",
    ("mentor", "born_in", "located_in"): "In which country was the mentor of {s} born?",
    ("born_in", "located_in", "language"): "What is the official language of the country where {s} was born?",
}


@dataclass
class SubQuestion:
    question: str
    answer: str
    passage_id: str


@dataclass
class KBQuestion:
    """A multi-hop question; `golden_answers` follows the FlashRAG record layout."""

    id: str
    question: str
    answer: str
    hops: int
    relations: list[str]
    sub_questions: list[SubQuestion]
    supporting_passage_ids: list[str]
    split: str = "train"

    @property
    def golden_answers(self) -> list[str]:
        return [self.answer]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["golden_answers"] = self.golden_answers
        return d

    def to_flashrag(self) -> dict:
        return {"id": self.id, "question": self.question, "golden_answers": self.golden_answers}


@dataclass
class KnowledgeBase:
    """Entities by type, facts as (subject, relation) -> object, and one passage per entity."""

    entities: dict[str, list[str]]
    facts: dict[tuple[str, str], str]
    passages: dict[str, str] = field(default_factory=dict)  # title -> text
    passage_ids: dict[str, str] = field(default_factory=dict)  # title -> id

    def corpus(self) -> list[dict]:
        """`[{id, contents}]` with contents `"Title"\\ntext` (Search-R1 / FlashRAG wiki layout)."""
        return [{"id": self.passage_ids[t], "contents": f'"{t}"\n{self.passages[t]}'} for t in self.passages]

    def type_of(self, name: str) -> str:
        for kind, names in self.entities.items():
            if name in names:
                return kind
        raise KeyError(f"unknown entity {name!r}")


def _names(rng: random.Random, n: int, kind: str, taken: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        k = 2 if kind != "person" else 3
        base = "".join(rng.choice(_SYLLABLES) for _ in range(k)).capitalize()
        if kind == "person":
            base = f"{base} {''.join(rng.choice(_SYLLABLES) for _ in range(2)).capitalize()}"
        name = base + _SUFFIX.get(kind, "")
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def make_kb(
    n_people: int = 60, n_companies: int = 15, n_cities: int = 12, n_countries: int = 5, seed: int = 0
) -> KnowledgeBase:
    """Build a random knowledge base; every entity gets one passage stating all its outgoing facts."""
    if min(n_people, n_companies, n_cities, n_countries) < 2:
        raise ValueError("make_kb needs at least 2 entities of each type")
    rng = random.Random(f"kb|{seed}")
    taken: set[str] = set()
    ents = {
        "person": _names(rng, n_people, "person", taken),
        "company": _names(rng, n_companies, "company", taken),
        "city": _names(rng, n_cities, "city", taken),
        "country": _names(rng, n_countries, "country", taken),
    }
    facts: dict[tuple[str, str], str] = {}
    for i, p in enumerate(ents["person"]):
        facts[(p, "born_in")] = rng.choice(ents["city"])
        facts[(p, "works_for")] = rng.choice(ents["company"])
        others = ents["person"][:i] + ents["person"][i + 1 :]
        facts[(p, "mentor")] = rng.choice(others)
    for c in ents["company"]:
        facts[(c, "headquartered_in")] = rng.choice(ents["city"])
        facts[(c, "founded_in")] = str(rng.randint(1850, 2020))
    for c in ents["city"]:
        facts[(c, "located_in")] = rng.choice(ents["country"])
    for c in ents["country"]:
        facts[(c, "language")] = rng.choice(_LANGS)
    kb = KnowledgeBase(entities=ents, facts=facts)
    order = [e for kind in ("person", "company", "city", "country") for e in ents[kind]]
    for idx, e in enumerate(order):
        sentences = [RELATIONS[rel][2].format(s=e, o=obj, o_of=e) for (subj, rel), obj in facts.items() if subj == e]
        kb.passages[e] = " ".join(sentences)
        kb.passage_ids[e] = f"kb{seed}-{idx}"
    return kb


def split_of(entity: str, test_fraction: float = 0.25) -> str:
    """Start entities are split by hash so train and test questions never share a subject."""
    bucket = int(hashlib.sha256(entity.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def hop_split_of(entity: str, relation: str, test_fraction: float = 0.5) -> str:
    """The split of one hop (entity, relation), i.e. of its (sub-question, gold passage) pair, by hash."""
    return split_of(f"{entity}|{relation}", test_fraction)


def chain_hops(kb: KnowledgeBase, start: str, chain: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (entity, relation) hops a question walks: the subject of each sub-question and the relation asked."""
    hops, node = [], start
    for rel in chain:
        hops.append((node, rel))
        node = kb.facts[(node, rel)]
    return hops


def question_split(kb: KnowledgeBase, start: str, chain: tuple[str, ...], split_by: str = "entity",
                   test_fraction: float | None = None) -> str | None:
    """"train", "test", or None for an "entity_chain" question whose hops fall in both splits (used by neither)."""
    if split_by == "entity":
        return split_of(start, 0.25 if test_fraction is None else test_fraction)
    if split_by != "entity_chain":
        raise ValueError(f"split_by must be one of {SPLITS_BY}, got {split_by!r}")
    fraction = 0.5 if test_fraction is None else test_fraction
    splits = {hop_split_of(e, rel, fraction) for e, rel in chain_hops(kb, start, chain)}
    return splits.pop() if len(splits) == 1 else None


def entity_description(kb: KnowledgeBase, entity: str, exclude: tuple[str, ...] | list[str] = (), k: int = 2
                       ) -> str | None:
    """A phrase naming `entity` by `k` of its own facts, e.g. "the person who works for Lomi Corp and whose mentor
    is Kara Nelo", such that no other entity of its type has all `k` facts (uniqueness is checked over
    `kb.facts`). Facts whose relation is in `exclude` are not used (e.g. the relation a question asks about).

    Relation subsets are tried in `RELATIONS` order and the first unique one is returned; None when no subset of
    `k` allowed facts identifies the entity (the caller drops such a question as ambiguous)."""
    if k < 1:
        raise ValueError(f"entity_description needs k >= 1, got {k}")
    kind = kb.type_of(entity)
    allowed = [rel for rel in RELATIONS if (entity, rel) in kb.facts and rel not in exclude]
    for rels in itertools.combinations(allowed, k):
        facts = [(rel, kb.facts[(entity, rel)]) for rel in rels]
        if matching_entities(kb, kind, facts) == [entity]:
            return f"the {kind} " + " and ".join(CLAUSES[rel].format(o=obj) for rel, obj in facts)
    return None


def matching_entities(kb: KnowledgeBase, kind: str, facts: list[tuple[str, str]]) -> list[str]:
    """Entities of type `kind` that have every (relation, object) fact in `facts`."""
    return [e for e in kb.entities[kind] if all(kb.facts.get((e, rel)) == obj for rel, obj in facts)]


def _ask(kb: KnowledgeBase, start: str, chain: tuple[str, ...], qid: str, split: str) -> KBQuestion:
    subs, node = [], start
    for rel in chain:
        obj = kb.facts[(node, rel)]
        subs.append(SubQuestion(RELATIONS[rel][3].format(s=node), obj, kb.passage_ids[node]))
        node = obj
    return KBQuestion(
        id=qid,
        question=TEMPLATES[chain].format(s=start),
        answer=node,
        hops=len(chain),
        relations=list(chain),
        sub_questions=subs,
        supporting_passage_ids=[s.passage_id for s in subs],
        split=split,
    )


def question_pool(kb: KnowledgeBase, split: str, hops: tuple[int, ...] = (1, 2, 3), split_by: str = "entity",
                  test_fraction: float | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """Every distinct (start entity, chain) question of `split` with the given hop counts."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chains = [c for c in TEMPLATES if len(c) in hops]
    if not chains:
        raise ValueError(f"no question templates with hops in {hops}; available: 1, 2, 3")
    return [(e, chain) for chain in chains for e in kb.entities[RELATIONS[chain[0]][0]]
            if question_split(kb, e, chain, split_by, test_fraction) == split]


def make_kb_questions(
    kb: KnowledgeBase, n: int, seed: int = 0, hops: tuple[int, ...] = (1, 2, 3), split: str = "train",
    split_by: str = "entity", test_fraction: float | None = None,
) -> list[KBQuestion]:
    """`n` distinct questions of `split`, hop counts drawn in turn (a count whose questions run out is skipped).

    `split_by="entity"` (default, test_fraction 0.25): by start entity. `"entity_chain"` (test_fraction 0.5): by
    hop, so no (sub-question, gold passage) pair of a test question occurs in any training question (see the
    module docstring)."""
    pool = question_pool(kb, split, hops, split_by, test_fraction)
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} distinct {split} questions with hops {hops} (split_by={split_by}); "
                         "lower n or grow the KB (LARGE_KB)")
    rng = random.Random(f"kbq|{seed}|{split}")
    by_hops: dict[int, list] = {h: [p for p in pool if len(p[1]) == h] for h in hops}
    by_hops = {h: v for h, v in by_hops.items() if v}
    for v in by_hops.values():
        rng.shuffle(v)
    picked, hop_keys = [], sorted(by_hops)
    while len(picked) < n:
        h = hop_keys[len(picked) % len(hop_keys)]
        if not by_hops[h]:
            hop_keys.remove(h)
            continue
        picked.append(by_hops[h].pop())
    return [_ask(kb, e, chain, f"kbq-{split}-{seed}-{i}", split) for i, (e, chain) in enumerate(picked)]


def make_kb_suite(n_train: int = 200, n_test: int = 50, seed: int = 0, split_by: str = "entity", **kb_kwargs
                  ) -> dict:
    """Convenience: `{"kb", "corpus", "train", "test"}` from one seed."""
    kb = make_kb(seed=seed, **kb_kwargs)
    return {
        "kb": kb,
        "corpus": kb.corpus(),
        "train": make_kb_questions(kb, n_train, seed=seed, split="train", split_by=split_by),
        "test": make_kb_questions(kb, n_test, seed=seed, split="test", split_by=split_by),
    }


def hop_pairs(questions) -> set[tuple[str, str]]:
    """The (sub-question, gold passage id) pairs of questions given as KBQuestion objects or their dicts."""
    out = set()
    for q in questions:
        subs = q.get("sub_questions", []) if isinstance(q, dict) else [asdict(s) for s in q.sub_questions]
        out |= {(s["question"], str(s["passage_id"])) for s in subs}
    return out


def shared_hops(train, test) -> int:
    """How many distinct (sub-question, gold passage) pairs of the test questions also occur in training ones."""
    return len(hop_pairs(test) & hop_pairs(train))


def _sentence_regex(rel: str, subject: str) -> re.Pattern:
    pattern = (
        re.escape(RELATIONS[rel][2]).replace(r"\{s\}", re.escape(subject)).replace(r"\{o_of\}", re.escape(subject))
    )
    return re.compile(pattern.replace(r"\{o\}", r"(.+?)") + "(?: |$)")


def solve(question: str, corpus: list[dict]) -> str:
    """Scripted oracle: parse the question template, then follow each hop by reading the subject's passage."""
    by_title = {}
    for doc in corpus:
        title, _, text = doc["contents"].partition("\n")
        by_title[title.strip('"')] = text
    # several templates can match textually ("Where was the mentor of X born?" fits "Where was {s} born?");
    # the right one is the template whose captured subject is an entity with a passage
    for chain, template in TEMPLATES.items():
        m = re.fullmatch(re.escape(template).replace(r"\{s\}", "(.+)"), question)
        if not m or m.group(1) not in by_title:
            continue
        node = m.group(1)
        for rel in chain:
            if node not in by_title:
                raise ValueError(f"no passage titled {node!r} in the corpus")
            hit = _sentence_regex(rel, node).search(by_title[node])
            if not hit:
                raise ValueError(f"passage {node!r} states no {rel} fact")
            node = hit.group(1)
        return node
    raise ValueError(f"question does not match any template: {question!r}")

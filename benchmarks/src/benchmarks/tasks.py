"""The task registry: a task is data (dataset, split, prompt template, answer extraction, metrics, version).

`TASKS` maps a name to a `Task`; `load_examples(task, limit)` turns the task's dataset into prompts and gold
answers. Kinds: `qa` (EM / F1 / sub-EM), `math` (accuracy of the last \\boxed{} or `#### n`), `retrieval`
(Recall@k, MRR@10, nDCG@10 by trec_eval conventions) and `mmeb` (Precision@1 per meta-task). A generative task may
name its own `scoring`: `choice` (the letter a reply commits to, `shared.rewards.numeric.choice_match`) or `numeric`
(the reply's number within a relative tolerance of any gold number; TAT-QA's golds hold the answer in the table's
units and as the absolute amount, so the scoring is scale-aware). Bump a task's
`version` whenever its prompt, data or scoring changes, so old and new numbers are never mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.data.bundled import load_bundled
from benchmarks.data.records import RetrievalSet

QA_PROMPT = "Answer the question with a short phrase.\nQuestion: {question}\nAnswer:"
CONTEXT_QA_PROMPT = "{context}\nAnswer the question with a short phrase.\nQuestion: {question}\nAnswer:"
MATH_PROMPT = "Solve the problem. Put the final answer in \\boxed{{}}.\nProblem: {question}\nSolution:"
EXTRACTIONS = ("boxed", "first_line")
TATQA_CONTEXT_CHARS = 1500  # the table and text of a TAT-QA prompt are cut to this many characters


@dataclass
class Example:
    id: str
    prompt: str
    golds: list[str]
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # qa | math | retrieval | mmeb
    dataset: str  # bundled name, or synthetic:<suite>
    split: str
    prompt: str  # template over {question} and {context}; the calibration tasks use the record's own prompt
    extraction: str  # boxed: the scorer reads the last \boxed{} (or #### n); first_line: first line, stripped
    metrics: tuple[str, ...]
    version: str
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ("\n",)
    description: str = ""
    scoring: str = ""  # "" = by kind; "choice" | "numeric" (see the module docstring)


def extract_answer(task: Task, text: str) -> str:
    """The scored part of a completion: the whole text for `boxed` (the scorer finds the box), else line one."""
    if task.extraction == "boxed":
        return text
    return text.strip().split("\n", 1)[0].strip()


def _qa(name: str, dataset: str, description: str, **kw) -> Task:
    return Task(name, "qa", dataset, "test", kw.pop("prompt", QA_PROMPT), "first_line", ("em", "f1", "sub_em"), "1",
                description=description, **kw)  # fmt: skip


def _math(name: str, dataset: str, description: str, **kw) -> Task:
    return Task(name, "math", dataset, "test", kw.pop("prompt", MATH_PROMPT), "boxed", ("accuracy",), "1",
                max_new_tokens=kw.pop("max_new_tokens", 512), stop=(), description=description, **kw)  # fmt: skip


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        _math("arithmetic", "synthetic:arithmetic", "calibration arithmetic, 200 test problems (Q: 43+9-6=?)",
              prompt="{prompt}", max_new_tokens=32),
        _math("arithmetic_word", "synthetic:arithmetic_word", "arithmetic word problems, 200 test problems",
              prompt="{prompt}", max_new_tokens=32),
        _math("gsm8k", "gsm8k", "GSM8K test slice (660)"),
        _math("math500", "math500", "MATH-500 slice (250)", max_new_tokens=1024),
        _math("aime24", "aime24", "AIME 2024 slice (15)", max_new_tokens=2048),
        _math("fin_numeric", "synthetic:fin_numeric", "synthetic finance arithmetic (company tables), 500 test "
              "questions", prompt="{prompt}", max_new_tokens=40),
        _math("fin_tool", "synthetic:fin_tool", "synthetic finance questions with 3-digit operands, 500 test "
              "questions, scored WITHOUT tools here (huijin scores them in its tool environment)", prompt="{prompt}",
              max_new_tokens=80),
        _math("fin_choice", "synthetic:fin_choice", "synthetic finance glossary multiple choice (A-D), 500 test items "
              "on held-out terms", prompt="{prompt}", max_new_tokens=16, scoring="choice"),
        _math("tatqa", "tatqa", "TAT-QA dev slice, arithmetic questions (718), table + text in the prompt, "
              "scale-aware numeric match (rel 1e-2)", prompt="{prompt}", max_new_tokens=32, scoring="numeric"),
        _qa("nq_open", "nq_open", "NQ-open dev slice (1805), closed book"),
        _qa("triviaqa", "triviaqa", "TriviaQA test slice (500), closed book"),
        _qa("bamboogle", "bamboogle", "Bamboogle (63), closed book"),
        _qa("2wikimultihopqa", "2wikimultihopqa", "2WikiMultihopQA dev slice, closed book"),
        _qa("musique", "musique", "MuSiQue dev slice, closed book"),
        _qa("hotpotqa", "hotpotqa", "HotpotQA distractor (300) with its 10 paragraphs in the prompt",
            prompt=CONTEXT_QA_PROMPT),
        _qa("kb_qa", "synthetic:kb", "synthetic KB 1-3-hop questions with the supporting passages in the prompt",
            prompt=CONTEXT_QA_PROMPT),
        Task("cranfield", "retrieval", "cranfield", "test", "{question}", "first_line",
             ("recall@10", "recall@100", "mrr@10", "ndcg@10"), "1", description="Cranfield (1400 docs, 112 queries)"),
        Task("synthetic_docs", "retrieval", "synthetic:docs", "test", "{question}", "first_line",
             ("recall@1", "recall@10", "mrr@10", "ndcg@10"), "1",
             description="synthetic NQ320k-style collection: test queries over 200 documents"),
        Task("images_mmeb", "mmeb", "synthetic:images", "test", "{question}", "first_line",
             ("p@1",), "1", description="procedural MMEB meta-tasks (classification, VQA, t2i, i2t), 200 images"),
    ]
}  # fmt: skip


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name]


def _synthetic_examples(task: Task) -> list[Example]:
    suite = task.dataset.split(":", 1)[1]
    if suite in ("arithmetic", "arithmetic_word"):
        from benchmarks.synthetic.arithmetic import make_arithmetic

        variant = "word" if suite == "arithmetic_word" else "calibration"
        recs = make_arithmetic(200, seed=0, split="test", variant=variant)
        return [Example(r.id, task.prompt.format(prompt=r.prompt), [r.answer]) for r in recs]
    if suite in ("fin_numeric", "fin_tool", "fin_choice"):
        from benchmarks.synthetic.finance import make_finance_suite

        fin = make_finance_suite(seed=0)
        items = fin.numeric("test", 500) if suite == "fin_numeric" else fin.tool("test", 500) \
            if suite == "fin_tool" else fin.choice("test", 500)
        return [Example(r["id"], task.prompt.format(prompt=r["prompt"]), [r["answer"]]) for r in items]
    if suite == "kb":
        from benchmarks.synthetic.kb import make_kb_suite

        s = make_kb_suite(n_train=0, n_test=100, seed=0)
        passages = {d["id"]: d["contents"] for d in s["corpus"]}
        return [
            Example(q.id, task.prompt.format(question=q.question,
                                             context="\n".join(passages[p] for p in q.supporting_passage_ids)),
                    [q.answer], {"hops": q.hops})
            for q in s["test"]
        ]  # fmt: skip
    raise KeyError(f"task {task.name}: no generative examples for {task.dataset}")


def load_examples(task: Task, limit: int | None = None) -> list[Example]:
    """Prompts and gold answers of a generative (qa / math) task, the first `limit` of them."""
    if task.kind not in ("qa", "math"):
        raise ValueError(f"task {task.name} is a {task.kind} task; use load_retrieval_set / the mmeb API")
    if task.dataset.startswith("synthetic:"):
        examples = _synthetic_examples(task)
    elif task.dataset == "tatqa":
        from benchmarks.data.finance import tatqa_golds, tatqa_prompt

        examples = [Example(r.id, task.prompt.format(prompt=tatqa_prompt(r, TATQA_CONTEXT_CHARS)),
                            [repr(g) for g in tatqa_golds(r)], {"scale": r.scale})
                    for r in load_bundled("tatqa") if r.answer_type == "arithmetic"]
    else:
        examples = [_example(task, r) for r in load_bundled(task.dataset)]
    return examples[:limit] if limit else examples


def _example(task: Task, rec) -> Example:
    builders: dict[str, Callable] = {
        "QARecord": lambda r: Example(r.id, task.prompt.format(question=r.question, context=""), r.golden_answers),
        "MathRecord": lambda r: Example(r.id, task.prompt.format(question=r.problem, context=""), [r.answer]),
        "MultiHopRecord": lambda r: Example(
            r.id,
            task.prompt.format(question=r.question,
                               context="\n".join(f'"{p.title}"\n{p.text}' for p in r.paragraphs)),
            r.golden_answers,
        ),
    }  # fmt: skip
    return builders[type(rec).__name__](rec)


def load_retrieval_set(task: Task, limit: int | None = None) -> RetrievalSet:
    """Corpus, queries (first `limit`) and qrels of a retrieval task."""
    if task.kind != "retrieval":
        raise ValueError(f"task {task.name} is not a retrieval task")
    if task.dataset == "synthetic:docs":
        from benchmarks.synthetic.docs import make_docs

        suite = make_docs(200, seed=0)
        queries = {f"q{i}": q for i, (q, _) in enumerate(suite.test)}
        qrels = {f"q{i}": {d: 1} for i, (_, d) in enumerate(suite.test)}
        rs = RetrievalSet(suite.docs, queries, qrels)
    else:
        rs = load_bundled(task.dataset)
    if limit:
        keep = list(rs.queries)[:limit]
        rs = RetrievalSet(rs.corpus, {q: rs.queries[q] for q in keep}, {q: rs.qrels[q] for q in keep})
    return rs


def load_mmeb_items(task: Task, limit: int | None = None):
    """MMEB items of an mmeb task (all meta-tasks, first `limit` per meta-task) and an `image(id)` renderer."""
    if task.kind != "mmeb":
        raise ValueError(f"task {task.name} is not an mmeb task")
    from benchmarks.synthetic.images import make_image_suite

    suite = make_image_suite(200, seed=0, split="test", kinds=("count", "two", "single", "digit"))
    items = [it for group in suite.mmeb.values() for it in group[:limit] if group]
    return items, suite.image

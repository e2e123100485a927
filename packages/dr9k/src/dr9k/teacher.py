"""The teacher agent of the synthesis pipeline and the Search-R1 interaction format it and the policy share.

Format (release): `<think>...</think>` then either `<search>query</search>` (answered by
`<information>Doc 1(Title: t) text ...</information>`, masked from the loss) or `<answer>...</answer>`; an invalid
action gets the fixed `CORRECTION` observation. Prompts: `search_r1` (the release's instruction, our wording, with
its example `<answer> Beijing </answer>`, the text the release's reward wrongly scores) or `short` ("Question: q"),
which the tiny CPU policy reads.

Teachers answer through the real chat client (`shared.rollout.text_loop.chat_agent` -> `ChatClient` -> endpoint):
an OpenAI-compatible endpoint, a local HF model, or `stub_teacher(rows)`, the scripted KB teacher served on
loopback. The scripted teacher follows the question's construction (its `plan`: the description's facts and the
chain's relations) but reads every entity from the documents the search returns: it searches the description,
takes the retrieved entity whose passage states every described fact, then asks one sub-question per hop and reads
the fact from the hop entity's passage. When the passage it needs was not retrieved it answers with its best guess
(the first document's title), so its failures come from retrieval, as a real agent's would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PROMPTS = {
    "short": "Question: {question}\n",
    "search_r1": ("Answer the question below. Think inside <think> and </think> each time you receive new "
                  "information. If you lack knowledge, call the search engine with <search> query </search>; its top "
                  "results come back between <information> and </information>. Search as often as you need. When "
                  "no more knowledge is needed, give the answer inside <answer> and </answer> with no explanation, "
                  "for example <answer> Beijing </answer>. Question: {question}\n"),
}
CORRECTION = ("\nThat action was invalid. To search, put the query between <search> and </search>. To answer, put "
              "the answer between <answer> and </answer>. Try again.\n")
STOPS = ("</search>", "</answer>")
STUB_TEACHER = "dr9k-scripted-teacher"
_DOC = re.compile(r"Doc \d+\(Title: (.*?)\) (.*)")
_QUESTION = re.compile(r"Question: (.*)\n?$")


def prompt_text(style: str, question: str) -> str:
    if style not in PROMPTS:
        raise ValueError(f"unknown prompt style {style!r}; known: {sorted(PROMPTS)}")
    return PROMPTS[style].format(question=question)


def parse_docs(observation: str) -> list[tuple[str, str]]:
    """(title, text) of each `Doc i(Title: t) text` line of an observation; quotes around the title removed."""
    return [(m.group(1).strip().strip('"'), m.group(2)) for m in _DOC.finditer(observation)]


def states(text: str, entity: str, relation: str, obj: str | None = None) -> str | None:
    """The object of `relation` that `text` states about `entity` (or checks `obj`), from the KB's sentence."""
    from benchmarks.synthetic.kb import RELATIONS

    pattern = re.escape(RELATIONS[relation][2]).replace(r"\{s\}", re.escape(entity))
    pattern = pattern.replace(r"\{o_of\}", re.escape(entity)).replace(r"\{o\}", "(.+?)") + "(?: |$)"
    m = re.search(pattern, text)
    if m is None or (obj is not None and m.group(1) != obj):
        return None
    return m.group(1)


def fact(entity: str, relation: str, obj: str) -> str:
    """The KB sentence stating one fact ("Ala Mi works for Xo Corp.")."""
    from benchmarks.synthetic.kb import RELATIONS

    return RELATIONS[relation][2].format(s=entity, o=obj, o_of=entity)


def kb_steps(plan: Mapping[str, Any], observations: Sequence[str]) -> tuple[str, str | None]:
    """The scripted teacher's next turn given the observations so far: (turn text, final answer or None).

    Its thoughts restate the facts it has just read (as a reasoning model quotes its evidence): the first turn
    names the hop it starts with, every later turn the sentence of the retrieved passage it relies on."""
    from benchmarks.synthetic.kb import RELATIONS

    describe, relations = plan.get("describe"), plan["relations"]
    obs = list(observations)
    node: str | None = plan.get("start")
    thought = f"hop 1: {relations[0]}"
    guess = ""
    if describe:
        if not obs:
            return f"<think>identify the {describe['kind']}</think>\n<search>{describe['text']}</search>", None
        docs = parse_docs(obs.pop(0))
        guess = docs[0][0] if docs else ""
        node = next((t for t, body in docs if all(states(body, t, rel, o) for rel, o in describe["facts"])), None)
        if node is None:
            return f"<think>no passage fits</think>\n<answer>{guess}</answer>", guess
        thought = " ".join(fact(node, rel, o) for rel, o in describe["facts"])
    for rel in relations:
        if not obs:
            return f"<think>{thought}</think>\n<search>{RELATIONS[rel][3].format(s=node)}</search>", None
        docs = parse_docs(obs.pop(0))
        guess = docs[0][0] if docs else guess
        found = next((states(body, node, rel) for t, body in docs if t == node and states(body, node, rel)), None)
        if found is None:
            return f"<think>no passage fits</think>\n<answer>{guess}</answer>", guess
        thought = fact(node, rel, found)
        node = found
    return f"<think>{thought}</think>\n<answer>{node}</answer>", node


def stub_teacher(rows: Sequence[Mapping[str, Any]]) -> Callable[..., str]:
    """The scripted KB teacher as a chat reply function over the synthesised `rows` (looked up by question)."""
    plans = {}
    for r in rows:
        if r.get("plan", {}).get("relations") is None:
            raise ValueError(f"row {r['id']!r}: the scripted teacher solves synthetic-KB questions only (no chain "
                             f"plan); use teacher.kind=endpoint or hf for real seeds")
        plans[r["question"]] = r["plan"]

    def reply(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> str:
        user = [m["content"] for m in messages if m["role"] == "user"]
        m = _QUESTION.search(user[0]) if user else None
        if m is None or m.group(1).strip() not in plans:
            return "<think>unknown question</think>\n<answer>unknown</answer>"
        text, _ = kb_steps(plans[m.group(1).strip()], user[1:])
        return text

    return reply


def run_teacher(client: Any, rows: Sequence[Mapping[str, Any]], env_factory: Callable, prompt_style: str,
                max_turns: int, workers: int, sampling: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One teacher episode per row through `text_loop.play` over the chat client; returns episode dicts."""
    from shared.rollout.text_loop import chat_agent, play

    agent = chat_agent(client, lambda rec: prompt_text(prompt_style, rec["question"]), workers=workers,
                       stop=list(STOPS), **sampling)
    episodes = play(agent, env_factory, rows, max_turns=max_turns, correction=CORRECTION)
    return [e.to_dict() for e in episodes]


def transcript_example(tokenizer: Any, prompt: str, turns: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """An SFT example `{input_ids, completion_mask}` from a text transcript, tokenised piece by piece as
    `shared.rollout.AgentLoop` builds rollouts (prompt, then each turn and each observation on its own): loss on
    the teacher's turns only, never on the prompt or the `<information>` observations."""
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    mask = [0] * len(ids)
    for turn in turns:
        t = list(tokenizer(turn["text"], add_special_tokens=False)["input_ids"])
        ids += t
        mask += [1] * len(t)
        if turn.get("observation"):
            o = list(tokenizer(turn["observation"], add_special_tokens=False)["input_ids"])
            ids += o
            mask += [0] * len(o)
    return {"input_ids": ids, "completion_mask": mask}

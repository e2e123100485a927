"""The five roles' prompts, rebuilt from the structured memory at every call (so no call sees another's tokens).

Two styles: `release` gives each role its instructions (our paraphrase of the release's system prompts: the tags
to write, the unknown marker, the 75-word limit, Update vs Add) above the role's inputs; `short` keeps only a header
word and the inputs, for the tiny CPU policy whose 1,024 positions and 0.6M parameters cannot afford the
instructions. Both show the same inputs in the release's layout: the memory as `t1: Q: ... | A: ...` lines, the
search history as `1. Query: ... | Summary: ...`, documents as `Doc1: ...`. `messages` returns [system, user]
chat messages; `render` joins them as plain text, or through the tokenizer's chat template (`prompt.chat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mask.memory import Memory

PROMPT_STYLES = ("release", "short")
NO_DOCS = "(no documents)"


def _system(role: str, unknown: str, max_words: int) -> str:
    tags = {
        "plan": ("You split a question into at most 5 sub-questions and answer each from your own knowledge, writing "
                 f"'{unknown}' for an answer you do not know. Write only <q1>...</q1><a1>...</a1><q2>...</q2><a2>..."
                 "</a2> in order, then the answer to the question in <final_answer>...</final_answer>, with no other "
                 "text."),
        "search": ("You write the next search query. If a sub-question in the memory has no reliable answer "
                   f"('{unknown}' or unclear), or the question needs a fact not in the memory, write one searchable "
                   "query that is not in the search history as <search>query</search>; if nothing is left to "
                   "search, write <end>. Write nothing else."),
        "summary": ("You extract from the documents the evidence that answers the query, as <evidence>...</evidence> "
                    f"in at most {max_words} words, or <evidence>No useful information</evidence> when the documents "
                    "do not answer it. Write nothing else."),
        "update": ("You decide where the new query and evidence go in the memory: <Update>ti</Update> if they replace "
                   "slot ti, or <Add>t(n+1)</Add> if they are new, n being the number of slots. Write exactly one "
                   "of the two and nothing else."),
        "answer": ("You answer the question from the memory's answers, as <final_answer>answer</final_answer> with "
                   "the answer only, no explanation."),
    }
    return tags[role]


def _docs_text(docs: Sequence[str]) -> str:
    if not docs:
        return NO_DOCS
    return "\n".join(f"Doc{i}: {' '.join(str(d).split())}" for i, d in enumerate(docs, start=1))


def messages(role: str, memory: Memory, style: str = "release", unknown: str = "unkown", query: str = "",
             evidence: str = "", docs: Sequence[str] = (), search_history: bool = True,
             max_words: int = 75) -> list[dict[str, str]]:
    """[system, user] messages of one call (`system` is empty in the short style)."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt.style must be one of {PROMPT_STYLES}, got {style!r}")
    q = memory.question
    if role == "plan":
        user = f"Question: {q}"
    elif role == "search":
        user = f"Question: {q}\nMemory:\n{memory.render()}"
        if search_history:
            user += f"\nSearch history:\n{memory.render_history()}"
    elif role == "summary":
        user = f"Query: {query}\nDocuments:\n{_docs_text(docs)}"
    elif role == "update":
        user = f"Question: {q}\n"
        if style == "release":  # the release's update prompt also shows the plan's final answer
            user += f"Final answer: {memory.plan_answer}\n"
        user += f"Memory:\n{memory.render()}\nNew query: {query}\nEvidence: {evidence}"
    elif role == "answer":
        user = f"Question: {q}\nMemory:\n{memory.render()}"
    else:
        raise ValueError(f"unknown role {role!r}")
    if style == "short":
        return [{"role": "system", "content": ""}, {"role": "user", "content": f"[{role}]\n{user}"}]
    return [{"role": "system", "content": _system(role, unknown, max_words)}, {"role": "user", "content": user}]


def render(msgs: Sequence[dict[str, str]], tokenizer: Any = None, chat: bool = False) -> str:
    """The prompt text: the chat template with the generation prompt, or `system`, a blank line, `user` and a
    newline after which the reply starts."""
    if chat:
        if tokenizer is None:
            raise ValueError("prompt.chat needs a tokenizer with a chat template")
        kept = [m for m in msgs if m["content"]]
        return tokenizer.apply_chat_template(kept, add_generation_prompt=True, tokenize=False)
    system, user = msgs[0]["content"], msgs[1]["content"]
    return (f"{system}\n\n" if system else "") + f"{user}\n"

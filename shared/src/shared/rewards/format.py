"""Tag-format helpers for outputs like ``<think>...</think><answer>...</answer>``.

`extract_tag` pulls one tag's content; `parse_tagged` splits a whole output into (tag, content) blocks (void tags
such as ``<end>`` stand alone); `format_ok` checks an output against one fixed tag sequence; `follows` checks the
blocks against a grammar of allowed transitions (think → (search → information → think)* → answer, q1 a1 q2 a2 …)
and says why a sequence is rejected. The accepted formats are spelled out in the docstrings so reward specs can
cite them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal


def _tag_pattern(tag: str) -> re.Pattern[str]:
    if not re.fullmatch(r"[A-Za-z_][\w\-]*", tag or ""):
        raise ValueError(f"invalid tag name {tag!r}: use letters, digits, '_' or '-'")
    return re.compile(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)


def extract_tag(text: str, tag: str, which: Literal["last", "first"] = "last", strip: bool = True) -> str | None:
    """Content of a ``<tag>...</tag>`` block, or None when there is no closed block.

    which="last" (default) takes the last block — the final answer of a multi-step output; which="first"
    takes the first. Blocks are matched non-greedily, so ``<a>x</a><a>y</a>`` has two blocks.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_tag expects a str, got {type(text).__name__}")
    if which not in ("last", "first"):
        raise ValueError(f"which must be 'last' or 'first', got {which!r}")
    matches = _tag_pattern(tag).findall(text)
    if not matches:
        return None
    content = matches[-1] if which == "last" else matches[0]
    return content.strip() if strip else content


def parse_tagged(text: str, tags: Iterable[str], void_tags: Iterable[str] = ()) -> list[tuple[str, str]] | None:
    """Split text into consecutive ``<tag>content</tag>`` blocks of the given tags.

    Returns the list of (tag, content) pairs when the whole text (ignoring whitespace between blocks) is made
    of such blocks and no content contains an opening or closing tag of the set; otherwise None. A void tag
    (``void_tags=("end",)``) is a block of its own written ``<end>`` with no closing tag; its content is "".
    """
    tag_list, void_list = list(tags), list(void_tags)
    for tag in (*tag_list, *void_list):
        _tag_pattern(tag)
    if not tag_list and not void_list:
        raise ValueError("parse_tagged needs at least one tag")
    paired = "|".join(re.escape(t) for t in tag_list) or r"(?!)"
    void = "|".join(re.escape(t) for t in void_list) or r"(?!)"
    block = re.compile(rf"\s*(?:<({paired})>(.*?)</\1>|<({void})>)\s*", re.DOTALL)
    any_tag = re.compile(rf"</?(?:{'|'.join(re.escape(t) for t in (*tag_list, *void_list))})>")
    blocks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = block.match(text, pos)
        if match is None:
            return None if text[pos:].strip() else blocks
        if match.group(3) is not None:
            blocks.append((match.group(3), ""))
        elif any_tag.search(match.group(2)):
            return None
        else:
            blocks.append((match.group(1), match.group(2)))
        pos = match.end()
    return blocks


def _names(value: str | Iterable[str], what: str) -> set[str]:
    if isinstance(value, str):
        return {value}
    names = set(value)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"follows: {what} must hold tag names (str), got {sorted(map(repr, names))}")
    return names


def follows(
    blocks: Sequence[tuple[str, str]] | None,
    transitions: Mapping[str, str | Iterable[str]],
    start: str = "start",
    accept: str | Iterable[str] = ("answer",),
    allow_empty: bool = True,
    void_tags: Iterable[str] = (),
) -> tuple[bool, str]:
    """Check a `parse_tagged` block sequence against a grammar; returns (ok, reason).

    The grammar is an automaton whose states are tag names: the sequence starts in state `start`, block i with tag
    t is allowed when t is in `transitions[state]`, and the state becomes t; the sequence is accepted when it ends
    in a state of `accept` (include `start` there to accept no blocks at all). Example, Search-R1's format:
    ``{"start": {"think"}, "think": {"search", "answer"}, "search": {"information"}, "information": {"think"}}``
    with ``accept={"answer"}``. With allow_empty=False a block whose content is only whitespace is rejected (the
    `void_tags` excepted). Reasons: "ok", "not tagged blocks" (blocks is None), "block i <t> may not follow <s>
    (allowed: ...)", "block i <t> is empty", "no blocks (...)", "ends after <s> (must end after ...)".
    """
    if not isinstance(transitions, Mapping):
        raise TypeError(f"follows: transitions must map a state to the tags allowed next, got {type(transitions).__name__}")
    table = {state: _names(nxt, f"transitions[{state!r}]") for state, nxt in transitions.items()}
    finals = _names(accept, "accept")
    voids = _names(void_tags, "void_tags")
    if blocks is None:
        return False, "not tagged blocks: text outside the blocks, or an unclosed or nested tag"
    state = start
    for i, (tag, content) in enumerate(blocks):
        allowed = table.get(state, set())
        if tag not in allowed:
            where = "the start" if i == 0 else f"<{state}>"
            options = ", ".join(f"<{t}>" for t in sorted(allowed)) or "nothing"
            return False, f"block {i} <{tag}> may not follow {where} (allowed: {options})"
        if not allow_empty and tag not in voids and not content.strip():
            return False, f"block {i} <{tag}> is empty"
        state = tag
    if state not in finals:
        options = ", ".join(f"<{t}>" for t in sorted(finals))
        if not blocks:
            return False, f"no blocks (must end after {options})"
        return False, f"ends after <{state}> (must end after {options})"
    return True, "ok"


def format_ok(
    text: str,
    tags: Sequence[str] = ("think", "answer"),
    allow_empty: bool = False,
) -> bool:
    """True when text is exactly the tagged blocks ``tags`` in that order, each once.

    Accepted: optional whitespace around and between blocks; any content inside a block that does not itself
    contain one of the tags' opening or closing markers. Rejected: text outside the blocks, a missing, repeated
    or out-of-order block, unclosed or nested tags, and (unless allow_empty) a block whose content is only
    whitespace. Callers strip chat end tokens such as ``<|im_end|>`` before calling.
    """
    if not isinstance(text, str):
        raise TypeError(f"format_ok expects a str, got {type(text).__name__}")
    if not tags:
        raise ValueError("format_ok needs at least one tag")
    blocks = parse_tagged(text, dict.fromkeys(tags))
    if blocks is None or [tag for tag, _ in blocks] != list(tags):
        return False
    return allow_empty or all(content.strip() for _, content in blocks)

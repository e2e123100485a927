"""Tag-format helpers for outputs like ``<think>...</think><answer>...</answer>``.

`extract_tag` pulls one tag's content; `parse_tagged` splits a whole output into (tag, content) blocks;
`format_ok` checks an output against an expected tag sequence. The accepted format is spelled out in
`format_ok`'s docstring so reward specs can cite it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


def parse_tagged(text: str, tags: Iterable[str]) -> list[tuple[str, str]] | None:
    """Split text into consecutive ``<tag>content</tag>`` blocks of the given tags.

    Returns the list of (tag, content) pairs when the whole text (ignoring whitespace between blocks) is made
    of such blocks and no content contains an opening or closing tag of the set; otherwise None.
    """
    tag_list = list(tags)
    for tag in tag_list:
        _tag_pattern(tag)
    alternatives = "|".join(re.escape(t) for t in tag_list)
    block = re.compile(rf"\s*<({alternatives})>(.*?)</\1>\s*", re.DOTALL)
    any_tag = re.compile(rf"</?(?:{alternatives})>")
    blocks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = block.match(text, pos)
        if match is None:
            return None if text[pos:].strip() else blocks
        if any_tag.search(match.group(2)):
            return None
        blocks.append((match.group(1), match.group(2)))
        pos = match.end()
    return blocks


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

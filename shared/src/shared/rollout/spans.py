"""Text <-> token mapping of a trajectory's response without re-tokenising generated ids.

Span rewards (a bonus on the tokens of a `<response>` block) and span statistics (the mean entropy of a `<think>`
block) need the token range of a piece of text. Generated ids have no tokenizer offsets, and tokenising the decoded
text again can give other ids than the ones the policy sampled. So the mapping goes the other way: each response
token's character offset is read from incremental decodes of the exact ids (`token_char_offsets`), tags are found
in the decoded text, and character ranges are mapped back to the tokens that cover them.

- `segments(traj, tokenizer)`: runs of policy tokens (loss mask 1) and observation tokens (mask 0).
- `tag_token_spans(traj, tokenizer, tags, content_only=True)`: every complete `<tag>...</tag>` of the response
  as `TagSpan(tag, start, end, text)`, `[start, end)` indexing `response_ids` (and so `loss_mask`,
  `old_logprobs`, `entropies`, `token_rewards`). A token that straddles a boundary (a BPE merge across `>`)
  belongs to the span, so the span covers every token holding any of its characters. Unclosed tags are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from shared.rollout.trajectory import Trajectory


class Segment(NamedTuple):
    kind: str  # "policy" or "observation"
    start: int
    end: int  # exclusive, in response_ids
    text: str


class TagSpan(NamedTuple):
    tag: str
    start: int
    end: int  # exclusive, in response_ids
    text: str  # the decoded text of the tag's content (content_only) or of the whole block


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def token_char_offsets(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[int]]:
    """(text, offsets): text = decode(ids); offsets[i] = len(decode(ids[:i])), offsets[len(ids)] = len(text).

    A prefix that ends inside a multi-byte character decodes to a replacement character that is not a prefix of
    the text; such a token adds no characters (offset unchanged), so the character belongs to the token that
    completes it and to the partial tokens before it (see `char_range_to_tokens`)."""
    text = _decode(tokenizer, ids)
    offsets = [0]
    for i in range(1, len(ids)):
        prefix = _decode(tokenizer, ids[:i])
        offsets.append(max(offsets[-1], len(prefix)) if text.startswith(prefix) else offsets[-1])
    if ids:
        offsets.append(len(text))
    return text, offsets


def char_range_to_tokens(offsets: Sequence[int], start: int, end: int) -> tuple[int, int]:
    """The token range [i, j) of every token holding a character of [start, end) (offsets from
    token_char_offsets). A token that adds no characters counts as holding the character at its offset."""
    n = len(offsets) - 1
    if end <= start:  # an empty range: the position of the first token starting at or after it
        pos = next((k for k in range(n) if offsets[k] >= start), n)
        return pos, pos
    hit = [k for k in range(n) if offsets[k] < end and max(offsets[k + 1], offsets[k] + 1) > start]
    return (hit[0], hit[-1] + 1) if hit else (n, n)


def segments(traj: Trajectory, tokenizer: Any) -> list[Segment]:
    """Maximal runs of equal loss mask, in order, each with its decoded text."""
    out: list[Segment] = []
    mask = traj.loss_mask
    start = 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            kind = "policy" if mask[start] else "observation"
            out.append(Segment(kind, start, i, _decode(tokenizer, traj.response_ids[start:i])))
            start = i
    return out


def tag_token_spans(traj: Trajectory, tokenizer: Any, tags: Sequence[str], content_only: bool = True) -> list[TagSpan]:
    """Token ranges of every complete `<tag>...</tag>` (non-greedy, in text order) of the trajectory's response."""
    if isinstance(tags, str):
        tags = (tags,)
    text, offsets = token_char_offsets(tokenizer, traj.response_ids)
    found: list[tuple[int, TagSpan]] = []
    for tag in tags:
        pattern = re.compile(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)
        for m in pattern.finditer(text):
            lo, hi = (m.start(1), m.end(1)) if content_only else (m.start(), m.end())
            start, end = char_range_to_tokens(offsets, lo, hi)  # an empty block: start == end
            found.append((m.start(), TagSpan(tag, start, end, text[lo:hi])))
    return [span for _, span in sorted(found, key=lambda x: x[0])]

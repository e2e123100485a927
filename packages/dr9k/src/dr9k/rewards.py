"""DeepResearch-R1's rewards: the rule-based outcome reward (release form and ours), the release's unwired
`qa_em_format` scorer, and the format state machine of a Search-R1 transcript.

Outcome reward (`outcome_reward`, release `qa_em.compute_score_em` with the constants of `train_grpo.sh`): 0 when the
scored text holds no `<answer>...</answer>`; else `format_score` (0.2), plus `correct_score` (1.0) when the last
answer matches a gold answer exactly (SQuAD normalisation), plus `retrieval_bonus` (0.1) when a normalised gold
answer occurs inside an `<information>` block. Two release behaviours are options:
- `scope`: the release decodes prompt + response, and the Search-R1 instruction holds `<answer> Beijing </answer>`,
  so every rollout earns the format score and a response without an answer is scored as "Beijing". Default here:
  the response only (`"response"`); `"full_text"` is the release.
- `bonus_when`: the release pays the bonus only in the wrong-answer branch (`"wrong_only"`, default: the working
  code); `"always"` follows the spec's wording.
`correct` may be given from outside (the judge reward: exact match first, then the judge endpoint).

What is scored is a `Response`: the policy's own text (`generated`, its turns), the environment's text
(`observed`: the `<information>` blocks and corrective messages) and the two interleaved (`full`, what the
release decodes). In response scope the answer is read from `generated` only and the bonus from `observed` only:
the corrective message on an invalid action spells `<answer> and </answer>` (release wording too), and a policy
may write an `<information>` block itself; neither may earn a reward. In full-text scope everything is read from
prompt + `full`, as the release does (so an invalid last action is scored as the answer "and").

`qa_em_format_reward` is the release's `qa_em_format.compute_score_em` (never called by its trainer): answer taken
only when prompt + response hold at least two `<answer>` blocks (one in response scope), the state machine decides
validity, and a wrong answer earns `final_format_score` even with an invalid format.

Format machine: think -> (search -> information -> think)* -> answer over `shared.rewards.format.parse_tagged`
blocks, with `follows` giving the reason of a rejection. Text outside the blocks or an unclosed tag is invalid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.rewards.format import follows, parse_tagged
from shared.rewards.qa import exact_match, normalize_answer

FORMAT_TAGS = ("think", "search", "information", "answer")
FORMAT_TRANSITIONS = {"start": {"think"}, "think": {"search", "answer"}, "search": {"information"},
                      "information": {"think"}}
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_INFORMATION = re.compile(r"<information>(.*?)</information>", re.DOTALL)


def check_format(response: str) -> tuple[bool, str]:
    """(valid, reason) of a response under think -> (search -> information -> think)* -> answer."""
    if not isinstance(response, str):
        return False, f"not text ({type(response).__name__})"
    return follows(parse_tagged(response, FORMAT_TAGS), FORMAT_TRANSITIONS, accept={"answer"})


def answers(text: str) -> list[str]:
    """Contents of every `<answer>...</answer>` block, in order, stripped."""
    return [m.strip() for m in _ANSWER.findall(text)]


def last_answer(text: str) -> str | None:
    found = answers(text)
    return found[-1] if found else None


def gold_in_observation(text: str, golds: Sequence[str]) -> bool:
    """True when a normalised gold answer is a substring of a normalised `<information>` block (release rule)."""
    targets = [g for g in (normalize_answer(str(g)) for g in golds) if g]
    return any(t in normalize_answer(block) for block in _INFORMATION.findall(text) for t in targets)


@dataclass(frozen=True)
class Response:
    """A rollout's response split by author (module docstring)."""

    generated: str
    observed: str = ""
    full: str | None = None  # default: generated + observed

    @property
    def text(self) -> str:
        return self.full if self.full is not None else self.generated + self.observed

    @classmethod
    def of(cls, text: str) -> Response:
        """A plain transcript: its `<information>` blocks are the observations, the rest is the policy's."""
        observed = "".join(m.group(0) for m in _INFORMATION.finditer(text))
        return cls(_INFORMATION.sub("", text), observed, text)

    @classmethod
    def of_turns(cls, turns: Sequence[Mapping[str, Any]]) -> Response:
        """From text-loop turns `{text, observation}`."""
        return cls("".join(t["text"] for t in turns), "".join(t.get("observation") or "" for t in turns),
                   "".join(t["text"] + (t.get("observation") or "") for t in turns))

    @classmethod
    def of_trajectory(cls, traj: Any, tokenizer: Any) -> Response:
        """From a token trajectory: policy runs (loss mask 1) and observation runs (mask 0), decoded exactly."""
        segs = traj.segments(tokenizer)
        return cls("".join(x.text for x in segs if x.kind == "policy"),
                   "".join(x.text for x in segs if x.kind != "policy"), "".join(x.text for x in segs))


def _views(response: Response | str, prompt: str, scope: str) -> tuple[str, str, str]:
    """(answer text, observation text, format text) under the scope."""
    r = Response.of(response) if isinstance(response, str) else response
    if scope == "response":
        return r.generated, r.observed, r.text
    if scope == "full_text":
        return prompt + r.text, prompt + r.text, r.text
    raise ValueError(f"reward scope must be 'response' or 'full_text', got {scope!r}")


def outcome_reward(response: Response | str, golds: Sequence[str], prompt: str = "", settings: Any = None,
                   correct: bool | None = None) -> float:
    """The rule-based outcome reward (module docstring); `settings` is a `RewardSettings` (defaults: release
    constants, response scope, bonus on wrong answers only). `correct` overrides exact match (judge reward)."""
    from dr9k.config import RewardSettings

    s = settings or RewardSettings()
    if not isinstance(response, str | Response):
        return 0.0
    answer_text, observed, _ = _views(response, prompt, s.scope)
    if "<answer>" not in answer_text or "</answer>" not in answer_text:
        return 0.0
    answer = last_answer(answer_text)
    if correct is None:
        correct = bool(answer) and exact_match(answer, list(golds)) == 1.0
    reward = s.format_score
    if correct:
        reward += s.correct_score
    if (not correct or s.bonus_when == "always") and gold_in_observation(observed, golds):
        reward += s.retrieval_bonus
    return reward


def qa_em_format_reward(response: Response | str, golds: Sequence[str], prompt: str = "", settings: Any = None,
                        correct: bool | None = None) -> float:
    """The release's `qa_em_format` scorer (module docstring). `correct` overrides exact match (the judge)."""
    from dr9k.config import RewardSettings

    s = settings or RewardSettings()
    if not isinstance(response, str | Response):
        return 0.0
    answer_text, observed, format_text = _views(response, prompt, s.scope)
    valid, _ = check_format(format_text)
    found = answers(answer_text)
    needed = 2 if s.scope == "full_text" else 1  # the release needs two matches in prompt + response
    if len(found) < needed:
        if valid:
            return s.structure_format_score + (s.retrieval_bonus if gold_in_observation(observed, golds) else 0.0)
        return 0.0
    answer = found[-1]
    if correct is None:
        correct = bool(answer) and exact_match(answer, list(golds)) == 1.0
    if correct:
        return s.correct_score if valid else s.correct_score - s.structure_format_score
    return s.final_format_score


def reward(response: Response | str, golds: Sequence[str], prompt: str = "", settings: Any = None,
           correct: bool | None = None) -> float:
    """The configured reward variant (`settings.variant`)."""
    from dr9k.config import RewardSettings

    s = settings or RewardSettings()
    fn = qa_em_format_reward if s.variant == "qa_em_format" else outcome_reward
    return fn(response, golds, prompt, s, correct)

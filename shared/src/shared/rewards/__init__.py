"""Reward functions shared by every method: QA match scores, math answer checks, tag-format checks, LLM judge.

Everything here is pure Python (no torch) so rewards can be computed inside rollout workers cheaply.
"""

from shared.rewards.format import extract_tag, format_ok, parse_tagged
from shared.rewards.judge import JudgeClient, JudgeError, JudgeVerdict, judged_correct, parse_score, parse_verdict
from shared.rewards.math import extract_boxed, extract_gsm8k_answer, math_equal, math_reward
from shared.rewards.numeric import choice_match, numeric_match
from shared.rewards.qa import exact_match, f1_score, normalize_answer, sub_exact_match

__all__ = [
    "normalize_answer",
    "exact_match",
    "sub_exact_match",
    "f1_score",
    "extract_boxed",
    "extract_gsm8k_answer",
    "math_equal",
    "math_reward",
    "extract_tag",
    "parse_tagged",
    "format_ok",
    "JudgeClient",
    "JudgeError",
    "JudgeVerdict",
    "parse_verdict",
    "parse_score",
    "judged_correct",
    "numeric_match",
    "choice_match",
]

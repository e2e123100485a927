"""The structured memory the knowledge-management roles maintain: numbered slots, the search history, the reset.

A slot `ti` holds a (question, answer) pair. After planning the memory is reset to {t1: (question, plan's final
answer)} (the spec; `after_plan="keep_plan"` keeps the plan's sub-question slots t1..tN instead, as the release's
planning parse returns them). The update role rewrites a slot (`update ti`: the slot becomes (query, evidence)) or
appends t(n+1); the parser has already turned every illegal reply into that append. The search history lists the
(query, summary) pairs of earlier iterations, which the release's search prompt shows beside the memory.
Rendering follows the release's lines: `t1: Q: ... | A: ...` and `1. Query: ... | Summary: ...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

AFTER_PLAN = ("reset", "keep_plan")
NO_HISTORY = "(No previous searches)"


@dataclass
class Slot:
    question: str
    answer: str


@dataclass
class Memory:
    question: str
    slots: dict[str, Slot] = field(default_factory=dict)  # insertion order t1, t2, ...
    history: list[tuple[str, str]] = field(default_factory=list)  # (query, summary) per finished search
    plan_answer: str = ""

    def keys(self) -> list[str]:
        return list(self.slots)

    def after_plan(self, final_answer: str, plan_slots: Sequence[tuple[str, str]] = (), mode: str = "reset") -> None:
        """Start the memory from the plan: {t1: (question, final answer)} (reset), or the plan's own slots."""
        if mode not in AFTER_PLAN:
            raise ValueError(f"memory.after_plan must be one of {AFTER_PLAN}, got {mode!r}")
        self.plan_answer = final_answer
        if mode == "keep_plan" and plan_slots:
            self.slots = {f"t{i}": Slot(q, a) for i, (q, a) in enumerate(plan_slots, start=1)}
        else:
            self.slots = {"t1": Slot(self.question, final_answer)}

    def apply(self, action: str, target: str, query: str, evidence: str) -> None:
        """`update` rewrites an existing slot; `add` writes slot `target` (the parser guarantees t(n+1))."""
        if action == "update":
            if target not in self.slots:
                raise KeyError(f"update of unknown memory slot {target!r}; slots: {self.keys()}")
            self.slots[target] = Slot(query, evidence)
        elif action == "add":
            self.slots[target] = Slot(query, evidence)
        else:
            raise ValueError(f"memory action must be 'update' or 'add', got {action!r}")

    def render(self) -> str:
        return "\n".join(f"{k}: Q: {s.question} | A: {s.answer}" for k, s in self.slots.items())

    def render_history(self) -> str:
        if not self.history:
            return NO_HISTORY
        return "\n".join(f"{i}. Query: {q} | Summary: {s}" for i, (q, s) in enumerate(self.history, start=1))

    def snapshot(self) -> dict:
        """A JSON-able copy (for logs and the oracle)."""
        return {"slots": {k: [s.question, s.answer] for k, s in self.slots.items()},
                "history": [list(h) for h in self.history], "plan_answer": self.plan_answer}

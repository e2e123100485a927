"""Result and error types shared by the local sandbox and the remote (SandboxFusion-style) adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SandboxResult:
    """Outcome of one sandboxed run. status: "ok" | "timeout" | "memory" | "error".

    mechanisms: what isolated this run, name -> "on..." or "off: reason" (empty for remote backends).
    """

    status: Literal["ok", "timeout", "memory", "error"]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    error: str | None = None
    truncated: bool = False
    network_namespace: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    mechanisms: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SandboxError(RuntimeError):
    """A sandboxed call did not return a value; `.result` holds the full SandboxResult."""

    def __init__(self, message: str, result: SandboxResult):
        super().__init__(message)
        self.result = result


class SandboxUnavailable(RuntimeError):
    """The sandbox refused to run: a required isolation mechanism is missing here (the message names it).

    Deliberately not a SandboxError: callers that turn failed tool calls into observations must not swallow a
    machine that cannot isolate code at all.
    """

    def __init__(self, message: str, result: SandboxResult):
        super().__init__(message)
        self.result = result

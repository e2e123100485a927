"""What every piece of the GPU check shares: the run context, result rows, skips, and the test hooks.

A piece is a function `piece(ctx) -> list[Row]` (one row per thing it measured). It raises `Skip` (or lets a
`ModuleNotFoundError` escape) when something it needs is not installed, and any other exception is a failure; the
worker (`tools/gpu/pieces.py`) turns both into rows. `ctx.smoke` is the CPU smoke mode: the same code on the CPU,
with the GPU-only engines replaced by the stand-ins each piece names.

Test hooks (environment variables, read by the worker): `GPU_CHECK_HIDE=faiss,vllm` makes those modules
unimportable (a missing package, simulated); `GPU_CHECK_FAIL=piece` makes that piece fail on purpose.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
H200_BANDWIDTH_TBS = 4.8  # HBM3e datasheet figure; tools/gpu/README.md notes the ~4.3 TB/s copy measured on one


class Skip(Exception):
    """The piece cannot run here (a package or the hardware is missing); the message says what and why."""


@dataclass
class Row:
    piece: str
    check: str
    status: str  # PASS | FAIL | SKIP
    seconds: float = 0.0
    figures: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    device: str  # "cuda" or "cpu"
    smoke: bool
    work: Path
    bandwidth_tbs: float = H200_BANDWIDTH_TBS
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def tiny(self, kind: str = "qwen2") -> Path:
        """A tiny random model of the workspace's fixtures, saved under the work folder (built once)."""
        from shared.modeling.tiny import cached_tiny

        return cached_tiny(kind, self.work / "tiny")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


class _Hide(importlib.abc.MetaPathFinder):
    """Refuse to import the named top-level modules (simulates a package that is not installed)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib's signature
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by GPU_CHECK_HIDE)", name=fullname)
        return None


def install_test_hooks() -> None:
    names = {n.strip() for n in os.environ.get("GPU_CHECK_HIDE", "").split(",") if n.strip()}
    if names:
        for name in list(sys.modules):
            if name.split(".")[0] in names:
                del sys.modules[name]
        sys.meta_path.insert(0, _Hide(names))


def injected_failure(piece: str) -> None:
    if piece in {n.strip() for n in os.environ.get("GPU_CHECK_FAIL", "").split(",")}:
        raise AssertionError("failure injected by GPU_CHECK_FAIL (a test of the check itself)")


def needs(module: str, why: str) -> Any:
    """Import `module` or raise Skip naming it and what it is for."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise Skip(f"{module} is not installed ({why}); tools/gpu/README.md says how to bring it") from err


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it); a hidden module (GPU_CHECK_HIDE) is not."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def params_changed(before: dict[str, Any], model: Any) -> int:
    """How many parameter tensors differ from `before` (a {name: cpu tensor} snapshot)."""
    import torch

    changed = 0
    for name, value in model.state_dict().items():
        value = value.full_tensor() if hasattr(value, "full_tensor") else value
        if name in before and not torch.equal(before[name], value.detach().float().cpu()):
            changed += 1
    return changed


def snapshot(model: Any) -> dict[str, Any]:
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().float().cpu().clone()
            for k, v in model.state_dict().items()}

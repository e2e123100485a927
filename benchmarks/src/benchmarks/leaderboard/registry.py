"""The ten method packages the leaderboard knows, and how to tell whether each is built and what version it is.

A package counts as built when its `<import_name>.replicate` module exists (the package contract's replicate
entry point); the leaderboard then runs `python -m <import_name>.cli replicate`. The cache fingerprint hashes the
package version and its source and config files, so any code or config change reruns the package.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackageSpec:
    name: str  # distribution / console-script name
    import_name: str
    suite: str  # table the package's rows go in
    claim: str  # the paper's central claim the quick replication measures


PACKAGES: list[PackageSpec] = [
    PackageSpec("dome", "dome", "Generative retrieval", "DOME edits add new docs as well as incremental training, faster"),
    PackageSpec("cocoa", "cocoa", "Multimodal embeddings (MMEB)", "reconstruction stage raises P@1 at equal contrastive steps"),
    PackageSpec("dr9k", "dr9k", "Search agents (multi-hop QA)", "levels get harder L1->L3; RL raises reward over SFT"),
    PackageSpec("sage", "sage", "Math reasoning", "SAGE pair selection converges faster than uniform DPO"),
    PackageSpec("agentic-r", "agentic_r", "Search agents (multi-hop QA)", "utility-trained retriever beats the base encoder"),
    PackageSpec("matchtir", "matchtir", "Tool use", "dual-level advantages reach higher solve F1 than trajectory-only"),
    PackageSpec("arr", "arr", "Search agents (multi-hop QA)", "adversarial reasoner/verifier training improves both roles"),
    PackageSpec("rose", "rose", "Math reasoning", "ROSE keeps accuracy with shorter answers and more diversity than GRPO"),
    PackageSpec("mask", "mask", "Search agents (multi-hop QA)", "per-call context stays bounded vs a monolithic agent's; lower reward-curve sd across seeds (full run)"),
    PackageSpec("huijin", "huijin", "Finance", "each training stage moves its target metric"),
]  # fmt: skip


def find(names: list[str] | None, packages: list[PackageSpec] | None = None) -> list[PackageSpec]:
    """Select packages by name (or import name); ValueError lists the known names on a typo."""
    packages = PACKAGES if packages is None else packages
    if not names:
        return list(packages)
    by_name = {p.name: p for p in packages} | {p.import_name: p for p in packages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown package(s) {unknown}; known: {[p.name for p in packages]}")
    return [by_name[n] for n in names]


def is_built(spec: PackageSpec) -> bool:
    """True when `<import_name>.replicate` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(f"{spec.import_name}.replicate") is not None
    except (ImportError, ValueError):
        return False


def package_version(spec: PackageSpec) -> str:
    try:
        return importlib.metadata.version(spec.name)
    except importlib.metadata.PackageNotFoundError:
        module_spec = importlib.util.find_spec(spec.import_name)
        init = Path(module_spec.origin) if module_spec and module_spec.origin else None
        if init and init.is_file():
            for line in init.read_text(encoding="utf-8").splitlines():
                if line.startswith("__version__"):
                    return line.split("=", 1)[1].strip().strip("\"'")
        return "0+unknown"


def source_fingerprint(spec: PackageSpec) -> str:
    """sha256 over the package's .py/.yaml/.json files (its src dir and a sibling configs/ dir when present)."""
    module_spec = importlib.util.find_spec(spec.import_name)
    if module_spec is None or not module_spec.submodule_search_locations:
        return "missing"
    src = Path(next(iter(module_spec.submodule_search_locations)))
    roots = [src] + [p for p in (src.parent.parent / "configs",) if p.is_dir()]
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".yaml", ".yml", ".json"} and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()

"""Resumable stages: build each step of a pipeline once, reuse it by a stamp, resume after a kill.

A `Stage(name, build, settings, parents)` is identified by its **key**: the SHA-256 of its name, its settings and
the keys of its parent stages. A changed setting therefore changes the key of that stage and of every stage after
it, and nothing before it, and two chains that share a prefix (an ablation that drops a later stage) share the
prefix's keys and so its folders.

Two output layouts:
- **folder stages** (default): the stage owns `root/<name>/<key[:12]>/`, built by `build(ctx)` into a temporary
  folder and renamed into place with its stamp (`shared.atomic.cached_dir`), so a killed build leaves no
  half-folder and a finished one is reused by every chain that reaches the same key.
- **file stages** (`folder=`, `outputs=`): the stage writes named files into a shared run folder (one layout, one
  version: a run folder claimed for one config); the stamp goes to `<folder>/.stages/<name>.json` after every
  output exists. A stamp with another key is refused (`on_change="refuse"`, FileExistsError naming stage and
  folder) or rebuilt (`"rebuild"`); outputs without a stamp are an unfinished build and are rebuilt.

A build sees a `StageContext`: `out` (where to write), `inputs` (parent results by name), `stats` (`DropStats`:
kept records and drop reasons, written as `stats.json`) and `work`, a scratch folder that survives a kill and is
removed after success, for resuming *inside* a long stage with `JsonlProgress` (finished records are appended and
flushed one by one; a rerun skips them; a torn last line from a kill is dropped).

Per-record provenance for JSONL stages: `derive(parents, stage, op, params, **fields)` makes a row carrying
`{id, parent_ids, stage, op, params}`, `check_parents` verifies every parent id exists upstream, `lineage` walks a
row back to its seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.atomic import cached_dir, write_json
from shared.cache import canonical_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STAMP = "stage.json"


@dataclass(frozen=True)
class Stage:
    """One step: `build(ctx)` writes the stage's output and may return extra stamp fields (losses, counts).
    `parents=None` means the previous stage of the chain; `()` means none."""

    name: str
    build: Callable[[StageContext], Mapping[str, Any] | None]
    settings: Mapping[str, Any] = field(default_factory=dict)
    parents: Sequence[str] | None = None
    outputs: Sequence[str] = ()
    folder: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"stage name {self.name!r} must be letters, digits, '_', '.', '-' (a folder name)")
        if bool(self.outputs) != (self.folder is not None):
            raise ValueError(f"stage {self.name!r}: file stages need both folder= and outputs=, folder stages neither")
        try:
            canonical_json(dict(self.settings))
        except TypeError as err:
            raise ValueError(f"stage {self.name!r}: settings must be JSON values ({err})") from None


@dataclass
class StageResult:
    name: str
    key: str
    path: Path  # the stage's folder (folder stages) or the shared folder holding its outputs (file stages)
    built: bool  # False when an earlier run's output was reused
    stamp: dict[str, Any]

    def output(self, filename: str) -> Path:
        return self.path / filename


class DropStats:
    """Counts of kept records, of drops by reason and of anything else, for a stage's `stats.json`."""

    def __init__(self) -> None:
        self.kept = 0
        self.dropped: Counter = Counter()
        self.counts: Counter = Counter()

    def keep(self, n: int = 1) -> None:
        self.kept += n

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def __bool__(self) -> bool:
        return bool(self.kept or self.dropped or self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "dropped_total": sum(self.dropped.values()), **dict(sorted(self.counts.items()))}


@dataclass
class StageContext:
    name: str
    key: str
    out: Path
    work: Path
    inputs: dict[str, StageResult]
    settings: Mapping[str, Any]
    stats: DropStats = field(default_factory=DropStats)

    def input(self, name: str, filename: str | None = None) -> Path:
        """A parent's folder (or one of its files)."""
        if name not in self.inputs:
            raise KeyError(f"stage {self.name!r} has no parent {name!r}; parents: {sorted(self.inputs)}")
        result = self.inputs[name]
        return result.path if filename is None else result.output(filename)

    def progress(self, filename: str, key: str = "id") -> JsonlProgress:
        """A JsonlProgress in the stage's work folder: records finished before a kill are not redone."""
        return JsonlProgress(self.work / filename, key)


def stage_key(name: str, settings: Mapping[str, Any], parent_keys: Mapping[str, str]) -> str:
    """SHA-256 of (name, settings, parent keys): equal for equal chains, different for any change upstream."""
    text = canonical_json({"stage": name, "settings": dict(settings), "parents": dict(sorted(parent_keys.items()))})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_dead_tmp(folder: Path) -> None:
    """Remove temporary folders/files left by builds whose process died (a SIGKILL runs no cleanup)."""
    if not folder.is_dir():
        return
    for leftover in folder.glob(".*.tmp"):
        m = re.search(r"\.(\d+)\.tmp$", leftover.name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


class StageRunner:
    """Runs stages under `root` (see the module docstring); `run_chain` resolves parents within a list."""

    def __init__(self, root: str | os.PathLike, on_change: Literal["refuse", "rebuild"] = "refuse",
                 log: Callable[[str], None] | None = None) -> None:
        if on_change not in ("refuse", "rebuild"):
            raise ValueError(f"on_change must be 'refuse' or 'rebuild', got {on_change!r}")
        self.root, self.on_change, self.log = Path(root), on_change, log
        self.built: list[str] = []  # names of the stages this runner actually built (not reused)

    def _parents(self, stage: Stage, inputs: Mapping[str, StageResult]) -> dict[str, StageResult]:
        names = list(stage.parents or ())
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"stage {stage.name!r} needs parent(s) {missing} to be run first")
        return {n: inputs[n] for n in names}

    def folder_of(self, stage: Stage, key: str) -> Path:
        return self.root / stage.folder if stage.folder is not None else self.root / stage.name / key[:12]

    def _stamp_path(self, stage: Stage) -> Path:
        return self.root / stage.folder / ".stages" / f"{stage.name}.json"  # type: ignore[operator]

    def stamp_of(self, stage: Stage, key: str) -> dict[str, Any] | None:
        """The stage's stamp when it finished with this key, else None."""
        if stage.folder is None:
            path = self.folder_of(stage, key) / STAMP
        else:
            path = self._stamp_path(stage)
            if not all((self.root / stage.folder / o).exists() for o in stage.outputs):
                return None
        if not path.is_file():
            return None
        stamp = json.loads(path.read_text(encoding="utf-8"))
        return stamp if stamp.get("settings", {}).get("key") == key else None

    def run(self, stage: Stage, inputs: Mapping[str, StageResult] | None = None) -> StageResult:
        """Reuse the stage's finished output for this key, or build it. `inputs`: results of its parents."""
        parents = self._parents(stage, inputs or {})
        key = stage_key(stage.name, stage.settings, {n: r.key for n, r in parents.items()})
        stamp_settings = {"stage": stage.name, "key": key, "settings": dict(stage.settings),
                          "parents": {n: r.key for n, r in parents.items()}}
        work = self.root / ".work" / f"{stage.name}-{key[:12]}"
        if stage.folder is None:
            return self._run_folder(stage, key, stamp_settings, parents, work)
        return self._run_files(stage, key, stamp_settings, parents, work)

    def _build(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        if self.log:
            self.log(f"stage {stage.name}: building ({ctx.key[:12]})")
        ctx.work.mkdir(parents=True, exist_ok=True)
        start = time.time()
        returned = stage.build(ctx)
        if returned is not None and not isinstance(returned, Mapping):
            raise TypeError(f"stage {stage.name!r}: build returned a {type(returned).__name__}; return a mapping of "
                            f"stamp fields or None")
        extra = dict(returned or {})
        extra["seconds"] = round(time.time() - start, 3)
        if ctx.stats:
            extra["stats"] = ctx.stats.to_dict()
        self.built.append(stage.name)
        return extra

    def _run_folder(self, stage: Stage, key: str, stamp_settings: dict, parents: dict, work: Path) -> StageResult:
        target = self.folder_of(stage, key)
        _clean_dead_tmp(target.parent)

        def build(tmp: Path) -> dict[str, Any]:
            ctx = StageContext(stage.name, key, tmp, work, parents, stage.settings)
            extra = self._build(stage, ctx)
            if ctx.stats:
                write_json(tmp / "stats.json", ctx.stats.to_dict())
            return extra

        path, hit = cached_dir(target, stamp_settings, build, stamp=STAMP)
        if not hit:
            shutil.rmtree(work, ignore_errors=True)
        elif self.log:
            self.log(f"stage {stage.name}: reused {path}")
        stamp = json.loads((path / STAMP).read_text(encoding="utf-8"))
        return StageResult(stage.name, key, path, not hit, stamp)

    def _run_files(self, stage: Stage, key: str, stamp_settings: dict, parents: dict, work: Path) -> StageResult:
        folder = self.root / stage.folder  # type: ignore[operator]
        stamp_path = self._stamp_path(stage)
        stamp = self.stamp_of(stage, key)
        if stamp is not None:
            if self.log:
                self.log(f"stage {stage.name}: reused {folder}")
            return StageResult(stage.name, key, folder, False, stamp)
        if stamp_path.is_file() and self.on_change == "refuse":
            old = json.loads(stamp_path.read_text(encoding="utf-8")).get("settings", {})
            if old.get("key") != key and all((folder / o).exists() for o in stage.outputs):
                raise FileExistsError(f"stage {stage.name!r}: {folder} holds its outputs from other settings or "
                                      f"parents ({stamp_path}); use another folder or remove them")
        stamp_path.unlink(missing_ok=True)  # outputs without a valid stamp are rebuilt
        folder.mkdir(parents=True, exist_ok=True)
        _clean_dead_tmp(folder)
        ctx = StageContext(stage.name, key, folder, work, parents, stage.settings)
        extra = self._build(stage, ctx)
        absent = [o for o in stage.outputs if not (folder / o).exists()]
        if absent:
            raise RuntimeError(f"stage {stage.name!r} finished without writing {absent} in {folder}")
        if ctx.stats:
            merge_stats(folder / "stats.json", stage.name, ctx.stats.to_dict())
        stamp = {"settings": stamp_settings, **extra}
        write_json(stamp_path, stamp, indent=1)
        shutil.rmtree(work, ignore_errors=True)
        return StageResult(stage.name, key, folder, True, stamp)

    def run_chain(self, stages: Sequence[Stage], inputs: Mapping[str, StageResult] | None = None,
                  ) -> dict[str, StageResult]:
        """Run `stages` in order; a stage with `parents=None` depends on the one before it."""
        results: dict[str, StageResult] = dict(inputs or {})
        for stage in resolve_parents(stages):
            results[stage.name] = self.run(stage, results)
        return results

    def status(self, stages: Sequence[Stage]) -> list[dict[str, Any]]:
        """Per stage of a chain: name, key, "done" or "todo", and its folder; nothing is built."""
        keys: dict[str, str] = {}
        out = []
        for stage in resolve_parents(stages):
            key = stage_key(stage.name, stage.settings, {n: keys[n] for n in stage.parents or ()})
            keys[stage.name] = key
            done = self.stamp_of(stage, key) is not None
            out.append({"stage": stage.name, "key": key[:12], "state": "done" if done else "todo",
                        "path": str(self.folder_of(stage, key))})
        return out


def resolve_parents(stages: Sequence[Stage]) -> list[Stage]:
    """The chain with `parents=None` replaced by the previous stage; names must be unique and parents earlier."""
    out: list[Stage] = []
    seen: set[str] = set()
    for i, stage in enumerate(stages):
        if stage.name in seen:
            raise ValueError(f"stage name {stage.name!r} appears twice in the chain")
        parents = ((stages[i - 1].name,) if i else ()) if stage.parents is None else tuple(stage.parents)
        unknown = [p for p in parents if p not in seen]
        if unknown:
            raise ValueError(f"stage {stage.name!r}: parent(s) {unknown} must come earlier in the chain")
        seen.add(stage.name)
        out.append(Stage(stage.name, stage.build, stage.settings, parents, stage.outputs, stage.folder))
    return out


def merge_stats(path: Path, section: str, stats: Mapping[str, Any]) -> None:
    """Set `section` of the JSON object in `path` (created when absent), atomically."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[section] = dict(stats)
    write_json(path, data)


# ---- resuming inside a stage -----------------------------------------------------------------------------------
class JsonlProgress:
    """Finished records of a long stage, appended one JSON line at a time and flushed (a SIGKILL loses at most
    the record being written; the torn line is dropped when the file is reopened). `done(id)` says whether a
    record was finished in an earlier run."""

    def __init__(self, path: str | os.PathLike, key: str = "id") -> None:
        self.path, self.key = Path(path), key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[Any, dict[str, Any]] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            good = data[: data.rfind(b"\n") + 1]  # a line without its newline was cut by a kill
            if len(good) != len(data):
                with self.path.open("r+b") as handle:
                    handle.truncate(len(good))
            for line_no, line in enumerate(good.decode("utf-8").splitlines(), start=1):
                row = json.loads(line)
                if key not in row:
                    raise ValueError(f"{self.path}:{line_no}: progress row has no {key!r} field")
                self.rows[row[key]] = row
        self._handle = self.path.open("a", encoding="utf-8")

    def done(self, record_id: Any) -> bool:
        return record_id in self.rows

    def add(self, row: Mapping[str, Any]) -> None:
        if self.key not in row:
            raise ValueError(f"{self.path}: progress row has no {self.key!r} field")
        self._handle.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
        self._handle.flush()
        self.rows[row[self.key]] = dict(row)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- per-record provenance -------------------------------------------------------------------------------------
def derive(parents: Mapping[str, Any] | Sequence[Mapping[str, Any]], stage: str, op: str,
           params: Mapping[str, Any] | None = None, id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A new row made from `parents` by operation `op` in `stage`: `fields` plus {id, parent_ids, stage, op,
    params}. The default id is a hash of (parent ids, stage, op, params), so a rerun derives the same ids."""
    parent_rows = [parents] if isinstance(parents, Mapping) else list(parents)
    parent_ids = [str(p["id"]) for p in parent_rows]
    params = dict(params or {})
    if id is None:
        digest = hashlib.sha256(canonical_json([parent_ids, stage, op, params]).encode("utf-8")).hexdigest()
        id = f"{stage}:{digest[:12]}"
    return {**fields, "id": id, "parent_ids": parent_ids, "stage": stage, "op": op, "params": params}


def check_parents(rows: Iterable[Mapping[str, Any]], parent_ids: Iterable[Any], source: str) -> None:
    """Every row's parent_ids must exist upstream; raises ValueError naming source, row number and the id."""
    known = {str(i) for i in parent_ids}
    for i, row in enumerate(rows, start=1):
        if "parent_ids" not in row:
            raise ValueError(f"{source}: row {i} (id {row.get('id')!r}) has no 'parent_ids' field")
        for pid in row["parent_ids"]:
            if str(pid) not in known:
                raise ValueError(f"{source}: row {i} (id {row.get('id')!r}) names parent {pid!r}, which no "
                                 f"upstream row has")


def lineage(row_id: str, rows_by_id: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Ids from `row_id` back to its seeds, breadth first (a row whose id is not in `rows_by_id` is a seed)."""
    out, queue, seen = [], [row_id], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        out.append(current)
        queue.extend(str(p) for p in rows_by_id.get(current, {}).get("parent_ids", []))
    return out

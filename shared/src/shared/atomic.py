"""Atomic writes of files and folders, and a build-once folder cache, for every long job in the workspace.

Each writer builds its output under a temporary name in the same folder and renames it into place (`os.replace`),
so a killed process never leaves half a file or half a model, and a reader sees either the old version or the new
one. `cached_dir` is the pattern behind warm-start policies and other expensive artefacts: a folder holds a
stamp file with the settings that produced it; a folder with the same settings is reused, one with other settings
is refused (never silently reused), and a folder without a stamp is an unfinished leftover and is rebuilt;
concurrent builders of one folder take turns on a lock file, so it is built once.
`sweep_stale` removes the temporary names a killed writer left behind (commands call it on their output folder at
start, `cached_dir` on its cache folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


def _tmp_name(path: Path) -> Path:
    # pid in the name: two processes writing the same target never share a temporary file
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_LEFTOVER = re.compile(r"^\..+\.(\d+)\.(tmp|old)$")  # the names _tmp_name and replace_dir give


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds that pid
        return True
    return True


def sweep_stale(root: str | Path, depth: int = 3) -> list[Path]:
    """Remove the temporary files and folders (`.NAME.PID.tmp`, `.NAME.PID.old`) that writers of this module left
    under `root` (down to `depth` folder levels) when their process was killed. Only leftovers whose process no
    longer runs are removed, so a concurrent writer is never disturbed. Returns the removed paths."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    level = [root]
    for _ in range(depth + 1):
        below = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                match = _LEFTOVER.match(entry.name)
                if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
                    path = Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
                    removed.append(path)
                elif entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
        level = below
    return removed


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` (utf-8) through a temporary file and a rename; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write `obj` as JSON to `path` atomically. A value JSON cannot hold raises a TypeError naming the path
    before anything is written."""
    try:
        text = json.dumps(obj, indent=indent)
    except TypeError as err:
        raise TypeError(f"{path}: not JSON-serialisable ({err})") from err
    return write_text(path, text + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line (utf-8, non-ASCII kept) atomically; rows are streamed, not held in memory.
    A row JSON cannot hold raises a TypeError naming the path and the row, and the target is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for i, row in enumerate(rows, start=1):
                try:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                except TypeError as err:
                    raise TypeError(f"{path}: row {i} is not JSON-serialisable ({err})") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def replace_dir(tmp: str | Path, target: str | Path) -> Path:
    """Move the finished folder `tmp` to `target`, replacing an existing `target`.

    A non-empty folder cannot be renamed over another, so the old one is first renamed aside and removed after
    the swap: at every moment `target` is either the complete old folder, absent for one rename, or the new one."""
    tmp, target = Path(tmp), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def save_pretrained(folder: str | Path, *objects: Any) -> Path:
    """`obj.save_pretrained` for each object (model, tokenizer, processor) into one folder, written under a
    temporary name and renamed into place, replacing an earlier version of the folder."""
    folder = Path(folder)
    tmp = _tmp_name(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    for obj in objects:
        obj.save_pretrained(tmp)
    return replace_dir(tmp, folder)


def cached_dir(target: str | Path, settings: Mapping[str, Any], build: Callable[[Path], Mapping[str, Any] | None],
               stamp: str = "stamp.json") -> tuple[Path, bool]:
    """The folder `target` built by `build(tmp)` for `settings`, reused when it already holds them.

    Returns `(target, hit)`. On a miss, `build` fills a temporary folder and may return extra fields for the stamp
    (losses, seconds); the stamp `{"settings": ..., **extra}` is written last and the folder renamed into place.
    A stamp with other settings raises FileExistsError naming the folder, since reusing it would silently change
    an experiment. Builders of the same target take turns on a lock file beside it (`.NAME.lock`, held with
    `flock`, released by the OS when a builder dies, removed after the build): a second process asking for the folder while the first
    builds waits, then finds the stamp and reuses the folder (hit), so two leaderboard jobs sharing a warm start
    build it once and nobody swaps the folder under a reader."""
    target = Path(target)
    settings = json.loads(json.dumps(dict(settings)))  # compare as the stamp will hold them (tuples -> lists)
    stamp_path = target / stamp
    hit = _stamped(stamp_path, settings, target)
    if hit:
        return target, True
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(f".{target.name}.lock")):
        if _stamped(stamp_path, settings, target):  # another process built it while this one waited
            return target, True
        sweep_stale(target.parent, depth=0)  # builds of this cache killed earlier leave their folders beside it
        tmp = _tmp_name(target)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            extra = build(tmp) or {}
        except BaseException:  # a failed or interrupted build leaves nothing behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_json(tmp / stamp, {"settings": settings, **dict(extra)}, indent=1)
        replace_dir(tmp, target)  # a target without a stamp is an unfinished leftover
    return target, False


def _stamped(stamp_path: Path, settings: Any, target: Path) -> bool:
    """Whether `target` is finished for `settings`; FileExistsError when it was built with other settings."""
    if not stamp_path.is_file():
        return False
    saved = json.loads(stamp_path.read_text(encoding="utf-8")).get("settings")
    if saved != settings:
        raise FileExistsError(f"{target} was built with other settings ({stamp_path}); remove it or pick "
                              f"another folder")
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on the lock file `path`, removed again on the way out.

    A waiter may lock a file that the holder has just unlinked; it then sees that `path` no longer names the file
    it holds and starts over, so two processes never both believe they hold the lock."""
    while True:
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue
            try:
                yield
            finally:
                path.unlink(missing_ok=True)  # while still held: the next waiter starts over on a fresh file
            return
        finally:
            handle.close()  # closing releases the lock

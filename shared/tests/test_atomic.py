"""Tests of shared.atomic: atomic file/folder writes and the build-once folder cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared.atomic import cached_dir, replace_dir, save_pretrained, write_json, write_jsonl, write_text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_json_creates_parents_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    write_json(target, {"x": 1, "y": [1, 2]})
    assert json.loads(target.read_text()) == {"x": 1, "y": [1, 2]}
    write_json(target, {"x": 2})  # overwrite
    assert json.loads(target.read_text()) == {"x": 2}
    assert _leftovers(target.parent) == []


def test_write_json_refuses_unserialisable_values_before_touching_the_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_text(target, "old")
    with pytest.raises(TypeError, match="r.json"):
        write_json(target, {"x": object()})
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_write_jsonl_streams_rows_and_a_bad_row_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "rows.jsonl"
    write_jsonl(target, ({"i": i, "t": "é"} for i in range(3)))
    assert target.read_text(encoding="utf-8") == '{"i": 0, "t": "é"}\n{"i": 1, "t": "é"}\n{"i": 2, "t": "é"}\n'
    with pytest.raises(TypeError, match="row 2"):
        write_jsonl(target, [{"i": 0}, {"i": {1, 2}}])
    assert target.read_text(encoding="utf-8").count("\n") == 3 and _leftovers(tmp_path) == []


def test_replace_dir_swaps_a_non_empty_folder(tmp_path: Path) -> None:
    target, new = tmp_path / "model", tmp_path / "new"
    target.mkdir()
    (target / "old.bin").write_text("old")
    new.mkdir()
    (new / "w.bin").write_text("new")
    replace_dir(new, target)
    assert sorted(p.name for p in target.iterdir()) == ["w.bin"]
    assert not new.exists() and _leftovers(tmp_path) == []


class _Saver:
    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text

    def save_pretrained(self, folder: Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / self.name).write_text(self.text)


def test_save_pretrained_writes_every_object_into_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_pretrained(folder, _Saver("model.bin", "1"), _Saver("tok.json", "2"))
    save_pretrained(folder, _Saver("model.bin", "3"), _Saver("tok.json", "4"))
    assert (folder / "model.bin").read_text() == "3" and (folder / "tok.json").read_text() == "4"
    assert _leftovers(tmp_path) == []


def test_cached_dir_builds_once_then_reuses(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "w.bin").write_text("w")
        return {"loss": 0.5}

    target = tmp_path / "cache" / "k"
    path, hit = cached_dir(target, {"steps": 3, "layers": (1, 2)}, build)
    assert (path, hit) == (target, False) and len(calls) == 1
    assert calls[0] != target  # built under a temporary name
    stamp = json.loads((target / "stamp.json").read_text())
    assert stamp == {"settings": {"steps": 3, "layers": [1, 2]}, "loss": 0.5}
    path, hit = cached_dir(target, {"steps": 3, "layers": (1, 2)}, build)  # tuples compare as the stamp's lists
    assert hit and len(calls) == 1
    assert _leftovers(target.parent) == []


def test_cached_dir_refuses_a_folder_built_with_other_settings(tmp_path: Path) -> None:
    target = tmp_path / "k"
    cached_dir(target, {"steps": 3}, lambda tmp: None)
    with pytest.raises(FileExistsError, match="other settings"):
        cached_dir(target, {"steps": 4}, lambda tmp: None)


def test_cached_dir_rebuilds_an_unfinished_leftover_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "k"
    target.mkdir()
    (target / "half.bin").write_text("half")  # no stamp: a killed build

    def failing(tmp: Path) -> None:
        (tmp / "w.bin").write_text("w")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_dir(target, {"steps": 3}, failing)
    assert not (target / "stamp.json").exists() and _leftovers(tmp_path) == []
    path, hit = cached_dir(target, {"steps": 3}, lambda tmp: (tmp / "w.bin").write_text("w") and None)
    assert not hit and sorted(p.name for p in path.iterdir()) == ["stamp.json", "w.bin"]


BUILDER = """
import json, os, sys, time
from pathlib import Path
from shared.atomic import cached_dir

target, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(tmp):
    with log.open("a") as f:
        f.write(f"start {os.getpid()}\\n")
    time.sleep(1.5)  # a warm start takes a while: the second process asks while this one builds
    (tmp / "weights.bin").write_text(str(os.getpid()))
    with log.open("a") as f:
        f.write(f"end {os.getpid()}\\n")
    return {"builder": os.getpid()}

path, hit = cached_dir(target, {"steps": 3}, build)
print(json.dumps({"hit": hit, "weights": (path / "weights.bin").read_text(), "done": time.time()}))
"""


def test_cached_dir_two_processes_build_once(tmp_path: Path) -> None:
    """Two real processes ask for the same warm start at once: one builds, the other waits on the lock file and
    reuses the folder (built once, never swapped under the first), and no lock or temporary file is left."""
    import subprocess
    import sys
    import time

    target, log = tmp_path / "cache" / "warm", tmp_path / "builds.log"
    argv = [sys.executable, "-c", BUILDER, str(target), str(log)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (log.is_file() and log.read_text().startswith("start")):  # the first is inside its build
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["start", "end"]  # one build
    assert [o["hit"] for o in outs] == [False, True]
    assert outs[0]["weights"] == outs[1]["weights"] == str(first.pid)
    assert json.loads((target / "stamp.json").read_text())["builder"] == first.pid
    assert _leftovers(target.parent) == []

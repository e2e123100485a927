"""shared.stages: keys over the parent chain, shared prefixes, file stages, stats, provenance, and a real SIGKILL
in the middle of a stage followed by a resume that redoes neither finished stages nor finished records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from shared.atomic import write_jsonl
from shared.stages import (
    JsonlProgress,
    Stage,
    StageRunner,
    check_parents,
    derive,
    lineage,
    resolve_parents,
    stage_key,
)


def _counting(calls: list, name: str, text: str = "x"):
    def build(ctx):
        calls.append(name)
        (ctx.out / "out.txt").write_text(f"{text}:{','.join(sorted(ctx.inputs))}")
        return {"made": name}

    return build


def _chain(calls, rl4_lr=1e-5, with_rl3=True):
    stages = [Stage("cpt", _counting(calls, "cpt"), {"steps": 3}), Stage("sft", _counting(calls, "sft"), {"lr": 1e-3})]
    if with_rl3:
        stages.append(Stage("rl3", _counting(calls, "rl3"), {"lr": 3e-5}))
    stages.append(Stage("rl4", _counting(calls, "rl4"), {"lr": rl4_lr}))
    return stages


def test_keys_follow_the_chain_and_ablations_share_prefixes(tmp_path):
    calls: list[str] = []
    runner = StageRunner(tmp_path)
    full = runner.run_chain(_chain(calls))
    assert calls == ["cpt", "sft", "rl3", "rl4"] and all(r.built for r in full.values())
    assert full["rl4"].stamp["settings"]["parents"] == {"rl3": full["rl3"].key}
    assert full["rl4"].stamp["made"] == "rl4" and full["rl4"].stamp["seconds"] >= 0
    assert (full["rl3"].path / "out.txt").read_text() == "x:sft"
    calls.clear()
    again = StageRunner(tmp_path).run_chain(_chain(calls))  # a rerun builds nothing
    assert calls == [] and not any(r.built for r in again.values())
    ablation = StageRunner(tmp_path).run_chain(_chain(calls, with_rl3=False))  # no_reasoning_rl
    assert calls == ["rl4"]  # cpt and sft reused from the full chain: same folders
    assert ablation["sft"].path == full["sft"].path and ablation["rl4"].path != full["rl4"].path
    calls.clear()
    changed = StageRunner(tmp_path).run_chain(_chain(calls, rl4_lr=3e-5))  # a later setting rebuilds only that stage
    assert calls == ["rl4"] and changed["rl3"].path == full["rl3"].path
    assert (full["rl4"].path / "out.txt").exists()  # the old branch is kept beside the new one


def test_key_depends_on_name_settings_and_parents():
    base = stage_key("a", {"x": 1}, {"p": "k"})
    assert base == stage_key("a", {"x": 1}, {"p": "k"})
    assert len({base, stage_key("b", {"x": 1}, {"p": "k"}), stage_key("a", {"x": 2}, {"p": "k"}),
                stage_key("a", {"x": 1}, {"p": "k2"})}) == 4
    assert stage_key("a", {"x": (1, 2)}, {}) == stage_key("a", {"x": [1, 2]}, {})


def test_half_written_folder_without_stamp_is_rebuilt(tmp_path):
    calls: list[str] = []
    runner = StageRunner(tmp_path)
    first = runner.run(Stage("only", _counting(calls, "only"), {}, parents=()))
    (first.path / "stage.json").unlink()  # as if the stamp had never been written
    second = StageRunner(tmp_path).run(Stage("only", _counting(calls, "only"), {}, parents=()))
    assert calls == ["only", "only"] and second.built


def test_failed_build_leaves_nothing_and_status_reports(tmp_path):
    def broken(ctx):
        (ctx.out / "partial").write_text("x")
        raise RuntimeError("boom")

    stages = [Stage("a", _counting([], "a"), {}), Stage("b", broken, {})]
    runner = StageRunner(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        runner.run_chain(stages)
    assert [s["state"] for s in runner.status(stages)] == ["done", "todo"]
    assert not list((tmp_path / "b").glob("*"))  # no half-folder
    assert runner.built == ["a"]


def test_stats_json_of_drop_reasons(tmp_path):
    def filter_stage(ctx):
        rows = [{"id": i, "q": "x" * i} for i in range(6)]
        kept = []
        for row in rows:
            if row["id"] == 0:
                ctx.stats.drop("empty")
            elif len(row["q"]) > 3:
                ctx.stats.drop("too_long")
            else:
                ctx.stats.keep()
                kept.append(row)
        ctx.stats.count("seen", len(rows))
        write_jsonl(ctx.out / "rows.jsonl", kept)

    result = StageRunner(tmp_path).run(Stage("filter", filter_stage, {"max": 3}, parents=()))
    stats = json.loads((result.path / "stats.json").read_text())
    assert stats == {"kept": 3, "dropped": {"empty": 1, "too_long": 2}, "dropped_total": 3, "seen": 6}
    assert result.stamp["stats"] == stats


def test_file_stages_in_a_shared_folder(tmp_path):
    calls: list[str] = []

    def writer(name):
        def build(ctx):
            calls.append(name)
            write_jsonl(ctx.out / f"{name}.jsonl", [{"id": 1}])
            ctx.stats.keep()

        return build

    chain = [Stage("r0.rollouts", writer("rollouts"), {"cfg": 1}, folder="round0", outputs=["rollouts.jsonl"]),
             Stage("r0.groups", writer("groups"), {"cfg": 1}, folder="round0", outputs=["groups.jsonl"])]
    runner = StageRunner(tmp_path)
    results = runner.run_chain(chain)
    assert results["r0.groups"].path == tmp_path / "round0" and calls == ["rollouts", "groups"]
    assert json.loads((tmp_path / "round0/stats.json").read_text())["r0.groups"]["kept"] == 1
    runner.run_chain(chain)
    assert calls == ["rollouts", "groups"]  # reused
    (tmp_path / "round0/groups.jsonl").unlink()  # an output lost: that stage alone is rebuilt
    runner.run_chain(chain)
    assert calls == ["rollouts", "groups", "groups"]
    other = [Stage(s.name, s.build, {"cfg": 2}, s.parents, s.outputs, s.folder) for s in chain]
    with pytest.raises(FileExistsError, match=r"stage 'r0.rollouts': .*round0 holds its outputs from other settings"):
        runner.run_chain(other)
    StageRunner(tmp_path, on_change="rebuild").run_chain(other)
    assert calls[-2:] == ["rollouts", "groups"]

    def forgetful(ctx):
        pass

    with pytest.raises(RuntimeError, match=r"finished without writing \['x.jsonl'\]"):
        runner.run(Stage("lazy", forgetful, {}, parents=(), folder="round0", outputs=["x.jsonl"]))


def test_chain_validation():
    build = _counting([], "a")
    with pytest.raises(ValueError, match="appears twice"):
        resolve_parents([Stage("a", build), Stage("a", build)])
    with pytest.raises(ValueError, match="must come earlier"):
        resolve_parents([Stage("a", build, parents=("b",)), Stage("b", build)])
    with pytest.raises(ValueError, match="a folder name"):
        Stage("a/b", build)
    with pytest.raises(ValueError, match="need both folder= and outputs="):
        Stage("a", build, folder="x")
    with pytest.raises(ValueError, match="must be JSON values"):
        Stage("a", build, {"f": object()})
    with pytest.raises(ValueError, match=r"needs parent\(s\) \['up'\] to be run first"):
        StageRunner("/tmp/unused").run(Stage("a", build, parents=("up",)))


def test_build_must_return_stamp_fields_or_none(tmp_path):
    with pytest.raises(TypeError, match="build returned a PosixPath; return a mapping of stamp fields or None"):
        StageRunner(tmp_path).run(Stage("a", lambda ctx: ctx.out / "x", parents=()))
    assert not list((tmp_path / "a").glob("*"))


def test_jsonl_progress_drops_a_torn_line(tmp_path):
    path = tmp_path / "p.jsonl"
    with JsonlProgress(path) as progress:
        progress.add({"id": "a", "v": 1})
        progress.add({"id": "b", "v": 2})
    with path.open("a") as handle:
        handle.write('{"id": "c", "v"')  # killed mid-write
    again = JsonlProgress(path)
    assert again.done("a") and again.done("b") and not again.done("c")
    again.add({"id": "c", "v": 3})
    again.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no 'id' field"):
        JsonlProgress(tmp_path / "q.jsonl").add({"x": 1})


def test_provenance_rows_and_lineage():
    seed = {"id": "s1", "question": "Where was Ada born?"}
    l2 = derive(seed, "levels", "obfuscate", {"k": 2}, question="Where was the mentor of Bo born?")
    assert set(l2) == {"id", "parent_ids", "stage", "op", "params", "question"}
    assert l2["parent_ids"] == ["s1"] and l2["id"].startswith("levels:")
    assert derive(seed, "levels", "obfuscate", {"k": 2})["id"] == l2["id"]  # deterministic ids
    assert derive(seed, "levels", "obfuscate", {"k": 3})["id"] != l2["id"]
    l3 = derive([l2, {"id": "s2"}], "levels", "compose", id="l3-0")
    assert lineage("l3-0", {r["id"]: r for r in (l2, l3)}) == ["l3-0", l2["id"], "s2", "s1"]
    check_parents([l2], ["s1"], "levels.jsonl")
    with pytest.raises(ValueError, match=r"levels.jsonl: row 1 \(id 'l3-0'\) names parent"):
        check_parents([l3], ["s1", "s2"], "levels.jsonl")


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from shared.atomic import write_jsonl
    from shared.stages import Stage, StageRunner

    root, log = Path(sys.argv[1]), Path(sys.argv[2])
    kill_at = int(os.environ.get("KILL_AT", "-1"))

    def note(text):
        with log.open("a") as f:
            f.write(text + "\\n")

    def seed(ctx):
        note("build seed")
        write_jsonl(ctx.out / "seed.jsonl", [{"id": i, "x": i} for i in range(8)])

    def slow(ctx):
        note("build slow")
        rows = [json.loads(x) for x in ctx.input("seed", "seed.jsonl").read_text().splitlines()]
        with ctx.progress("done.jsonl") as progress:
            for row in rows:
                if progress.done(row["id"]):
                    continue
                note(f"row {row['id']}")
                progress.add({"id": row["id"], "y": row["x"] * row["x"]})
                if row["id"] == kill_at:
                    (root / "READY").write_text("")
                    time.sleep(120)  # the parent SIGKILLs us here
        write_jsonl(ctx.out / "squares.jsonl", [progress.rows[r["id"]] for r in rows])

    def final(ctx):
        note("build final")
        total = sum(json.loads(x)["y"] for x in ctx.input("slow", "squares.jsonl").read_text().splitlines())
        (ctx.out / "total.txt").write_text(str(total))

    results = StageRunner(root).run_chain([Stage("seed", seed, {"n": 8}), Stage("slow", slow, {"p": 2}),
                                           Stage("final", final, {})])
    print(results["final"].path / "total.txt")
    """
)


def test_sigkill_mid_stage_resumes_without_redoing_finished_work(tmp_path):
    script = tmp_path / "chain.py"
    script.write_text(KILL_SCRIPT)
    root, log = tmp_path / "run", tmp_path / "calls.log"
    env = {**os.environ, "KILL_AT": "4"}
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(log)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (root / "READY").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the stage never reached its kill point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert log.read_text().split("\n")[:-1] == ["build seed", "build slow"] + [f"row {i}" for i in range(5)]
    assert list((root / "slow").glob(".*.tmp"))  # the killed build's temporary folder is still there
    log.unlink()
    done = subprocess.run([sys.executable, str(script), str(root), str(log)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KILL_AT": "-1"})
    assert done.returncode == 0, done.stderr
    # seed is not rebuilt, slow resumes at row 5, final runs once
    assert log.read_text().split("\n")[:-1] == ["build slow", "row 5", "row 6", "row 7", "build final"]
    assert Path(done.stdout.strip()).read_text() == str(sum(i * i for i in range(8)))
    assert not list((root / "slow").glob(".*.tmp")) and not (root / ".work").joinpath("slow").exists()
    assert not any((root / ".work").iterdir())  # work folders are removed after success

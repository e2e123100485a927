"""The DeepResearch-9K synthesis pipeline as resumable stages over JSONL (all of it inferred: no code was released).

    seed -> levels -> filter -> trajectories -> verdicts -> calibrate

Each stage is a `shared.stages` folder stage under the synthesis root, keyed by its settings and its parents' keys:
a rerun reuses every finished stage, a changed setting rebuilds that stage and the ones after it only, and a killed
build leaves no half-written output (the long teacher stage resumes inside itself from `JsonlProgress`). Each
stage writes `stats.json` (kept rows and drop reasons per level) and every row carries its provenance (`id`,
`parent_ids`, `stage`, `op`, `params`).

- `seed`: `seeds.jsonl` and the search corpus `corpus.jsonl` (`dr9k.seeds`);
- `levels`: `levels.jsonl`, L1/L2/L3 by construction (`dr9k.levels`);
- `filter`: `questions.jsonl` after leak / short / unique / duplicate / validity (`dr9k.filters`; validity by the
  judge endpoint when `filters.validity=judge`);
- `trajectories`: `trajectories.jsonl`, `synth.attempts` teacher episodes per question through the chat client
  (`dr9k.teacher`), searching the configured backend;
- `verdicts`: `verdicts.jsonl`, each attempt's answer judged (exact match first, then the judge endpoint);
- `calibrate`: `dataset.jsonl` (every question with its level, split, correct attempts, `hard` = no attempt
  correct, the release's "teacher got it wrong" at attempts = 1, and the first correct trajectory), and
  `train.jsonl` / `dev.jsonl` / `test.jsonl` / `hard.jsonl` views of it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.atomic import write_jsonl
from shared.config import config_to_dict
from shared.stages import Stage, StageContext, StageResult, StageRunner, derive

STAGES = ("seed", "levels", "filter", "trajectories", "verdicts", "calibrate")
STUB_VERSION = 2  # bump when the stand-in teacher or judge answers differently: their stages are rebuilt
# bump a stage's number when its code builds other rows from the same settings (the stage key holds it)
CODE_VERSIONS = {"seed": 1, "levels": 2, "filter": 1, "trajectories": 1, "verdicts": 1, "calibrate": 1}
_ENDPOINT_RUNTIME = ("timeout_s", "max_retries", "backoff_s", "workers", "cache_dir", "api_key_env")


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def endpoint_identity(settings: Any) -> dict[str, Any]:
    """What decides an endpoint's answers (the stage key part): kind, model or path, sampling; stubs by version."""
    out = {k: v for k, v in config_to_dict(settings).items() if k not in _ENDPOINT_RUNTIME}
    if settings.kind == "stub":
        out["stub_version"] = STUB_VERSION
    return out


def _kb(cfg: Any) -> Any:
    from benchmarks.synthetic.kb import make_kb

    k = cfg.seeds.kb
    return make_kb(n_people=k.n_people, n_companies=k.n_companies, n_cities=k.n_cities, n_countries=k.n_countries,
                   seed=k.seed)


class Pipeline:
    """The synthesis stages of one config under `root`; `run(upto)` builds what is missing."""

    def __init__(self, cfg: Any, root: str | Path, log: Callable[[str], None] | None = print) -> None:
        self.cfg, self.root, self.log = cfg, Path(root), log
        self.runner = StageRunner(self.root, log=log)
        self.endpoints: dict[str, dict[str, Any]] = {}

    # ---- stage builds ----
    def _seed(self, ctx: StageContext) -> dict[str, Any]:
        from dr9k.seeds import load_seeds

        seeds, corpus = load_seeds(self.cfg.seeds, self.cfg.levels.levels)
        rows = [derive([], "seed", "load", {"source": self.cfg.seeds.source}, id=s["id"], **{k: v for k, v in
                s.items() if k != "id"}) for s in seeds]
        write_jsonl(ctx.out / "seeds.jsonl", rows)
        write_jsonl(ctx.out / "corpus.jsonl", corpus)
        for s in seeds:
            ctx.stats.count(f"seeds_{s['split'] or 'all'}")
        ctx.stats.keep(len(seeds))
        return {"seeds": len(seeds), "corpus": len(corpus)}

    def _levels(self, ctx: StageContext) -> dict[str, Any]:
        from dr9k.levels import build_levels

        seeds = read_jsonl(ctx.input("seed", "seeds.jsonl"))
        kb = _kb(self.cfg) if any(s.get("kb") for s in seeds) else None
        rows = build_levels(seeds, self.cfg.levels.levels, self.cfg.levels, kb, ctx.stats)
        write_jsonl(ctx.out / "levels.jsonl", rows)
        return {"rows": len(rows)}

    def _filter(self, ctx: StageContext) -> dict[str, Any]:
        from dr9k.filters import apply_filters

        rows = read_jsonl(ctx.input("levels", "levels.jsonl"))
        judge_valid = None
        if self.cfg.filters.validity == "judge":
            judge_valid = self._validity_judge()
        kept = apply_filters(rows, self.cfg.filters, ctx.stats, judge_valid)
        write_jsonl(ctx.out / "questions.jsonl", [derive(r, "filter", "keep", {}, id=r["id"], **{
            k: v for k, v in r.items() if k not in ("id", "parent_ids", "stage", "op", "params")}) for r in kept])
        return {"rows": len(kept)}

    def _validity_judge(self) -> Callable[[list[Mapping[str, Any]]], list[bool]]:
        def judge_valid(rows: list[Mapping[str, Any]]) -> list[bool]:
            from dr9k.endpoints import serve
            from dr9k.judge import STUB_JUDGE, stub_reply, validity_client

            s = self.cfg.judge
            with serve(s, stub_reply, STUB_JUDGE, "judge") as (url, model, info):
                client = validity_client(url, model, s)
                items = [{"id": r["id"], "question": r["question"], "prediction": "-", "golds": r["golden_answers"]}
                         for r in rows]
                batch = client.judge_many(items, workers=s.workers, em_first=False)
                self.endpoints["validity_judge"] = {**info, "stats": client.stats()}
            return [v.correct for v in batch.verdicts]

        return judge_valid

    def _trajectories(self, ctx: StageContext) -> dict[str, Any]:
        from shared.serving import ChatClient

        from dr9k.endpoints import client_kwargs, serve
        from dr9k.search import make_env_factory, make_retriever
        from dr9k.teacher import STUB_TEACHER, run_teacher, stub_teacher

        rows = read_jsonl(ctx.input("filter", "questions.jsonl"))
        corpus = read_jsonl(ctx.input("seed", "corpus.jsonl"))
        t = self.cfg.teacher
        stub = stub_teacher(rows) if t.kind == "stub" else None
        env_factory = make_env_factory(make_retriever(self.cfg.search, corpus), self.cfg.search.topk)
        with serve(t, stub, STUB_TEACHER, "teacher") as (url, model, info), ctx.progress("done.jsonl") as progress:
            client = ChatClient(url, model, **client_kwargs(t, "teacher"))
            chunk = 256  # finished episodes are flushed chunk by chunk: a kill loses at most one chunk
            for attempt in range(self.cfg.synth.attempts):
                todo = [r for r in rows if not progress.done(f"{r['id']}@{attempt}")]
                sampling = {"temperature": t.temperature, "max_tokens": t.max_tokens}
                if attempt:
                    sampling["seed"] = attempt
                for start in range(0, len(todo), chunk):
                    part = todo[start : start + chunk]
                    episodes = run_teacher(client, part, env_factory, self.cfg.rollout.prompt, t.max_turns,
                                           t.workers, sampling)
                    for row, ep in zip(part, episodes):
                        progress.add({"id": f"{row['id']}@{attempt}", "question_id": row["id"], "attempt": attempt,
                                      "answer": ep["answer"], "finish": ep["finish"], "num_turns": ep["num_turns"],
                                      "turns": [{"text": x["text"], "observation": x["observation"]}
                                                for x in ep["turns"]]})
                    if self.log:
                        self.log(f"stage trajectories: attempt {attempt + 1}/{self.cfg.synth.attempts}, "
                                 f"{min(start + chunk, len(todo))}/{len(todo)} questions")
            self.endpoints["teacher"] = {**info, "stats": client.stats()}
            done = progress.rows
        out = [done[f"{r['id']}@{a}"] for a in range(self.cfg.synth.attempts) for r in rows]
        for ep in out:
            ctx.stats.count(f"finish_{ep['finish']}")
        write_jsonl(ctx.out / "trajectories.jsonl", out)
        ctx.stats.keep(len(out))
        return {"episodes": len(out), "teacher": self.endpoints["teacher"]}

    def _verdicts(self, ctx: StageContext) -> dict[str, Any]:
        from dr9k.endpoints import serve
        from dr9k.judge import STUB_JUDGE, grade, grade_client, stub_reply

        rows = {r["id"]: r for r in read_jsonl(ctx.input("filter", "questions.jsonl"))}
        episodes = read_jsonl(ctx.input("trajectories", "trajectories.jsonl"))
        s = self.cfg.judge
        with serve(s, stub_reply, STUB_JUDGE, "judge") as (url, model, info):
            client = grade_client(url, model, s)
            items = [{"id": ep["id"], "question": rows[ep["question_id"]]["question"], "prediction": ep["answer"],
                      "golds": rows[ep["question_id"]]["golden_answers"]} for ep in episodes]
            verdicts = grade(client, items, s.workers)
            self.endpoints["judge"] = {**info, "stats": client.stats()}
        out = [{"id": ep["id"], "question_id": ep["question_id"], "attempt": ep["attempt"], "correct": v.correct,
                "verdict": v.verdict, "source": v.source} for ep, v in zip(episodes, verdicts)]
        for v in out:
            ctx.stats.count(f"verdict_{v['verdict']}")
        write_jsonl(ctx.out / "verdicts.jsonl", out)
        ctx.stats.keep(len(out))
        return {"verdicts": len(out), "judge": self.endpoints["judge"]}

    def _calibrate(self, ctx: StageContext) -> dict[str, Any]:
        rows = read_jsonl(ctx.input("filter", "questions.jsonl"))
        episodes = {e["id"]: e for e in read_jsonl(ctx.input("trajectories", "trajectories.jsonl"))}
        verdicts: dict[str, list[dict]] = {}
        for v in read_jsonl(ctx.input("verdicts", "verdicts.jsonl")):
            verdicts.setdefault(v["question_id"], []).append(v)
        out = []
        for r in rows:
            vs = sorted(verdicts.get(r["id"], []), key=lambda v: v["attempt"])
            if len(vs) != self.cfg.synth.attempts:
                raise ValueError(f"question {r['id']!r}: {len(vs)} verdicts for {self.cfg.synth.attempts} attempts")
            correct = [v["correct"] for v in vs]
            chosen = next((v for v in vs if v["correct"]), vs[0])
            ep = episodes[chosen["id"]]
            row = derive(r, "calibrate", "calibrate", {"attempts": len(vs)}, id=r["id"],
                         **{k: v for k, v in r.items() if k not in ("id", "parent_ids", "stage", "op", "params")},
                         correct_attempts=sum(correct), hard=is_hard(correct), teacher_correct=bool(chosen["correct"]),
                         trajectory=ep["turns"], teacher_answer=ep["answer"], teacher_turns=ep["num_turns"])
            out.append(row)
            ctx.stats.count(f"{r['level']}_questions")
            ctx.stats.count(f"{r['level']}_hard", int(row["hard"]))
        write_jsonl(ctx.out / "dataset.jsonl", out)
        for split in ("train", "dev", "test"):
            write_jsonl(ctx.out / f"{split}.jsonl", [r for r in out if r["split"] == split])
        write_jsonl(ctx.out / "hard.jsonl", [r for r in out if r["hard"]])
        ctx.stats.keep(len(out))
        return {"questions": len(out), "hard": sum(r["hard"] for r in out)}

    # ---- the chain ----
    def stages(self) -> list[Stage]:
        c = self.cfg
        settings = {
            "seed": {"seeds": config_to_dict(c.seeds), "levels": list(c.levels.levels)},
            "levels": {"levels": config_to_dict(c.levels)},
            "filter": {"filters": config_to_dict(c.filters),
                       "judge": endpoint_identity(c.judge) if c.filters.validity == "judge" else None},
            "trajectories": {"teacher": endpoint_identity(c.teacher), "prompt": c.rollout.prompt,
                             "attempts": c.synth.attempts, "search": _search_identity(c.search)},
            "verdicts": {"judge": endpoint_identity(c.judge)},
            "calibrate": {"attempts": c.synth.attempts},
        }
        builds = {"seed": self._seed, "levels": self._levels, "filter": self._filter,
                  "trajectories": self._trajectories, "verdicts": self._verdicts, "calibrate": self._calibrate}
        parents = {"seed": (), "trajectories": ("seed", "filter"), "verdicts": ("filter", "trajectories"),
                   "calibrate": ("filter", "trajectories", "verdicts")}
        return [Stage(name, builds[name], {**settings[name], "code": CODE_VERSIONS[name]}, parents.get(name))
                for name in STAGES]

    def run(self, upto: str | Iterable[str] = "calibrate") -> dict[str, StageResult]:
        """Build (or reuse) the chain up to the furthest stage named in `upto`."""
        names = [upto] if isinstance(upto, str) else list(upto)
        unknown = [n for n in names if n not in STAGES]
        if unknown or not names:
            raise ValueError(f"unknown synthesis stage(s) {unknown or names}; stages: {', '.join(STAGES)}")
        last = max(STAGES.index(n) for n in names)
        return self.runner.run_chain(self.stages()[: last + 1])

    def status(self) -> list[dict[str, Any]]:
        return self.runner.status(self.stages())

    def finished(self) -> dict[str, StageResult]:
        """The stages of the chain that are built for this config (nothing is built)."""
        from shared.stages import resolve_parents, stage_key

        keys: dict[str, str] = {}
        out: dict[str, StageResult] = {}
        for stage in resolve_parents(self.stages()):
            keys[stage.name] = stage_key(stage.name, stage.settings, {n: keys[n] for n in stage.parents or ()})
            stamp = self.runner.stamp_of(stage, keys[stage.name])
            if stamp is not None:
                out[stage.name] = StageResult(stage.name, keys[stage.name],
                                              self.runner.folder_of(stage, keys[stage.name]), False, stamp)
        return out


def _search_identity(settings: Any) -> dict[str, Any]:
    return {k: v for k, v in config_to_dict(settings).items() if k not in ("cache_dir", "rate", "api_key_env")}


def is_hard(correct: Sequence[bool]) -> bool:
    """The hard subset: no attempt judged correct (with one attempt: the teacher got it wrong, as in the release)."""
    if not correct:
        raise ValueError("is_hard needs at least one verdict")
    return not any(correct)


def stats_report(results: Mapping[str, StageResult]) -> dict[str, Any]:
    """Counts per level and drop reasons of each finished stage, from the stamps' stats."""
    report: dict[str, Any] = {}
    for name, result in results.items():
        stats = result.stamp.get("stats") or {}
        report[name] = stats
    levels = Counter()
    if "filter" in results:
        for r in read_jsonl(results["filter"].output("questions.jsonl")):
            levels[(r["level"], r.get("split") or "all")] += 1
        report["questions_per_level"] = {f"{lv}/{sp}": n for (lv, sp), n in sorted(levels.items())}
    return report


def format_stats(report: Mapping[str, Any]) -> str:
    """A plain-text table of `stats_report`: per stage kept, drops by reason, counts."""
    lines = []
    for name, stats in report.items():
        if name == "questions_per_level":
            lines.append("questions per level/split: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
            continue
        if not stats:
            continue
        drops = ", ".join(f"{k} {v}" for k, v in stats.get("dropped", {}).items()) or "none"
        counts = ", ".join(f"{k} {v}" for k, v in stats.items() if k not in ("kept", "dropped", "dropped_total"))
        lines.append(f"{name}: kept {stats.get('kept', 0)}; dropped {stats.get('dropped_total', 0)} ({drops})"
                     + (f"; {counts}" if counts else ""))
    return "\n".join(lines)

"""`arr replicate`: the CPU-scale test of ARR on the synthetic KB (claims fixed in the README before the test run).

Shared by every row and seed: the data (1-2-hop KB questions split by (entity, chain); 512 test, 128 dev, the rest
training; the overlap of test hops with training and dev hops is counted and must be 0), the cached warm starts of
both roles (`arr.warmstart`), the rejection probe (`probe.items` held-out test hops with and without their gold
passage; a dev probe from dev hops for curves) and the evaluation seed (same DropGold draws for every row).

Rows per seed (same warm starts, questions, rollout budget: `rl.prompts_per_step` x `rl.generations` episodes per
step for `rl.steps` steps):
- `reasoner_only`: the reasoner alone on raw top-k documents, GRPO on F1 (Search-R1 style);
- `arr`: both roles, adversarial bonus, process reward, A + r_ver,t, simultaneous updates (the release's schedule);
- diagnostics (`--rows`): `arr_no_process` (w_ver = 0) and `arr_release_adv` (2A + r_ver,t).
Warm-start rows (computed once): `sft` (both warm starts under the ARR protocol, probe rates) and
`sft_reasoner_only` (the reasoner warm start alone). Metrics: em, f1, the probe's reject rates and gap (None without
a verifier), mean_turns, generated_tokens. Dev curves (F1 and probe gap) every `rl.eval_every` steps. Every finished
piece is written atomically and skipped on rerun; RL rows resume from their joint checkpoints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from shared.atomic import write_json
from shared.config import claim_run_dir, config_to_dict, load_config

from arr import __version__
from arr.config import ARRConfig
from arr.evaluate import ROW_METRICS, evaluate_protocol, probe

ROWS: dict[str, dict[str, Any]] = {
    "reasoner_only": {"verifier": False, "set": {}},
    "arr": {"verifier": True, "set": {}},
    "arr_no_process": {"verifier": True, "set": {"reward": {"w_ver": 0.0}}},
    "arr_release_adv": {"verifier": True, "set": {"advantage": {"form": "release"}}},
}
DEFAULT_ROWS = ("reasoner_only", "arr")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def default_config(quick: bool) -> Path:
    return CONFIG_DIR / ("replicate_quick.yaml" if quick else "replicate.yaml")


def load(config: str | Path | None, overrides: Sequence[str] = (), quick: bool = False) -> ARRConfig:
    cfg = load_config(ARRConfig, config or default_config(quick), list(overrides))
    cfg.validate()
    return cfg


def row_config(cfg: ARRConfig, row: str) -> ARRConfig:
    """The shared settings with the row's section overrides."""
    changes = {sec: dataclasses.replace(getattr(cfg, sec), **vals) for sec, vals in ROWS[row]["set"].items()}
    return dataclasses.replace(cfg, **changes)


def warm_paths(cfg: ARRConfig, data: dict, out: Path, log: Any) -> dict[str, Path]:
    from arr.warmstart import warm_starts

    if cfg.model.path:
        paths = {"reasoner": Path(cfg.model.path), "verifier": Path(cfg.model.verifier_path or cfg.model.path)}
        return {"shared": paths["reasoner"]} if cfg.roles.policies == "shared" else paths
    root = Path(cfg.warm_start.cache_dir).expanduser() if cfg.warm_start.cache_dir else out / "warm_starts"
    return warm_starts(cfg, data, root, log)


def _generators(cfg: ARRConfig, paths: dict[str, Path]) -> tuple[dict[str, Any], Any]:
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    gens, tok = {}, None
    for name, path in paths.items():
        model, tok = load_model(str(path), kind="causal", dtype="float32", device="auto")
        gens[name] = HFGenerator(model.eval(), tok, batch_size=cfg.protocol.gen_batch_size)
    if "shared" in gens:
        return {"reasoner": gens["shared"], "verifier": gens["shared"]}, tok
    return gens, tok


def row_metrics(evaluation: dict[str, Any], probed: dict[str, Any] | None) -> dict[str, Any]:
    out = {k: evaluation.get(k) for k in ROW_METRICS}
    for k in ("verifier_reject_rate_no_answer", "verifier_reject_rate_with_answer", "reject_gap"):
        out[k] = probed[k] if probed is not None else None
    return out


def _finished(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def warm_rows(cfg: ARRConfig, paths: dict[str, Path], data: dict, probes: dict, out: Path, log: Any) -> dict:
    """The warm-start rows (test) and their dev values (the curves' step 0), computed once."""
    from arr.train import build_evidence

    done = _finished(out / "sft_metrics.json")
    if done is not None:
        return done
    gens, _ = _generators(cfg, paths)
    ev = build_evidence(cfg, data["corpus"], seed=cfg.eval.seed)
    t0 = time.perf_counter()
    arr_eval = evaluate_protocol(cfg, gens, ev, data["test"], verifier=True)
    solo_eval = evaluate_protocol(cfg, gens, ev, data["test"], verifier=False)
    probe_test = probe(cfg, gens["verifier"], probes["test"])
    curves = bool(data["dev"]) and cfg.rl.eval_every > 0  # dev values are the curves' step 0
    dev_arr = evaluate_protocol(cfg, gens, ev, data["dev"], verifier=True) if curves else {}
    dev_solo = evaluate_protocol(cfg, gens, ev, data["dev"], verifier=False) if curves else {}
    probe_dev = probe(cfg, gens["verifier"], probes["dev"]) if curves else {"reject_gap": None}
    pre = precondition(cfg, gens, ev, data["dev"]) if curves else {}
    saved = {"rows": {"sft": row_metrics(arr_eval, probe_test), "sft_reasoner_only": row_metrics(solo_eval, None)},
             "precondition": pre,
             "extra": {"sft": _extras(arr_eval, probe_test), "sft_reasoner_only": _extras(solo_eval, None)},
             "dev": {"arr": {"f1": dev_arr.get("f1"), "reject_gap": probe_dev["reject_gap"]},
                     "reasoner_only": {"f1": dev_solo.get("f1"), "reject_gap": None}},
             "per_item_f1": {"sft": arr_eval["per_item_f1"], "sft_reasoner_only": solo_eval["per_item_f1"]},
             "per_hop": probe_test["per_hop"], "seconds": time.perf_counter() - t0}
    write_json(out / "sft_metrics.json", saved)
    log("warm start: " + _line(saved["rows"]["sft"]) + " | reasoner alone: " + _line(saved["rows"]["sft_reasoner_only"])
        + f" | dev precondition {pre}")
    return saved


def precondition(cfg: ARRConfig, gens: dict, evidence: Any, dev: Sequence[dict], questions: int = 16) -> dict:
    """The warm start's learning signal on dev (fixed before any test run): the reasoner's sampled F1 and the share
    of its groups whose rewards differ, for `questions` dev questions x `rl.generations` episodes at the training
    temperature, under both protocols (the design asks F1 > 0.2 and >= 40% informative groups)."""
    from arr.train import joint_rollout, score_rollout

    out = {}
    for name, verifier in (("arr", True), ("reasoner_only", False)):
        rollout = joint_rollout(cfg, gens, evidence, dev[:questions], cfg.rl.generations, seed=cfg.eval.seed + 1,
                                temperature=cfg.rl.temperature, verifier=verifier)
        scores = score_rollout(cfg, rollout, gens["reasoner"].tokenizer, verifier)
        groups: dict[Any, list[float]] = {}
        for t in rollout["reasoner"]:
            groups.setdefault(t.group, []).append(t.reward)
        out[name] = {"sampled_f1": sum(s.f1_reasoner for s in scores) / max(1, len(scores)),
                     "informative_groups": sum(max(v) - min(v) > 1e-9 for v in groups.values()) / max(1, len(groups))}
    return out


def _extras(evaluation: dict, probed: dict | None) -> dict:
    out = {k: v for k, v in evaluation.items() if k not in ROW_METRICS and k != "per_item_f1"}
    if probed is not None:
        out.update(probe_invalid_rate=probed["invalid_rate"], probe_final_answer_rates=probed["final_answer_rates"])
    return out


def _line(metrics: dict) -> str:
    return " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in metrics.items())


def weight_change(model: torch.nn.Module, path: Path) -> float:
    """L2 norm of (trained - warm-start) parameters: the RL step really moved the weights."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(path).state_dict()
    return float(sum(((p.detach().float() - base[k].float()) ** 2).sum() for k, p in model.state_dict().items()
                     if k in base) ** 0.5)


def run_row(cfg: ARRConfig, row: str, seed: int, paths: dict[str, Path], data: dict, probes: dict, out: Path,
            progress: bool, log: Any) -> dict:
    """Train one row for one seed and score it (resumes; skipped when its metrics file exists)."""
    from arr.train import build_evidence, build_policies, rl_train

    done = _finished(out / "metrics.json")
    if done is not None:
        return done
    rcfg = dataclasses.replace(row_config(cfg, row), seed=seed)
    verifier = ROWS[row]["verifier"]
    t0 = time.perf_counter()
    policies = build_policies(rcfg, paths, out / "rl", verifier)
    gens = policies.generators
    eval_ev = build_evidence(rcfg, data["corpus"], seed=rcfg.eval.seed)
    curve: list[list[float | None]] = []

    def eval_fn(step: int) -> dict[str, float | None]:
        for tr in policies.trainers.values():
            tr.policy.eval()
        dev = evaluate_protocol(rcfg, gens, eval_ev, data["dev"], verifier=verifier)
        gap = probe(rcfg, gens["verifier"], probes["dev"])["reject_gap"] if verifier else None
        curve.append([step, dev["f1"], gap])
        return {"dev_f1": dev["f1"], "dev_reject_gap": gap}

    train_ev = build_evidence(rcfg, data["corpus"], seed=rcfg.evidence.seed + 1000 * seed)
    history = rl_train(rcfg, policies, data["train"], train_ev, out / "rl", verifier,
                       eval_fn=eval_fn if data["dev"] and rcfg.rl.eval_every else None, progress=progress, log=log)
    for tr in policies.trainers.values():
        tr.policy.eval()
    test = evaluate_protocol(rcfg, gens, eval_ev, data["test"], verifier=verifier)
    probed = probe(rcfg, gens["verifier"], probes["test"]) if verifier else None
    moved = {name: weight_change(tr.policy, paths[name]) for name, tr in policies.trainers.items()}
    saved = {"metrics": row_metrics(test, probed), "extra": _extras(test, probed), "curve": curve,
             "per_item_f1": test["per_item_f1"], "per_hop": probed["per_hop"] if probed else None,
             "history": history, "weight_change": moved, "seconds": time.perf_counter() - t0}
    write_json(out / "metrics.json", saved)
    log(f"[seed {seed}] {row}: {_line(saved['metrics'])} ({saved['seconds']:.0f}s)")
    return saved


def claims(per_seed: list[dict], warm: dict, rows: Sequence[str]) -> dict[str, Any]:
    """The two claims fixed before the test run (README), evaluated per seed and on the seed mean."""
    from shared.eval import paired_bootstrap_ci

    out: dict[str, Any] = {}
    if "arr" in rows:
        step0 = warm["rows"]["sft"]["reject_gap"]
        gaps = [s["arr"]["metrics"]["reject_gap"] for s in per_seed]
        cis = []
        for s in per_seed:
            pairs = s["arr"]["per_hop"]
            cis.append(paired_bootstrap_ci([p[0] for p in pairs], [p[1] for p in pairs]))
        out["claim1_reject_gap"] = {
            "statement": "reject_gap(arr) > 0 on every seed, above the warm start's gap, per-item bootstrap CI > 0",
            "step0": step0, "per_seed": gaps, "ci": cis,
            "holds": all(g > 0 and g > step0 and ci["low"] > 0 for g, ci in zip(gaps, cis))}
    if "arr" in rows and "reasoner_only" in rows:
        diffs = [s["arr"]["metrics"]["f1"] - s["reasoner_only"]["metrics"]["f1"] for s in per_seed]
        mean = sum(diffs) / len(diffs)
        out["claim2_f1_noninferior"] = {"statement": "f1(arr) - f1(reasoner_only) >= -0.02 on the seed mean",
                                        "per_seed": diffs, "mean": mean, "holds": mean >= -0.02}
    return out


def replicate(quick: bool = False, out: str | Path = "runs/arr_replicate", seed: int = 0,
              config: str | Path | None = None, overrides: Sequence[str] = (), seeds: int | None = None,
              rows: Sequence[str] | None = None, progress: bool = True, log: Any = print, pilot: bool = False) -> Path:
    """Run the replication; writes config.yaml, per-piece files and results.json under `out`. Separate processes
    may run different seeds or rows into the same `out` (`--seeds 1 --seed k`, `--rows`); a final call with every
    seed and row finds them done and writes the combined results. `pilot`: settings are chosen here, so the dev
    split stands in for the test split everywhere (rows, probe, claims) and the test split is never evaluated."""
    from shared.eval import paired_differences, sha256_of, write_results

    from arr.data import data_digest, load_data, overlap
    from arr.evidence import probe_items
    from arr.train import build_evidence

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    cfg = load(config, overrides, quick)
    torch.set_num_threads(cfg.rl.threads)
    rows = list(DEFAULT_ROWS) if rows is None else [r for r in rows if not r.startswith("sft")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; known: {list(ROWS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)
    data = load_data(cfg.data)
    leak = overlap(data["test"], data["train"], data["dev"])
    if any(leak.values()):
        raise ValueError(f"test data overlaps training/dev data: {leak}")
    if pilot:
        if not data["dev"]:
            raise ValueError("--pilot needs dev questions (data.dev_questions > 0)")
        data = {**data, "test": data["dev"]}
    probe_ev = build_evidence(cfg, data["corpus"])
    probes = {"test": probe_items(data["test"], probe_ev, cfg.probe.dev_items if pilot else cfg.probe.items,
                                  cfg.probe.seed),
              "dev": probe_items(data["dev"], probe_ev, cfg.probe.dev_items, cfg.probe.seed)
              if data["dev"] and cfg.rl.eval_every else []}
    paths = warm_paths(cfg, data, out, log)
    warm = warm_rows(cfg, paths, data, probes, out, log)
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    seed_list = [seed + k for k in range(n_seeds)]
    per_seed = [{row: run_row(cfg, row, s, paths, data, probes, out / f"seed{s}" / row, progress, log)
                 for row in rows} for s in seed_list]
    table = []
    for row in ["sft", "sft_reasoner_only", *rows]:
        vals = [warm["rows"][row]] * len(seed_list) if row.startswith("sft") else [s[row]["metrics"] for s in per_seed]
        metrics = {k: _seed_mean([v[k] for v in vals]) for k in ROW_METRICS}
        metrics["f1_sd"] = float(torch.tensor([v["f1"] for v in vals], dtype=torch.float64).std(unbiased=False)) \
            if len(vals) > 1 and not row.startswith("sft") else None
        table.append({"method": row, "metrics": metrics, "seeds": 1 if row.startswith("sft") else len(vals)})
    print(format_table(table))
    per_seed_metrics = [{row: s[row]["metrics"] for row in rows} for s in per_seed]
    pairs = paired_differences(per_seed_metrics, rows, "reasoner_only", list(ROW_METRICS)) \
        if "reasoner_only" in rows and len(rows) > 1 else {}
    checks = claims(per_seed, warm, rows)
    for name, c in checks.items():
        print(f"{name}: {'holds' if c['holds'] else 'does not hold'} ({c['statement']}; per seed {c['per_seed']})")
    extra = {"main_method": "arr", "headline": "reject_gap", "claims": checks, "paired_differences": pairs,
             "overlap": leak, "probe_items": {k: len(v) for k, v in probes.items()}, "seeds": seed_list,
             "warm_starts": {k: str(v) for k, v in paths.items()}, "warm_start_extra": warm["extra"],
             "dev_precondition": warm.get("precondition", {}),
             "curves": {f"seed{s}": {row: per_seed[k][row]["curve"] for row in rows} for k, s in enumerate(seed_list)},
             "dev_step0": warm["dev"],
             "row_extra": {f"seed{s}": {row: per_seed[k][row]["extra"] for row in rows} for k, s in enumerate(seed_list)},
             "weight_change": {f"seed{s}": {row: per_seed[k][row]["weight_change"] for row in rows}
                               for k, s in enumerate(seed_list)},
             "row_seconds": {f"seed{s}": {row: per_seed[k][row]["seconds"] for row in rows}
                             for k, s in enumerate(seed_list)}}
    d = cfg.data
    name = (f"synthetic KB {d.n_people}/{d.n_companies}/{d.n_cities}/{d.n_countries}, hops {d.hops}, split by "
            f"{d.split_by}: {len(data['train'])} train / {len(data['dev'])} dev / {len(data['test'])} test")
    data_info = {"name": name, "sha256": sha256_of(data_digest(data["test"]).encode())}
    return write_results(out, "arr", __version__, "pilot" if pilot else "replicate", table, config_to_dict(cfg), seed,
                         quick, data_info,
                         started, time.perf_counter() - t0, extra=extra)


def _seed_mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    keys = [*ROW_METRICS, "f1_sd"]
    lines = ["| method | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        cells = ["-" if r["metrics"][k] is None else f"{r['metrics'][k]:.3f}" for k in keys]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Command line of `arr`: warm starts, joint training, evaluation, the rejection probe, and the replication.

    arr warmstart --config configs/train.yaml                     # build (or find) the cached warm starts
    arr train --config configs/train.yaml [--out DIR] [--seed N] [key=value ...]
    arr train --config configs/gpu_qwen2.5_3b.yaml --dry-run      # validate, build on meta, memory per process
    arr eval --config configs/eval.yaml --reasoner DIR [--verifier DIR | --no-verifier]
    arr probe --config configs/eval.yaml --verifier DIR
    arr replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows arr,reasoner_only,...] [--pilot]

Built on the workspace's parent CLI (`shared.cli`): `--config`, `--out` (sets `output_dir` for train/warmstart),
`--seed`, `--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line. Record and
corpus files, model folders, rows and the output folder are checked before any model is built; every known error is
one line on stderr with exit status 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_model_source
from shared.dryrun import verb_dry_run

from arr import __version__

REPLICATE_CONFIGS = Path(__file__).resolve().parent / "configs"  # replicate.yaml, replicate_quick.yaml


def _config_cls():
    from arr.config import ARRConfig

    return ARRConfig


def _check_data(run: Run) -> None:
    """Record files are read and validated record by record (file, line, field), then the corpus; the synthetic KB
    is built later (cheap, deterministic)."""
    from arr.data import load_corpus_file, load_records

    d = run.cfg.data
    for key in ("train_file", "test_file"):
        if getattr(d, key):
            load_records(getattr(d, key))
    if (d.train_file or d.test_file) and not d.corpus_file:
        raise CLIError("data.train_file/test_file need data.corpus_file (JSONL {id, contents})")
    if d.corpus_file:
        load_corpus_file(d.corpus_file)


def _check_models(run: Run) -> None:
    for key in ("path", "verifier_path"):
        check_model_source(getattr(run.cfg.model, key), f"model.{key}")


def _check_train(run: Run) -> None:
    _check_models(run)
    _check_data(run)


def _check_saved(run: Run) -> None:
    args = run.args
    for role in ("reasoner", "verifier"):
        path = getattr(args, role, None)
        if path is not None and not Path(path).is_dir():
            raise CLIError(f"--{role} {path}: no model folder (a saved policy with its tokenizer)")
        if path is not None:
            check_model_source(path, f"--{role}")
    if run.verb == "eval" and not args.no_verifier and not args.verifier:
        raise CLIError("give --verifier DIR, or --no-verifier to evaluate the reasoner alone on raw documents")
    _check_data(run)


def _rows(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None


def _check_replicate(run: Run) -> None:
    from arr.replicate import ROWS

    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    unknown = [r for r in _rows(run.args) or [] if r not in ROWS]
    if unknown:
        raise CLIError(f"--rows: unknown rows {unknown}; known: {', '.join(ROWS)}")
    _check_models(run)
    _check_data(run)


def _data(cfg):
    from arr.data import load_data, overlap

    data = load_data(cfg.data)
    if data["test"] and (data["train"] or data["dev"]):
        leak = overlap(data["test"], data["train"], data["dev"])
        if any(leak.values()):
            raise ValueError(f"test records overlap the training/dev records: {leak}")
    return data


def _data_info(cfg, data) -> dict:
    from shared.eval import sha256_of

    from arr.data import data_digest

    d = cfg.data
    name = " / ".join(p for p in (d.train_file, d.test_file) if p) or \
        f"synthetic KB ({len(data['train'])} train / {len(data['dev'])} dev / {len(data['test'])} test)"
    return {"name": name, "sha256": sha256_of(data_digest(data["test"]).encode())}


def _print_row(row: dict) -> None:
    print(row["method"], " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in row["metrics"].items()))


def cmd_train(run: Run) -> int:
    cfg = run.cfg
    import torch
    from shared.atomic import save_pretrained
    from shared.config import claim_run_dir
    from shared.eval import write_results

    from arr.evaluate import evaluate_protocol, probe
    from arr.evidence import probe_items
    from arr.replicate import _extras, row_metrics, warm_paths
    from arr.train import build_evidence, build_policies, rl_train

    torch.set_num_threads(cfg.rl.threads)
    out = run.out
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    data = _data(cfg)
    if not data["train"]:
        raise ValueError("arr train: no training records (data.train_file or the synthetic KB)")
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)  # a folder holding another config's run is refused; the same config resumes
    verifier = cfg.train.verifier
    paths = warm_paths(cfg, data, out, run.log)
    policies = build_policies(cfg, paths, out / "rl", verifier)
    ev = build_evidence(cfg, data["corpus"], seed=cfg.evidence.seed + 1000 * cfg.seed)
    history = rl_train(cfg, policies, data["train"], ev, out / "rl", verifier, progress=run.progress)
    for name, tr in policies.trainers.items():
        save_pretrained(out / "final" / name, tr.policy, policies.tokenizer)
    rows, extra = [], {"history": history}
    if data["test"]:
        eval_ev = build_evidence(cfg, data["corpus"], seed=cfg.eval.seed)
        test = evaluate_protocol(cfg, policies.generators, eval_ev, data["test"], verifier=verifier)
        probed = None
        if verifier and all(r.get("sub_questions") for r in data["test"]):
            items = probe_items(data["test"], build_evidence(cfg, data["corpus"]), cfg.probe.items, cfg.probe.seed)
            probed = probe(cfg, policies.generators["verifier"], items)
        rows.append({"method": "arr" if verifier else "reasoner_only", "metrics": row_metrics(test, probed)})
        extra["eval"] = _extras(test, probed)
        _print_row(rows[-1])
    path = write_results(out, "arr", __version__, "train", rows, cfg, cfg.seed, False, _data_info(cfg, data), started,
                         time.perf_counter() - t0, extra=extra)
    print(f"models: {out / 'final'}\nresults: {path}")
    return 0


def _generators(cfg, reasoner: str | None, verifier: str | None) -> dict:
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    out = {}
    for role, path in (("reasoner", reasoner), ("verifier", verifier)):
        if path is not None:
            model, tok = load_model(str(path), kind="causal", dtype="float32", device="auto")
            out[role] = HFGenerator(model.eval(), tok, batch_size=cfg.protocol.gen_batch_size)
    return out


def cmd_eval(run: Run) -> int:
    import torch
    from shared.eval import write_results

    from arr.evaluate import evaluate_protocol, probe
    from arr.evidence import probe_items
    from arr.replicate import _extras, row_metrics
    from arr.train import build_evidence

    cfg, args = run.cfg, run.args
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    verifier = not args.no_verifier
    data = _data(cfg)
    if not data["test"]:
        raise ValueError("arr eval: no test records (data.test_file or the synthetic KB)")
    gens = _generators(cfg, args.reasoner, args.verifier if verifier else None)
    test = evaluate_protocol(cfg, gens, build_evidence(cfg, data["corpus"], seed=cfg.eval.seed), data["test"],
                             verifier=verifier)
    probed = None
    if verifier and all(r.get("sub_questions") for r in data["test"]):
        items = probe_items(data["test"], build_evidence(cfg, data["corpus"]), cfg.probe.items, cfg.probe.seed)
        probed = probe(cfg, gens["verifier"], items)
    row = {"method": "arr" if verifier else "reasoner_only", "metrics": row_metrics(test, probed)}
    _print_row(row)
    path = write_results(run.out, "arr", __version__, "eval", [row], cfg, cfg.seed, False, _data_info(cfg, data),
                         started, time.perf_counter() - t0, extra={"eval": _extras(test, probed)})
    print(f"results: {path}")
    return 0


def cmd_probe(run: Run) -> int:
    import torch

    from arr.data import check_record
    from arr.evaluate import probe
    from arr.evidence import probe_items
    from arr.train import build_evidence

    cfg = run.cfg
    torch.set_num_threads(cfg.rl.threads)
    data = _data(cfg)
    for i, rec in enumerate(data["test"]):
        check_record(rec, cfg.data.test_file or "<synthetic test>", i + 1, need_hops=True)
    gens = _generators(cfg, None, run.args.verifier)
    items = probe_items(data["test"], build_evidence(cfg, data["corpus"]), cfg.probe.items, cfg.probe.seed)
    result = probe(cfg, gens["verifier"], items)
    result.pop("per_hop")
    print(json.dumps(result, indent=2))
    return 0


def cmd_warmstart(run: Run) -> int:
    from arr.replicate import warm_paths

    paths = warm_paths(run.cfg, _data(run.cfg), run.out, run.log)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_replicate(run: Run) -> int:
    from arr.replicate import replicate

    # replicate() loads the same config and claims the folder itself (finished pieces are reused)
    path = replicate(quick=run.args.quick, out=run.out, seed=run.seed if run.seed is not None else 0,
                     config=run.config_path, overrides=run.overrides, seeds=run.args.seeds, rows=_rows(run.args),
                     progress=run.progress, pilot=run.args.pilot)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reasoner", required=True, help="saved reasoner (or shared) policy folder")
    p.add_argument("--verifier", help="saved verifier policy folder")
    p.add_argument("--no-verifier", action="store_true", help="the reasoner alone on raw documents")


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verifier", required=True, help="saved verifier policy folder")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, 3 RL steps, small test and probe (plumbing)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated rows: reasoner_only,arr (default) and the diagnostics "
                   "arr_no_process,arr_release_adv")
    p.add_argument("--pilot", action="store_true", help="choose settings: the dev split stands in for the test split "
                   "(the test split is never evaluated)")


COMMON = {"config": _config_cls, "seed_key": "seed", "progress_key": "rl.progress"}
APP = App(
    prog="arr", version=__version__,
    description="Adversarial reasoning RAG (ARR): a reasoner and a verifier trained against each other with outcome, "
                "adversarial and token-level process rewards.",
    verbs=[
        Verb("train", "warm starts, then joint GRPO of reasoner and verifier (or the reasoner alone)", cmd_train,
             out_key="output_dir", check=_check_train, claim="none", trains=True, wandb_key="rl.wandb_project",
             dry_run=verb_dry_run("arr.dryrun:specs"), **COMMON),
        Verb("eval", "EM/F1 under the protocol and the verifier's reject rates on the probe", cmd_eval,
             arguments=_eval_args, check=_check_saved,
             default_out=lambda run: Path(run.cfg.output_dir) / "eval", **COMMON),
        Verb("probe", "the verifier's rejection probe: held-out hops with / without the gold passage", cmd_probe,
             arguments=_probe_args, check=_check_saved, out="none", **COMMON),
        Verb("warmstart", "build (or find) the cached SFT warm starts of both roles", cmd_warmstart,
             out_key="output_dir", check=_check_data, **COMMON),
        Verb("replicate", "CPU-scale replication: reasoner_only vs arr (+ warm start), probe gap", cmd_replicate,
             arguments=_replicate_args, claim="none", check=_check_replicate,
             default_config=lambda args: REPLICATE_CONFIGS / ("replicate_quick.yaml" if args.quick
                                                              else "replicate.yaml"),
             default_out=lambda run: run.cfg.output_dir,  # runs/arr_replicate(_quick) from the packaged config
             description="CPU-scale replication: reasoner_only vs arr (+ warm start), probe gap. --config replaces "
                         "the packaged replicate(_quick).yaml.", **COMMON),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())

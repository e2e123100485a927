"""Command line of `arr`: warm starts, joint training, evaluation, the rejection probe, and the replication.

    arr warmstart --config configs/train.yaml                     # build (or find) the cached warm starts
    arr train --config configs/train.yaml [--out DIR] [--seed N] [key=value ...]
    arr train --config configs/gpu_qwen2.5_3b.yaml --dry-run      # validate, build on meta, memory per process
    arr eval --config configs/eval.yaml --reasoner DIR [--verifier DIR | --no-verifier]
    arr probe --config configs/eval.yaml --verifier DIR
    arr replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows arr,reasoner_only,...]

Every known error (a bad config key or value, a malformed record, a missing file) ends the command with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from arr import __version__


def _load(args: argparse.Namespace):
    from arr.replicate import load

    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return load(args.config, overrides)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "no_progress", False)


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


def dry_run(cfg) -> int:
    """Validate the config, build each policy on the meta device and print parameters and memory per process."""
    from shared.dryrun import DryRunSpec, dry_run, format_report

    if not cfg.model.path:
        raise ValueError("--dry-run needs model.path (a hub id of a bundled architecture or a folder with "
                         "config.json); the tiny CPU policies are built on the fly")
    g = cfg.gpu
    names = {"shared": cfg.model.path} if cfg.roles.policies == "shared" else \
        {"reasoner": cfg.model.path, "verifier": cfg.model.verifier_path or cfg.model.path}
    reports = {}
    for name, model in names.items():
        spec = DryRunSpec(model=model, dtype=g.dtype, world_size=g.world_size, sharding=g.sharding,
                          micro_batch=g.micro_batch, seq_len=g.seq_len, reference_model=cfg.rl.beta > 0,
                          rollout_tokens=g.rollout_tokens)
        reports[name] = dry_run(spec)
        print(f"[{name}]\n{format_report(reports[name])}")
    total = sum(g.world_size for _ in names)
    print(f"config ok: {len(names)} polic{'y' if len(names) == 1 else 'ies'}, {total} GPUs in all "
          f"({g.world_size} per policy); rollouts {cfg.rl.prompts_per_step} questions x {cfg.rl.generations}, "
          f"lr {cfg.rl.lr}, KL {cfg.rl.beta} ({cfg.rl.kl_estimator}), schedule {cfg.train.schedule}, "
          f"advantage {cfg.advantage.form}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.dry_run:
        return dry_run(cfg)
    import torch
    from shared.atomic import save_pretrained
    from shared.config import save_config
    from shared.eval import write_results

    from arr.evaluate import evaluate_protocol, probe
    from arr.evidence import probe_items
    from arr.replicate import _extras, row_metrics, warm_paths
    from arr.train import build_evidence, build_policies, rl_train

    torch.set_num_threads(cfg.rl.threads)
    out = Path(args.out or cfg.output_dir)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    data = _data(cfg)
    if not data["train"]:
        raise ValueError("arr train: no training records (data.train_file or the synthetic KB)")
    save_config(cfg, out)
    verifier = cfg.train.verifier
    paths = warm_paths(cfg, data, out, print)
    policies = build_policies(cfg, paths, out / "rl", verifier)
    ev = build_evidence(cfg, data["corpus"], seed=cfg.evidence.seed + 1000 * cfg.seed)
    history = rl_train(cfg, policies, data["train"], ev, out / "rl", verifier, progress=_progress(args))
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
        print(rows[-1]["method"], " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}"
                                          for k, v in rows[-1]["metrics"].items()))
    path = write_results(out, "arr", __version__, "train", rows, cfg, cfg.seed, False, _data_info(cfg, data), started,
                         time.perf_counter() - t0, extra=extra)
    print(f"models: {out / 'final'}\nresults: {path}")
    return 0


def _generators(cfg, reasoner: str | None, verifier: str | None, need_reasoner: bool = True):
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    out = {}
    for role, path in (("reasoner", reasoner), ("verifier", verifier)):
        if path is None:
            continue
        if not Path(path).is_dir():
            raise FileNotFoundError(f"--{role} {path}: no model folder")
        model, tok = load_model(str(path), kind="causal", dtype="float32", device="auto")
        out[role] = HFGenerator(model.eval(), tok, batch_size=cfg.protocol.gen_batch_size)
    if need_reasoner and "reasoner" not in out:
        raise ValueError("give --reasoner DIR (a saved policy with its tokenizer)")
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from shared.config import save_config
    from shared.eval import write_results

    from arr.evaluate import evaluate_protocol, probe
    from arr.evidence import probe_items
    from arr.replicate import _extras, row_metrics
    from arr.train import build_evidence

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    if not args.no_verifier and not args.verifier:
        raise ValueError("give --verifier DIR, or --no-verifier to evaluate the reasoner alone on raw documents")
    gens = _generators(cfg, args.reasoner, None if args.no_verifier else args.verifier)
    out = Path(args.out or Path(cfg.output_dir) / "eval")
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    data = _data(cfg)
    if not data["test"]:
        raise ValueError("arr eval: no test records (data.test_file or the synthetic KB)")
    save_config(cfg, out)
    verifier = not args.no_verifier
    test = evaluate_protocol(cfg, gens, build_evidence(cfg, data["corpus"], seed=cfg.eval.seed), data["test"],
                             verifier=verifier)
    probed = None
    if verifier and all(r.get("sub_questions") for r in data["test"]):
        items = probe_items(data["test"], build_evidence(cfg, data["corpus"]), cfg.probe.items, cfg.probe.seed)
        probed = probe(cfg, gens["verifier"], items)
    row = {"method": "arr" if verifier else "reasoner_only", "metrics": row_metrics(test, probed)}
    print(row["method"], " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in row["metrics"].items()))
    path = write_results(out, "arr", __version__, "eval", [row], cfg, cfg.seed, False, _data_info(cfg, data), started,
                         time.perf_counter() - t0, extra={"eval": _extras(test, probed)})
    print(f"results: {path}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    import torch

    from arr.evaluate import probe
    from arr.evidence import probe_items
    from arr.train import build_evidence

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    gens = _generators(cfg, None, args.verifier, need_reasoner=False)
    if "verifier" not in gens:
        raise ValueError("give --verifier DIR")
    data = _data(cfg)
    from arr.data import check_record

    for i, rec in enumerate(data["test"]):
        check_record(rec, cfg.data.test_file or "<synthetic test>", i + 1, need_hops=True)
    items = probe_items(data["test"], build_evidence(cfg, data["corpus"]), cfg.probe.items, cfg.probe.seed)
    result = probe(cfg, gens["verifier"], items)
    result.pop("per_hop")
    print(json.dumps(result, indent=2))
    return 0


def cmd_warmstart(args: argparse.Namespace) -> int:
    from arr.replicate import warm_paths

    cfg = _load(args)
    out = Path(args.out or cfg.output_dir)
    paths = warm_paths(cfg, _data(cfg), out, print)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_replicate(args: argparse.Namespace) -> int:
    from arr.replicate import replicate

    rows = args.rows.split(",") if args.rows else None
    path = replicate(quick=args.quick, out=args.out, seed=args.seed, config=args.config, overrides=args.overrides,
                     seeds=args.seeds, rows=rows, progress=_progress(args), pilot=args.pilot)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arr", description="Adversarial reasoning RAG (ARR): a reasoner and a verifier trained against each other "
                                "with outcome, adversarial and token-level process rewards.")
    parser.add_argument("--version", action="version", version=f"arr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, config_required: bool = False) -> None:
        p.add_argument("--config", required=config_required, help="YAML config (keys of arr.config.ARRConfig)")
        p.add_argument("--out", help="output directory")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.schedule=alternate")

    p = sub.add_parser("train", help="warm starts, then joint GRPO of reasoner and verifier (or the reasoner alone)")
    common(p, config_required=True)
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--dry-run", action="store_true", help="validate the config, build the policies on the meta "
                   "device and print parameters and GPU memory per process; nothing is trained")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="EM/F1 under the protocol and the verifier's reject rates on the probe")
    common(p, config_required=True)
    p.add_argument("--reasoner", required=True, help="saved reasoner (or shared) policy folder")
    p.add_argument("--verifier", help="saved verifier policy folder")
    p.add_argument("--no-verifier", action="store_true", help="the reasoner alone on raw documents")
    p.set_defaults(fn=cmd_eval, seed=None)

    p = sub.add_parser("probe", help="the verifier's rejection probe: held-out hops with / without the gold passage")
    common(p, config_required=True)
    p.add_argument("--verifier", required=True, help="saved verifier policy folder")
    p.set_defaults(fn=cmd_probe, seed=None)

    p = sub.add_parser("warmstart", help="build (or find) the cached SFT warm starts of both roles")
    common(p, config_required=True)
    p.set_defaults(fn=cmd_warmstart, seed=None)

    p = sub.add_parser("replicate", help="CPU-scale replication: reasoner_only vs arr (+ warm start), probe gap")
    p.add_argument("--quick", action="store_true", help="one seed, 3 RL steps, small test and probe (plumbing)")
    p.add_argument("--out", default="runs/arr_replicate", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated rows: reasoner_only,arr (default) and the diagnostics "
                   "arr_no_process,arr_release_adv")
    p.add_argument("--config", help="config replacing the packaged replicate config")
    p.add_argument("--pilot", action="store_true", help="choose settings: the dev split stands in for the test split "
                   "(the test split is never evaluated)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_replicate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, KeyError, OSError) as err:
        text = " ".join(str(err.args[0] if isinstance(err, KeyError) and err.args else err).split())
        print(f"arr {args.command}: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

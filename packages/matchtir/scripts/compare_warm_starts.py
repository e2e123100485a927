"""Diagnostic: the quick warm start trained on the <= 0.3.0 per-turn records vs the 0.4.0 masked trace examples,
at equal budgets, scored on the DEV split (never the test split).

    uv run python packages/matchtir/scripts/compare_warm_starts.py --arm turn32 --seed 0 --out runs/ws_compare

Arms (all: the packaged quick config's SFT schedule, 200 steps, lr 3e-3 cosine, warm-up 30, same init per seed):
- `turn32`: one prompt -> completion record per assistant turn (the 0.3.0 code, reproduced below), 32 records/step;
- `trace32`: one masked token-id example per gold trace (0.4.0), 32 traces/step (64 turns);
- `trace16`: the same, 16 traces/step (32 turns, the committed 0.4.0 quick config);
- `trace16x2`: 16 traces/step and twice the steps (the 0.3.0 number of optimizer updates per epoch of turns).
Scores: teacher-forced loss and argmax accuracy on the dev gold traces in the rollout's own tokenisation (call-turn
tokens, answer tokens, the eos after each turn; `turn_exact` = every token of a call turn argmax-correct) and the
greedy dev solve F1 of `evaluate_policy`. One JSON line per run in `<out>/<arm>-seed<k>.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch
from matchtir.config import MatchTIRConfig
from matchtir.data import suite_samples, to_record
from matchtir.evaluate import evaluate_policy
from matchtir.replicate import CONFIG_DIR
from matchtir.train import build_policy, conversation_texts, env_factory_for, gold_turns, prompt_text, sft_examples
from shared.config import load_config
from shared.rl.sft import run_sft

ARMS = {"turn32": ("turn", 32, 1), "trace32": ("trace", 32, 1), "trace16": ("trace", 16, 1),
        "trace16x2": ("trace", 16, 2)}


def turn_records(samples, tok, style, env_factory, parallel):
    """The 0.3.0 warm-start records: one prompt -> completion record per assistant turn, the prompt holding the
    rendered conversation so far as text (TRL tokenises prompt and prompt + completion and appends eos)."""
    records = []
    for sample in samples:
        rec = to_record(sample, style)
        history = prompt_text(tok, rec)
        for turn, obs in gold_turns(rec, env_factory, parallel):
            records.append({"id": sample["id"], "prompt": history, "completion": turn})
            history += turn + obs
    return records


@torch.no_grad()
def teacher_forced(model, tok, examples):
    """Loss and accuracy on the trained tokens of `examples`, split into call-turn, answer-turn and eos tokens."""
    eos = tok.eos_token_id
    sums = {k: [0.0, 0, 0] for k in ("call", "answer", "eos", "all")}  # nll, correct, count
    exact, turns = 0, 0
    model.eval()
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]])
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        tgt, mask = ids[0, 1:], ex["completion_mask"][1:]
        nll = -logp.gather(1, tgt[:, None])[:, 0]
        hit = logp.argmax(-1) == tgt
        # segments: runs of mask 1; the last run is the answer turn, each run ends with eos
        runs, cur = [], []
        for i, m in enumerate(mask):
            if m:
                cur.append(i)
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        for r, run in enumerate(runs):
            kind = "answer" if r == len(runs) - 1 else "call"
            for i in run:
                k = "eos" if int(tgt[i]) == eos else kind
                for key in (k, "all"):
                    sums[key][0] += float(nll[i])
                    sums[key][1] += int(hit[i])
                    sums[key][2] += 1
            if kind == "call":
                turns += 1
                exact += int(all(bool(hit[i]) for i in run))
    out = {f"{k}_loss": s[0] / max(1, s[2]) for k, s in sums.items()}
    out |= {f"{k}_acc": s[1] / max(1, s[2]) for k, s in sums.items()}
    out["call_turn_exact"] = exact / max(1, turns)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arm", choices=sorted(ARMS), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dev", type=int, default=128)
    p.add_argument("--steps", type=int, default=0, help="override sft.steps (before the arm's multiplier)")
    p.add_argument("--out", default="runs/ws_compare")
    a = p.parse_args()
    torch.set_num_threads(1)
    fmt, batch, mult = ARMS[a.arm]
    cfg = load_config(MatchTIRConfig, CONFIG_DIR / "replicate_quick.yaml")
    steps = (a.steps or cfg.sft.steps) * mult
    cfg = dataclasses.replace(cfg, seed=a.seed, data=dataclasses.replace(cfg.data, dev_tasks=a.dev),
                              model=dataclasses.replace(cfg.model, seed=a.seed),
                              sft=dataclasses.replace(cfg.sft, batch_size=batch, steps=steps))
    d, env = cfg.data, env_factory_for(cfg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train = suite_samples(d, "train")[: d.sft_traces]
    dev = suite_samples(d, "dev")
    model, tok = build_policy(cfg, conversation_texts(suite_samples(d, "train"), d.prompt_style, env),
                              out / f"init-{a.arm}-{a.seed}")
    par = cfg.rollout.parallel_calls
    records = (turn_records(train, tok, d.prompt_style, env, par) if fmt == "turn"
               else sft_examples(train, tok, d.prompt_style, env, par))
    t0 = time.perf_counter()
    settings = dataclasses.replace(cfg.sft, output_dir=str(out / f"trl-{a.arm}-{a.seed}"), seed=a.seed)
    model, logs = run_sft(model, tok, records, settings, source="gold traces")
    sft_s = time.perf_counter() - t0
    dev_examples = sft_examples(dev, tok, d.prompt_style, env, par)
    tf = teacher_forced(model, tok, dev_examples)
    t1 = time.perf_counter()
    greedy = evaluate_policy(cfg, model, tok, dev, seed=a.seed)
    row = {"arm": a.arm, "seed": a.seed, "format": fmt, "batch": batch, "steps": steps, "records": len(records),
           "dev_tasks": len(dev), "sft_seconds": round(sft_s, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
           "train_loss": [[x["step"], round(x["loss"], 4)] for x in logs if "loss" in x],
           **{f"dev_{k}": round(v, 4) for k, v in tf.items()}, **{f"dev_{k}": v for k, v in greedy.items()},
           "load": os.getloadavg()[0]}
    (out / f"{a.arm}-seed{a.seed}.json").write_text(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()

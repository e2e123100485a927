"""The shared tokenizer and the two warm starts (mask roles, monolithic agent), built once and cached by settings.

- Tokenizer: a byte-level BPE trained on the corpus and the oracle texts of both rows, with the roles' tags
  (`<q1>`..., `<final_answer>`, `<evidence>`, `<Update>`, `<Add>`, `<end>`, Search-R1's tags) as single tokens. One
  tokenizer serves both rows, so their context counts are in the same units.
- mask warm start: SFT on the oracle's per-call prompt -> reply records (`oracle.py`; loss on the reply and its
  eos): every call is a single-turn sample, as in RL.
- monolithic warm start: SFT on the oracle's Search-R1 transcripts as token ids (observations mask 0).
Both train with `shared.rl.sft_plain.run_plain_sft` (the loss of `run_sft` without TRL's chunked kernel, about 4x
cheaper per step on these tiny policies on CPU).

Each is a `shared.rl.warmstart.cached_sft_policy` folder keyed by everything that shapes its weights (model, data,
prompt and loop settings, SFT settings, the records' hash), under `warm_start.cache_dir`; every seed of a run
starts from the same warm start, so seed spread measures RL, not warm-start luck. `policy_paths` returns both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.atomic import cached_dir

from mask.config import MaskConfig

ROWS = ("mask", "monolithic")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shared_key(cfg: MaskConfig) -> dict[str, Any]:
    """What shapes the oracle texts and the tokenizer: data, loop, prompt, memory and parse settings."""
    data = dataclasses.asdict(cfg.data)
    for k in ("n_test", "n_train"):
        data.pop(k)
    return {"data": data, "loop": dataclasses.asdict(cfg.loop), "prompt": dataclasses.asdict(cfg.prompt),
            "memory": dataclasses.asdict(cfg.memory), "parse": dataclasses.asdict(cfg.parse),
            "monolithic": dataclasses.asdict(cfg.monolithic)}


def mask_records(cfg: MaskConfig, questions: Sequence[Mapping[str, Any]], retrieve: Callable,
                 tokenizer: Any = None) -> list[dict[str, Any]]:
    """Per-call prompt -> reply records of the oracle on `questions`."""
    from mask.oracle import oracle_episode

    out = []
    for q in questions:
        out += oracle_episode(q, retrieve, cfg, tokenizer)[0]
    return out


def cache_root(cfg: MaskConfig, run_dir: str | Path) -> Path:
    if cfg.warm_start.cache_dir:
        return Path(cfg.warm_start.cache_dir).expanduser()
    return Path(run_dir) / "warm_starts"


def cached_tokenizer(cfg: MaskConfig, root: Path, sft_questions: Sequence[Mapping[str, Any]], corpus: Sequence[dict],
                     retriever: Any, retrieve: Callable) -> Any:
    """The shared BPE tokenizer (built once per settings, saved with save_pretrained)."""
    from transformers import AutoTokenizer

    settings = {"kind": "tokenizer", "vocab_size": cfg.model.vocab_size, **shared_key(cfg)}

    def build(tmp: Path) -> dict[str, Any]:
        from shared.modeling.tiny import EXTRA_TAGS, build_tokenizer

        from mask.baseline import oracle_texts

        texts = [d["contents"] for d in corpus]
        for r in mask_records(cfg, sft_questions, retrieve):
            texts += [r["prompt"], r["completion"]]
        for q in sft_questions:
            texts += oracle_texts(cfg, q, retriever)
        tok = build_tokenizer(texts, kind="bpe", vocab_size=cfg.model.vocab_size, extra_tags=EXTRA_TAGS)
        tok.save_pretrained(tmp)
        return {"texts": len(texts)}

    path, _ = cached_dir(root / f"tokenizer-{_digest(settings)}", settings, build)
    return AutoTokenizer.from_pretrained(str(path))


def _build_model(cfg: MaskConfig, tokenizer: Any, max_positions: int) -> Callable[[Path], tuple[Any, Any]]:
    def build(scratch: Path) -> tuple[Any, Any]:
        from shared.modeling import load_model
        from shared.modeling.tiny import tiny_causal_lm

        m = cfg.model
        path = tiny_causal_lm(scratch, tokenizer=tokenizer, hidden=m.hidden, layers=m.layers, heads=m.heads,
                              ffn=m.ffn, seed=m.seed, max_positions=max_positions)
        return load_model(str(path), kind="causal", dtype="float32", device="cpu")

    return build


def cached_policy(cfg: MaskConfig, row: str, root: Path, tokenizer: Any, records: Sequence[Mapping[str, Any]],
                  val: Callable[[Any, Any], float] | None = None, log: Callable[[str], Any] = print) -> Path:
    """The row's warm-start folder (built on the first call with these settings, reused afterwards). `val(model,
    tokenizer)` is the early-stopping measure (greedy dev F1), stopping at `warm_start.target_f1`."""
    from shared.rl.sft_plain import run_plain_sft
    from shared.rl.warmstart import cached_sft_policy

    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}; known: {ROWS}")
    ws = cfg.warm_start
    steps = ws.mask_steps if row == "mask" else ws.monolithic_steps
    positions = cfg.model.max_positions if row == "mask" else cfg.monolithic.max_positions
    sft = dataclasses.replace(cfg.sft, steps=steps, seed=cfg.model.seed, max_length=max(cfg.sft.max_length, positions))
    if row == "monolithic":
        sft = dataclasses.replace(sft, batch_size=ws.monolithic_batch_size)
    target = ws.target_f1 if val is not None and ws.target_f1 > 0 else None
    key = {"row": row, "sft_engine": "plain", "model": {**dataclasses.asdict(cfg.model), "max_positions": positions},
           "tokenizer": _digest(tokenizer.get_vocab()), "val": f"greedy F1, first {ws.val_questions} dev questions"
           if target is not None else None, **shared_key(cfg)}
    t0 = time.perf_counter()
    path = cached_sft_policy(root / f"{row}_sft-{_digest(key)}", _build_model(cfg, tokenizer, positions), records,
                             val_fn=val if target is not None else None, target=target, settings=sft,
                             eval_every=ws.eval_every, key=key, sft_fn=run_plain_sft)
    log(f"{row} warm start: {path} ({time.perf_counter() - t0:.0f}s, {len(records)} records, <= {steps} steps)")
    return path


def policy_paths(cfg: MaskConfig, run_dir: str | Path, splits: Mapping[str, list], corpus: Sequence[dict],
                 retriever: Any, retrieve: Callable, rows: Sequence[str] = ROWS,
                 log: Callable[[str], Any] = print) -> dict[str, Path]:
    """{row: warm-start folder} for the rows asked, building the tokenizer and the missing warm starts."""
    from mask.baseline import oracle_example
    from mask.evaluate import evaluate

    root = cache_root(cfg, run_dir)
    tok = cached_tokenizer(cfg, root, splits["sft"], corpus, retriever, retrieve)
    val_set = splits["dev"][: cfg.warm_start.val_questions]
    out = {}
    for row in rows:
        if row == "mask":
            records = [{"prompt": r["prompt"], "completion": r["completion"]}
                       for r in mask_records(cfg, splits["sft"], retrieve, tok if cfg.prompt.chat else None)]
        else:
            records = [{k: v for k, v in oracle_example(cfg, tok, q, retriever).items() if k != "id"}
                       for q in splits["sft"]]

        def val(model: Any, tokenizer: Any, row: str = row) -> float:
            f1 = evaluate(cfg, row, model, tokenizer, val_set, retriever, retrieve)["f1"]
            log(f"{row} warm start: greedy F1 {f1:.3f} on {len(val_set)} dev questions")
            return f1

        out[row] = cached_policy(cfg, row, root, tok, records, val if val_set else None, log)
    return out

"""The replication's SFT warm start, built once per (settings, seed) and cached on disk.

The copy suite's tiny policy learns the call format within ~200 SFT steps but copies argument values only after
~1,000 (see the README's calibration), so the warm start is long (two stages, ~1,500 steps) and is the most
expensive part of a replication. Stage 1 is `cfg.sft`; stage 2 (`cfg.warm_start.stage2_*`) continues from the
stage-1 weights at a lower lr with a fresh warm-up. With `warm_start.stage1_seed >= 0` stage 1 is trained once with
that seed and every seed's stage 2 branches from it; otherwise each seed trains both stages.

Every finished model is keyed by a hash of all settings that shape its weights (model, data, prompt style,
parallel calls, the SFT stages) plus its seed, built in a temporary folder and renamed into place (os.replace):
the RL rows of a seed, reruns and other output folders with the same settings start from the same weights, and an
interrupted build never leaves a half-written model. The stamp `warmstart.json` holds the settings, each stage's
losses and the seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.atomic import cached_dir
from shared.rl.warmstart import SFT_STAMP_IGNORED

from matchtir.config import MatchTIRConfig

STAMP = "warmstart.json"
# how the gold traces are fed to SFT: one masked token-id example per trace (0.4.0); the per-turn prompt ->
# completion records of earlier versions trained other weights, so their cached models are not reused
SFT_FORMAT = "trace-masked"
# fields that do not change the trained weights (the seed is keyed on its own, at the top of the settings); report_to
# joined in 0.4.1, so caches built by 0.4.0 are rebuilt once
_SFT_IGNORED = (*SFT_STAMP_IGNORED, "seed")


def stage1_settings(cfg: MatchTIRConfig, seed: int) -> dict[str, Any]:
    """Everything that determines the stage-1 weights of a seed."""
    sft = {k: v for k, v in dataclasses.asdict(cfg.sft).items() if k not in _SFT_IGNORED}
    data = dataclasses.asdict(cfg.data)
    data.pop("test_tasks")
    data.pop("dev_tasks")
    return {"seed": seed, "model": dataclasses.asdict(cfg.model), "data": data, "sft": sft,
            "parallel_calls": cfg.rollout.parallel_calls, "sft_format": SFT_FORMAT}


def warm_start_settings(cfg: MatchTIRConfig, seed: int) -> dict[str, Any]:
    """Everything that determines a seed's final warm-start weights (the cache key's content)."""
    ws = cfg.warm_start
    if ws.stage2_steps <= 0:
        return stage1_settings(cfg, ws.stage1_seed if ws.stage1_seed >= 0 else seed)
    stage2 = {"steps": ws.stage2_steps, "lr": ws.stage2_lr, "warmup_steps": ws.stage2_warmup_steps}
    return {"seed": seed, "stage1": stage1_settings(cfg, ws.stage1_seed if ws.stage1_seed >= 0 else seed),
            "stage2": stage2}


def settings_key(settings: dict[str, Any]) -> str:
    """Folder name of a cached model: `<16 hex of the settings hash>-seed<seed>`."""
    blob = json.dumps(settings, sort_keys=True).encode()
    return f"{hashlib.sha256(blob).hexdigest()[:16]}-seed{settings['seed']}"


def warm_start_key(cfg: MatchTIRConfig, seed: int) -> str:
    return settings_key(warm_start_settings(cfg, seed))


def _cache_root(cfg: MatchTIRConfig, run_dir: str | Path) -> Path:
    """The cache folder, or (no cache) a folder beside the run's seed folders, shared by its seeds."""
    if cfg.warm_start.cache_dir:
        return Path(cfg.warm_start.cache_dir).expanduser()
    return Path(run_dir).parent / "warm_starts"


def _losses(logs: list[dict]) -> list[list[float]]:
    return [[float(x["step"]), float(x["loss"])] for x in logs if "loss" in x and "step" in x]


def _sft_stage(cfg: MatchTIRConfig, sft: Any, seed: int, model: Any, tok: Any, out: Path, log: Any
               ) -> tuple[Any, dict]:
    """One SFT stage on the gold traces; returns the trained model and the stage's record for the stamp."""
    from matchtir.data import suite_samples
    from matchtir.train import warm_start

    t0 = time.perf_counter()
    train = suite_samples(cfg.data, "train")[: cfg.data.sft_traces]
    model, logs = warm_start(dataclasses.replace(cfg, seed=seed, sft=sft), model, tok, train, out / "trl")
    shutil.rmtree(out / "trl", ignore_errors=True)
    log(f"[seed {seed}] warm-start SFT: {sft.steps} steps at lr {sft.lr} ({time.perf_counter() - t0:.0f}s)")
    return model, {"steps": sft.steps, "lr": sft.lr, "losses": _losses(logs), "seconds": time.perf_counter() - t0}


def _build_stage1(cfg: MatchTIRConfig, seed: int, out: Path, log: Any) -> tuple[Any, Any, list[dict]]:
    from matchtir.data import suite_samples
    from matchtir.train import build_policy, conversation_texts, env_factory_for

    d = cfg.data
    texts = conversation_texts(suite_samples(d, "train"), d.prompt_style, env_factory_for(cfg))
    model, tok = build_policy(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, seed=seed)), texts,
                              out / "init")
    shutil.rmtree(out / "init", ignore_errors=True)
    stages = []
    if cfg.sft.steps > 0:
        model, record = _sft_stage(cfg, cfg.sft, seed, model, tok, out, log)
        stages.append(record)
    return model, tok, stages


def _stage2_sft(cfg: MatchTIRConfig) -> Any:
    ws = cfg.warm_start
    return dataclasses.replace(cfg.sft, steps=ws.stage2_steps, lr=ws.stage2_lr, warmup_steps=ws.stage2_warmup_steps)


def _cached(target: Path, settings: dict[str, Any], build: Callable[[Path], tuple[Any, Any, list[dict]]]
            ) -> tuple[Path, bool]:
    """`target` when it holds a finished model with `settings`, else build it (shared.atomic.cached_dir: in a
    temporary folder, renamed into place); the flag says it was a cache hit. A folder with other settings is an
    error."""

    def build_into(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        model, tok, stages = build(tmp)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        return {"stages": stages, "seconds": time.perf_counter() - t0}

    return cached_dir(target, settings, build_into, stamp=STAMP)


def cached_warm_start(cfg: MatchTIRConfig, seed: int, run_dir: str | Path, log: Any = print) -> tuple[Path, bool]:
    """Path of the seed's finished warm start (building what is missing: the shared stage 1, then the seed's
    stage 2, or both stages for the seed); the flag says the final model was a cache hit."""
    from shared.modeling import load_model

    root, ws = _cache_root(cfg, run_dir), cfg.warm_start
    s1_seed = ws.stage1_seed if ws.stage1_seed >= 0 else seed
    s1 = stage1_settings(cfg, s1_seed)
    if ws.stage2_steps <= 0:
        return _cached(root / settings_key(s1), s1, lambda out: _build_stage1(cfg, s1_seed, out, log))
    final = warm_start_settings(cfg, seed)
    if ws.stage1_seed < 0:  # both stages for this seed, in one build

        def build_both(out: Path) -> tuple[Any, Any, list[dict]]:
            model, tok, stages = _build_stage1(cfg, seed, out, log)
            model, record = _sft_stage(cfg, _stage2_sft(cfg), seed, model, tok, out, log)
            return model, tok, [*stages, record]

        return _cached(root / settings_key(final), final, build_both)
    target = root / settings_key(final)
    if (target / STAMP).exists():
        return _cached(target, final, lambda out: (None, None, []))
    base, _ = _cached(root / settings_key(s1), s1, lambda out: _build_stage1(cfg, s1_seed, out, log))

    def build_stage2(out: Path) -> tuple[Any, Any, list[dict]]:
        model, tok = load_model(str(base), kind="causal", dtype="float32", device="auto")
        model, record = _sft_stage(cfg, _stage2_sft(cfg), seed, model, tok, out, log)
        return model, tok, [record]

    return _cached(target, final, build_stage2)

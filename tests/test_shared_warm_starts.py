"""Warm starts that two packages share are one folder: sage's arithmetic warm start and huijin's general base ask
`shared.rl.warmstart.sft_arithmetic_policy` for the same settings and no folder of their own, so the shared cache
builds the model once (a leaderboard running both waits on one lock instead of training twice)."""

from pathlib import Path

import pytest
import shared.rl.warmstart as warmstart

REAL = warmstart.sft_arithmetic_policy


class Asked(Exception):
    pass


def _ask(monkeypatch, call) -> tuple[tuple, dict]:
    def fake(*args, **kwargs):
        raise Asked(args, kwargs)

    monkeypatch.setattr(warmstart, "sft_arithmetic_policy", fake)
    with pytest.raises(Asked) as got:
        call()
    return got.value.args


def _settings(args: tuple, kwargs: dict) -> dict:
    import inspect

    bound = inspect.signature(REAL).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


@pytest.mark.parametrize("quick", [True, False])
def test_sage_warm_start_and_huijin_base_are_one_shared_folder(monkeypatch, tmp_path, quick):
    monkeypatch.delenv("SAGE_CACHE", raising=False)
    import huijin
    from huijin.recipe import load_recipe
    from huijin.trainers import build_init
    from sage.replicate import replicate_config, warm_start

    recipe = load_recipe(Path(huijin.__file__).parent / "configs" / ("replicate_quick.yaml" if quick else "replicate.yaml"))
    sage_asked = _settings(*_ask(monkeypatch, lambda: warm_start(replicate_config(quick), 0)))
    huijin_asked = _settings(*_ask(monkeypatch, lambda: build_init(recipe, tmp_path / "init")))
    assert sage_asked["out_dir"] is None and huijin_asked["out_dir"] is None  # both in the shared cache
    assert sage_asked == huijin_asked

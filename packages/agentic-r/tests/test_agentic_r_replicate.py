"""The quick replication end to end (slow: minutes on 2 CPU cores) and the shipped configs."""

from pathlib import Path

import pytest
from agentic_r.config import AgenticRConfig
from shared.config import load_config
from shared.eval import read_results

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["replicate.yaml", "replicate_tiny.yaml", "gpu_llm.yaml"])
def test_configs_load_and_name_their_command(name):
    path = CONFIGS / name
    first = path.read_text().splitlines()[0]
    assert first.startswith("# uv run agentic-r ") and f"configs/{name}" in first
    cfg = load_config(AgenticRConfig, path)
    assert cfg.train.tau == 0.01 and cfg.label.candidates_k == 20 and cfg.label.num_negatives == 15


@pytest.mark.slow
def test_quick_replication_shows_the_claim(tmp_path):
    from agentic_r.replicate import replicate

    replicate(tmp_path, quick=True, progress=False)
    doc = read_results(tmp_path)
    rows = {r["method"]: r["metrics"] for r in doc["rows"]}
    assert list(rows) == ["base", "round0", "round1"]
    assert rows["round0"]["recall@5_subquery"] > rows["base"]["recall@5_subquery"]
    assert rows["round0"]["agent_em"] > rows["base"]["agent_em"]
    assert rows["round1"]["recall@5_subquery"] >= rows["round0"]["recall@5_subquery"]
    assert doc["models"]["agent"] == "kb-reader-agent (deterministic)"
    assert (tmp_path / "config.yaml").exists()

"""tools/gpu/check.sh is not dead code: its CPU smoke mode runs every piece (the engines that need a GPU replaced by
the stand-ins each piece names), prints one table and exits 0; a failing piece makes it exit 1 with a FAIL row, a
missing package is a SKIP row naming it, and the bandwidth arithmetic of the throughput piece is checked by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tools" / "gpu" / "check.sh"
sys.path.insert(0, str(ROOT / "tools" / "gpu"))


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    table = tmp_path / "table.json"
    proc = subprocess.run(["bash", str(CHECK), *args, "--work", str(tmp_path / "work"), "--json", str(table)],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, **env})
    return proc, json.loads(table.read_text()) if table.is_file() else None


def test_cpu_smoke_runs_every_piece_and_prints_one_table(tmp_path):
    from check import ORDER

    proc, doc = _run(tmp_path, "--cpu-smoke")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = doc["rows"]
    assert list(dict.fromkeys(r["piece"] for r in rows)) == ORDER  # every piece, in order
    status = {(r["piece"], r["check"]): r["status"] for r in rows}
    assert status[("fsdp_accelerate", "-")] == "SKIP"  # accelerate's FSDP is GPU-only; the fsdp piece ran FSDP2
    assert all(s == "PASS" for (piece, _), s in status.items() if piece != "fsdp_accelerate")
    packages = [r["check"].split()[0] for r in rows if r["piece"] == "packages"]
    assert packages == ["dome", "cocoa", "sage", "agentic-r", "matchtir", "rose"]
    fsdp = next(r for r in rows if r["piece"] == "fsdp")
    assert "DTensor" in fsdp["check"]  # the trainer really ran on sharded parameters
    assert "GPU check, CPU smoke" in proc.stdout and f"{len(rows) - 1} passed, 0 failed, 1 skipped" in proc.stdout


def test_a_failing_piece_exits_1_and_a_missing_package_is_skipped(tmp_path):
    proc, doc = _run(tmp_path, "--cpu-smoke", "--only", "env,logsoftmax,faiss", GPU_CHECK_FAIL="logsoftmax",
                     GPU_CHECK_HIDE="faiss")
    assert proc.returncode == 1
    rows = {r["piece"]: r for r in doc["rows"]}
    assert rows["env"]["status"] == "PASS"
    assert rows["logsoftmax"]["status"] == "FAIL" and "injected" in rows["logsoftmax"]["detail"]
    assert rows["faiss"]["status"] == "SKIP" and "faiss is not installed" in rows["faiss"]["detail"]
    assert "1 passed, 1 failed, 1 skipped" in proc.stdout


def test_unknown_piece_is_refused(tmp_path):
    proc, _ = _run(tmp_path, "--only", "nope")
    assert proc.returncode == 2 and "unknown piece(s) nope" in proc.stderr


def test_bandwidth_fraction_by_hand():
    from common import Context
    from throughput import _fraction, _sizes

    ctx = Context(device="cuda", smoke=False, work=Path("."), bandwidth_tbs=4.8)
    # 3 decode steps of 2 sequences after a 10-token prompt: 3 reads of 1 GB of weights + KV of 11, 12, 13 tokens
    tb_s, frac = _fraction(ctx, 1e9, 1000.0, batch=2, prompt=10, new=3, seconds=1.0)
    assert tb_s == pytest.approx((3e9 + 2 * 1000 * (11 + 12 + 13)) / 1e12)
    assert frac == pytest.approx(tb_s / 4.8)
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 bytes = 128 KiB per token
    weights, kv = _sizes({"num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
                          "num_hidden_layers": 32}, 8_030_261_248, 2)
    assert weights == 2 * 8_030_261_248 and kv == 131_072

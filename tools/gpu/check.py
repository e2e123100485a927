"""The GPU check's driver: run every piece in its own process, print one table, exit 1 if anything failed.

    tools/gpu/check.sh                  # on a machine with one CUDA GPU (under 8 minutes), offline
    tools/gpu/check.sh --cpu-smoke      # the same pieces on the CPU with stand-ins (what CI runs)
    tools/gpu/check.sh --only rl_hf,faiss --json table.json

Each piece (`tools/gpu/pieces.py`) runs as `python tools/gpu/pieces.py PIECE ...` under a time limit and writes its
rows; a piece that crashes, hangs or writes nothing is one FAIL row. A missing package is a SKIP row that names it.
The exit status is 1 when any row FAILed, 2 on bad arguments, else 0 (SKIPs do not fail the check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["env", "logsoftmax", "rl_hf", "rl_vllm", "faiss", "fsdp", "fsdp_accelerate", "packages", "throughput"]
# seconds each piece may take on the GPU (the sum stays under 8 minutes); the smoke mode allows more (a busy CPU)
LIMITS = {"env": 20, "logsoftmax": 25, "rl_hf": 35, "rl_vllm": 80, "faiss": 30, "fsdp": 35, "fsdp_accelerate": 50,
          "packages": 75, "throughput": 120}  # 470 s in all
SMOKE_FACTOR = 6


def run(pieces: list[str], device: str, work: Path, limit: float, bandwidth: float | None) -> list[dict]:
    """One worker process for `pieces` (in order); pieces it did not report on are FAIL rows saying why."""
    name = "+".join(pieces)
    out = work / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "pieces.py"), ",".join(pieces), "--device", device, "--work", str(work),
           "--json", str(out)]
    if bandwidth:
        cmd += ["--bandwidth-tbs", str(bandwidth)]
    start = time.perf_counter()
    why = ""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        (work / f"{name}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()][-1:] or ["no output"]
            why = f"worker exit {proc.returncode}: {tail[0][:240]} (log: {work / (name + '.log')})"
    except subprocess.TimeoutExpired:
        why = f"did not finish within {limit:.0f} s"
    rows = json.loads(out.read_text()) if out.is_file() else []
    done = {r["piece"] for r in rows}
    seconds = time.perf_counter() - start
    rows += [dict(piece=p, check="-", status="FAIL", seconds=seconds, figures="", detail=why or "no result written")
             for p in pieces if p not in done]
    return rows


def table(rows: list[dict], header: str) -> str:
    cols = [("piece", 15), ("check", 60), ("status", 6), ("s", 6)]
    lines = [header, "  ".join(name.ljust(w) for name, w in cols) + "  figures / detail"]
    for r in rows:
        cells = [str(r["piece"])[:15].ljust(15), str(r["check"])[:60].ljust(60), r["status"].ljust(6),
                 f"{r['seconds']:6.1f}"]
        text = r["figures"] + (("; " if r["figures"] else "") + r["detail"] if r["detail"] else "")
        lines.append("  ".join(cells) + "  " + text)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/gpu/check.sh", description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true", help="run every piece on the CPU with stand-ins (for CI)")
    p.add_argument("--only", default="", help=f"comma-separated pieces (default: all of {','.join(ORDER)})")
    p.add_argument("--work", type=Path, default=None, help="folder for models and logs (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--bandwidth-tbs", type=float, default=None, help="memory-bandwidth ceiling (default 4.8, H200)")
    a = p.parse_args(argv)
    pieces = [x.strip() for x in a.only.split(",") if x.strip()] or ORDER
    unknown = [x for x in pieces if x not in ORDER]
    if unknown:
        print(f"tools/gpu/check.sh: unknown piece(s) {', '.join(unknown)}; known: {', '.join(ORDER)}", file=sys.stderr)
        return 2
    device = "cpu" if a.cpu_smoke else "cuda"
    work = a.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    rows: list[dict] = []
    # GPU: one process per piece, so a CUDA fault or a hung engine costs only its piece. CPU smoke: one process for
    # all (imports paid once; nothing there can wedge a device)
    groups = [pieces] if a.cpu_smoke else [[x] for x in pieces]
    for group in groups:
        limit = sum(LIMITS[x] for x in group) * (SMOKE_FACTOR if a.cpu_smoke else 1)
        rows += run(group, device, work, limit, a.bandwidth_tbs)
        print(f"[{time.perf_counter() - started:6.1f} s] {', '.join(group)}: "
              + ", ".join(r["status"] for r in rows if r["piece"] in group), file=sys.stderr, flush=True)
    mode = "CPU smoke (stand-ins, not GPU figures)" if a.cpu_smoke else "GPU"
    print(table(rows, f"GPU check, {mode}, {time.perf_counter() - started:.0f} s, work folder {work}"))
    if a.json:
        a.json.write_text(json.dumps({"mode": mode, "seconds": time.perf_counter() - started, "rows": rows}, indent=1))
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

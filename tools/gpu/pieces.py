"""The pieces of the GPU check, and the worker that runs one of them: `python tools/gpu/pieces.py PIECE --device cuda
--work DIR --json OUT` writes the piece's rows (JSON) to OUT. `tools/gpu/check.py` runs every piece this way, one
process each, so a CUDA fault in one cannot take the others down.

Pieces here: `env` (what the machine has), `logsoftmax` (the chunked selective log-softmax equals the full one on
the device, and its peak memory at a 152k vocabulary), `rl_hf` (two RL trainer steps on the device, HF rollouts),
`rl_vllm` (two steps with vLLM rollouts and the weight sync between them), `faiss` (GPU search equals CPU search),
`fsdp` (a 1-process FSDP2 step through the trainer, sharded weights gathered for the generator) and
`fsdp_accelerate` (the same under `accelerate launch` with configs/accelerate/fsdp.yaml). `packages` and
`throughput` live in their own modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402 - tools/gpu is not a package
    ROOT,
    Context,
    Row,
    Skip,
    Timer,
    injected_failure,
    install_test_hooks,
    installed,
    needs,
    params_changed,
    snapshot,
)

GAP_LIMIT_CUDA = 0.05  # bf16 rollouts vs bf16-autocast scoring: rounding only; a missed sync gives >> 0.1
GAP_LIMIT_CPU = 1e-4


def _gap_limit(ctx: Context) -> float:
    return GAP_LIMIT_CUDA if ctx.cuda else GAP_LIMIT_CPU


# ---- env ---------------------------------------------------------------------------------------------------------
def piece_env(ctx: Context) -> list[Row]:
    import torch

    present = [m for m in ("vllm", "faiss", "trl", "peft", "accelerate", "math_verify", "pytrec_eval", "tensorboard")
               if installed(m)]
    if ctx.cuda:
        if not torch.cuda.is_available():
            return [Row("env", "CUDA device", "FAIL", detail="torch sees no CUDA device (use --cpu-smoke on a CPU)")]
        props = torch.cuda.get_device_properties(0)
        figures = (f"{props.name}, {props.total_memory / 1024**3:.0f} GiB, cc {props.major}.{props.minor}, "
                   f"bf16 {torch.cuda.is_bf16_supported()}")
    else:
        figures = "CPU (smoke mode: engines replaced by stand-ins, figures are not GPU figures)"
    return [Row("env", "machine", "PASS", figures=figures,
                detail=f"torch {torch.__version__}; installed: {', '.join(present) or 'none of the optional ones'}")]


# ---- selective log-softmax ---------------------------------------------------------------------------------------
def piece_logsoftmax(ctx: Context) -> list[Row]:
    import torch
    import torch.nn.functional as F
    from shared.rl.losses import selective_log_softmax

    rows, width, vocab = (4, 1024, 151_936) if ctx.cuda else (2, 32, 4096)
    g = torch.Generator(device=ctx.device).manual_seed(0)
    base = torch.randn(rows, width, vocab, generator=g, device=ctx.device).to(torch.bfloat16)
    index = torch.randint(0, vocab, (rows, width), generator=g, device=ctx.device)
    weights = torch.randn(rows, width, generator=g, device=ctx.device)

    def run(fn):
        logits = base.clone().requires_grad_(True)
        if ctx.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        with Timer() as t:
            out = fn(logits)
            (out * weights).sum().backward()
            if ctx.cuda:
                torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - start) / 1024**3 if ctx.cuda else float("nan")
        return out.detach(), logits.grad.detach().float(), peak, t.seconds

    ours, grad_ours, peak_ours, s_ours = run(lambda z: selective_log_softmax(z, index))
    full, grad_full, peak_full, s_full = run(
        lambda z: torch.gather(F.log_softmax(z.float(), -1), -1, index[..., None]).squeeze(-1))
    diff = float((ours - full).abs().max())
    gdiff = float((grad_ours - grad_full).abs().max())
    # values in float32 from bf16 logits; gradients are bf16 (the logits' dtype): compare at bf16's resolution
    ok = diff < 1e-4 and gdiff <= 2**-8 * float(grad_full.abs().max()) and (not ctx.cuda or peak_ours < peak_full)
    figures = f"max |diff| {diff:.1e} (grad {gdiff:.1e} of {float(grad_full.abs().max()):.1e})"
    if ctx.cuda:
        figures += f"; peak {peak_ours:.2f} vs {peak_full:.2f} GiB ({peak_full / peak_ours:.1f}x less)"
    figures += f"; {s_ours * 1e3:.0f} vs {s_full * 1e3:.0f} ms"
    return [Row("logsoftmax", f"selective vs full, [{rows}x{width}x{vocab}] bf16", "PASS" if ok else "FAIL",
                s_ours + s_full, figures)]


# ---- RL steps ----------------------------------------------------------------------------------------------------
def _records() -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"Q: {i}+{i % 3}=?\nA: "} for i in range(16)]


def _reward(trajs, recs) -> list[float]:
    return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]


def _rl_config(ctx: Context, out: Path, **kw):
    from shared.rl.trainer import RLConfig

    return RLConfig(output_dir=str(out), steps=2, prompts_per_step=4, generations=4, max_new_tokens=16, lr=1e-2,
                    checkpoint_every=0, progress=False, threads=1 if ctx.smoke else 4, tensorboard=False, **kw)


def _two_steps(ctx: Context, piece: str, trainer, label: str) -> list[Row]:
    """Two trainer steps; PASS when the weights moved and each step's rollout-vs-trainer gap is small."""
    before = snapshot(trainer.policy)
    with Timer() as t:
        stats = trainer.train()  # cfg.steps = 2; closes the metrics sinks
    moved = params_changed(before, trainer.policy)
    gaps = [s.get("logprob_gap_mean", float("nan")) for s in stats]
    limit = _gap_limit(ctx)
    ok = moved > 0 and all(g <= limit for g in gaps)
    figures = (f"{moved} tensors moved; gap step1 {gaps[0]:.2e}, step2 (after sync) {gaps[1]:.2e} (limit {limit:g}); "
               f"{stats[-1]['step_seconds']:.2f} s/step")
    return [Row(piece, label, "PASS" if ok else "FAIL", t.seconds, figures,
                detail="" if ok else "weights did not move or the rollouts did not come from the trained weights")]


def _policy(ctx: Context, path: Path):
    from shared.modeling import load_model

    model, tok = load_model(path, device=ctx.device, dtype="float32")  # float32: the trainer autocasts on CUDA
    model.train()
    return model, tok


def piece_rl_hf(ctx: Context) -> list[Row]:
    from shared.rl.trainer import RLTrainer

    model, tok = _policy(ctx, ctx.tiny())
    trainer = RLTrainer(_rl_config(ctx, ctx.work / "rl_hf"), model, tok, _records(), _reward)
    rows = _two_steps(ctx, "rl_hf", trainer, f"2 GRPO steps, HF rollouts, autocast {trainer.autocast}")
    if ctx.cuda and trainer.autocast is None:
        rows[0].status, rows[0].detail = "FAIL", "a float32 policy on CUDA should run under bf16 autocast"
    return rows


def piece_rl_vllm(ctx: Context) -> list[Row]:
    """vLLM rollouts and the weight push after each step; smoke: a second HF generator over its own copy."""
    from shared.generation import make_generator
    from shared.rl.trainer import RLTrainer

    path = ctx.tiny()
    model, tok = _policy(ctx, path)
    if ctx.smoke:
        copy, copy_tok = _policy(ctx, path)
        generator, label = make_generator("hf", copy.eval(), copy_tok), "2 GRPO steps, stand-in for vLLM (HF copy)"
    else:
        needs("vllm", "the vLLM rollout backend")
        # the engine in this process, so the weight push after a step hands it tensors directly (collective_rpc)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        generator = make_generator("vllm", str(path), seed=0, dtype="bfloat16", gpu_memory_utilization=0.25,
                                   enforce_eager=True)
        label = "2 GRPO steps, vLLM rollouts + weight sync"
    cfg = _rl_config(ctx, ctx.work / "rl_vllm", generator_backend="hf" if ctx.smoke else "vllm")
    trainer = RLTrainer(cfg, model, tok, _records(), _reward, generator=generator)
    return _two_steps(ctx, "rl_vllm", trainer, label)


# ---- faiss -------------------------------------------------------------------------------------------------------
def piece_faiss(ctx: Context) -> list[Row]:
    import numpy as np

    needs("faiss", "dense retrieval")
    from shared.retrieval.index import DenseIndex, faiss_gpu_available

    n, dim, queries, k = (200_000, 768, 1000, 10) if ctx.cuda else (5000, 64, 50, 10)
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((n, dim)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    q = corpus[rng.choice(n, queries, replace=False)] + 0.1 * rng.standard_normal((queries, dim)).astype(np.float32)
    cpu = DenseIndex(dim, use_gpu=False)
    cpu.add(corpus)
    with Timer() as tc:
        s_cpu, i_cpu = cpu.search_rows(q, k)
    if ctx.smoke:  # stand-in for faiss-gpu: exact top-k by a numpy matrix product
        with Timer() as tg:
            sims = q @ corpus.T
            i_gpu = np.argsort(-sims, axis=1)[:, :k]
            s_gpu = np.take_along_axis(sims, i_gpu, axis=1)
        other = "numpy brute force (stand-in for faiss-gpu)"
    else:
        if not faiss_gpu_available():
            raise Skip("the installed faiss has no GPU support (faiss-cpu): install faiss-gpu to check the GPU index")
        gpu = DenseIndex(dim, use_gpu=True)
        gpu.add(corpus)
        gpu.search_rows(q[:10], k)  # warm-up
        with Timer() as tg:
            s_gpu, i_gpu = gpu.search_rows(q, k)
        other = "faiss-gpu"
    same_ids = float((np.asarray(i_cpu) == np.asarray(i_gpu)).mean())
    score_diff = float(np.abs(np.asarray(s_cpu) - np.asarray(s_gpu)).max())
    ok = same_ids >= 0.999 and score_diff < 1e-3
    figures = (f"{n}x{dim}, {queries} queries: ids equal {same_ids:.4f}, max score diff {score_diff:.1e}; "
               f"cpu {tc.seconds * 1e3:.0f} ms, {other} {tg.seconds * 1e3:.0f} ms")
    return [Row("faiss", f"flat IP top-{k}: {other} vs faiss-cpu", "PASS" if ok else "FAIL", tc.seconds + tg.seconds,
                figures)]


# ---- FSDP --------------------------------------------------------------------------------------------------------
def _fsdp_trainer(ctx: Context, out: Path, wrap: bool):
    """An RL trainer over a tiny policy sharded with FSDP2 (`wrap`: by hand, one unit per decoder layer + the root,
    as accelerate's TRANSFORMER_BASED_WRAP does; else accelerate wraps it) and a generator over its own copy, so
    the weight push after each step must gather the shards into full tensors."""
    from shared.generation import HFGenerator
    from shared.rl.trainer import RLTrainer

    path = ctx.tiny()
    model, tok = _policy(ctx, path)
    if wrap:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    copy, copy_tok = _policy(ctx, path)
    return RLTrainer(_rl_config(ctx, out), model, tok, _records(), _reward, generator=HFGenerator(copy.eval(), copy_tok))


def piece_fsdp(ctx: Context) -> list[Row]:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29600 + os.getpid() % 1000))
    dist.init_process_group("nccl" if ctx.cuda else "gloo", rank=0, world_size=1)
    try:
        if ctx.cuda:
            torch.cuda.set_device(0)
        trainer = _fsdp_trainer(ctx, ctx.work / "fsdp", wrap=True)
        kind = type(next(trainer.policy.parameters())).__name__
        rows = _two_steps(ctx, "fsdp", trainer, f"1-process FSDP2 (fully_shard), 2 steps, params {kind}")
        if kind != "DTensor":
            rows[0].status, rows[0].detail = "FAIL", f"parameters are {kind}, not sharded DTensors"
        return rows
    finally:
        dist.destroy_process_group()


def piece_fsdp_accelerate(ctx: Context) -> list[Row]:
    """`accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 1` of this worker."""
    import subprocess

    if ctx.smoke:
        raise Skip("accelerate enables FSDP only on GPUs (shared.rl.launch refuses it on a CPU); the fsdp piece "
                   "runs the same trainer under FSDP2 on the CPU")
    needs("accelerate", "accelerate launch")
    out = ctx.work / "fsdp_accelerate.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs/accelerate/fsdp.yaml"), "--num_processes", "1", str(Path(__file__).resolve()),
           "fsdp_accelerate_inner", "--device", ctx.device, "--work", str(ctx.work), "--json", str(out)]
    with Timer() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return [Row("fsdp_accelerate", "accelerate launch fsdp.yaml, 1 process", "FAIL", t.seconds,
                    detail=f"exit {proc.returncode}: {tail[0][:200]}")]
    return [Row(**r) for r in json.loads(out.read_text())]


def piece_fsdp_accelerate_inner(ctx: Context) -> list[Row]:
    trainer = _fsdp_trainer(ctx, ctx.work / "fsdp_accelerate", wrap=False)
    kind = type(next(trainer.policy.parameters())).__name__
    return _two_steps(ctx, "fsdp_accelerate", trainer, f"accelerate FSDP (fsdp.yaml), 2 steps, params {kind}")


# ---- worker ------------------------------------------------------------------------------------------------------
def _pieces() -> dict:
    from package_steps import piece_packages
    from throughput import piece_throughput

    return {"env": piece_env, "logsoftmax": piece_logsoftmax, "rl_hf": piece_rl_hf, "rl_vllm": piece_rl_vllm,
            "faiss": piece_faiss, "fsdp": piece_fsdp, "fsdp_accelerate": piece_fsdp_accelerate,
            "fsdp_accelerate_inner": piece_fsdp_accelerate_inner, "packages": piece_packages,
            "throughput": piece_throughput}


def run_piece(name: str, ctx: Context) -> list[Row]:
    """Run one piece; a missing package is a SKIP row, any other exception a FAIL row."""
    with Timer() as t:
        try:
            injected_failure(name)
            rows = _pieces()[name](ctx)
        except Skip as err:
            rows = [Row(name, "-", "SKIP", detail=str(err))]
        except ModuleNotFoundError as err:
            rows = [Row(name, "-", "SKIP", detail=f"module {err.name!r} is not installed ({err}); see "
                                                  "tools/gpu/README.md")]
        except Exception as err:  # noqa: BLE001 - every failure becomes a row of the table
            where = traceback.extract_tb(err.__traceback__)[-1]
            rows = [Row(name, "-", "FAIL", detail=f"{type(err).__name__}: {' '.join(str(err).split())[:300]} "
                                                  f"({Path(where.filename).name}:{where.lineno})")]
    for row in rows:
        row.seconds = row.seconds or t.seconds
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("piece", help="a piece, or several separated by commas (run in order in this one process)")
    p.add_argument("--device", choices=["cuda", "cpu"], required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--bandwidth-tbs", type=float, default=None)
    a = p.parse_args(argv)
    install_test_hooks()
    import torch

    torch.manual_seed(0)
    ctx = Context(device=a.device, smoke=a.device == "cpu", work=a.work)
    if a.bandwidth_tbs:
        ctx.bandwidth_tbs = a.bandwidth_tbs
    if ctx.smoke:
        torch.set_num_threads(1)
    rows: list[Row] = []
    for name in a.piece.split(","):
        rows += run_piece(name, ctx)
        a.json.write_text(json.dumps([r.as_dict() for r in rows]))  # after each piece: a crash keeps the earlier
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

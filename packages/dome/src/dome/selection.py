"""Operating-point selection for the editors: each editor's C0 weight λ chosen on dev spans at a matched forgetting
budget, so DOME and MEMIT are compared where both forget about equally little, not each at its own fixed λ.

For every λ of a small grid the editor adds all new batches from the same trained weights; the dev spans (a stream
disjoint from training and test spans) give new-document and old-document Recall@10. The chosen λ has the highest
dev new R@10 among those whose dev old R@10 is at least `before − max_old_drop`; the test spans are scored once, at
the chosen λ, by the caller. The edit vectors of the first batch do not depend on λ (it only enters the closed-form
solve), so they are optimised once and reused across the grid; later batches start from λ-dependent weights and
are optimised per λ.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

from dome.data import Query
from dome.edit import KeyValueEditor
from dome.gr import Example, GenerativeRetriever


def choose_weight(curve: list[dict], before_old: float, max_old_drop: float) -> dict:
    """The curve point (dicts with "weight", "new_recall@10", "old_recall@10") at the matched forgetting budget.

    Feasible = old R@10 ≥ before_old − max_old_drop (a 1e-9 slack absorbs float noise of recall fractions). Among
    feasible points: highest new R@10, then highest old R@10, then the larger λ (the safer edit). When no point is
    feasible, the one that forgets least (highest old R@10, then highest new R@10). Returns the point with
    "feasible" added.
    """
    if not curve:
        raise ValueError("choose_weight: empty dev curve")
    for p in curve:
        missing = {"weight", "new_recall@10", "old_recall@10"} - set(p)
        if missing:
            raise ValueError(f"choose_weight: curve point {p} lacks {sorted(missing)}")
    floor = before_old - max_old_drop - 1e-9
    feasible = [p for p in curve if p["old_recall@10"] >= floor]
    if feasible:
        best = max(feasible, key=lambda p: (p["new_recall@10"], p["old_recall@10"], p["weight"]))
    else:
        best = max(curve, key=lambda p: (p["old_recall@10"], p["new_recall@10"], p["weight"]))
    return {**best, "feasible": bool(feasible)}


def edit_batches(
    gr: GenerativeRetriever,
    editor: KeyValueEditor,
    batches: list[tuple[list[str], object, Callable[[], list[Example]]]],
    new_devs: list[list[Query]],
    evaluate: Callable[[list[Query]], dict],
    first_targets: tuple | None = None,
) -> dict:
    """Add every batch with `editor` from the weights `gr` holds now; returns per-batch logs and update seconds.

    `batches` = (doc ids, their embeddings or None, a function giving the batch's examples once its docIDs exist).
    `first_targets` = edit vectors of batch 1 optimised earlier on the same weights (their time is in the log).
    """
    logs, seconds = [], 0.0
    for b, (ids, emb, examples_of) in enumerate(batches):
        gr.add_documents(ids, emb)
        examples = examples_of()
        step = editor.edit(examples, first_targets if b == 0 else None)
        if b == 0 and first_targets is not None:
            step["seconds"] += first_targets[2]["optimise_seconds"]
        seconds += step["seconds"]
        step["dev_recall@10"] = evaluate(new_devs[b])["recall@10"]
        logs.append(step)
    return {"batches": logs, "seconds": seconds}


def weight_grid_run(
    gr: GenerativeRetriever,
    editor: KeyValueEditor,
    base: tuple[dict, dict],
    batches: list[tuple[list[str], object, Callable[[], list[Example]]]],
    new_devs: list[list[Query]],
    old_dev: list[Query],
    before_old_dev: float,
    weights: list[float],
    max_old_drop: float,
    evaluate: Callable[[list[Query]], dict],
    log=print,
    keep: tuple[float, ...] = (),
) -> dict:
    """Run the editor at every λ of `weights` from the base weights, score dev spans, choose λ (see choose_weight).

    Returns {"curve", "chosen", "states": {λ: (state_dict, scheme)} for the chosen λ and those in `keep`,
    "runs": {λ: edit_batches output}, "selection_seconds"}. The caller restores a state to score test spans.
    """
    if not weights:
        raise ValueError("weight_grid_run: empty λ grid")
    t_all = time.perf_counter()
    base_state, base_scheme = base
    # batch 1's edit vectors: optimised once on the base weights (λ-independent)
    gr.restore(base_state, base_scheme)
    ids, emb, examples_of = batches[0]
    gr.add_documents(ids, emb)
    t0 = time.perf_counter()
    first = editor.optimise_targets(examples_of())
    first[2]["optimise_seconds"] = time.perf_counter() - t0
    curve, runs, states = [], {}, {}
    for weight in weights:
        gr.restore(base_state, base_scheme)
        editor.cfg = dataclasses.replace(editor.cfg, cov_weight=float(weight))
        editor.reset_edits()
        run = edit_batches(gr, editor, batches, new_devs, evaluate, first)
        new_m = evaluate([q for dev in new_devs for q in dev])
        old_m = evaluate(old_dev)
        point = {
            "weight": float(weight), "new_recall@10": new_m["recall@10"], "new_recall@1": new_m["recall@1"],
            "old_recall@10": old_m["recall@10"], "old_recall@1": old_m["recall@1"], "update_seconds": run["seconds"],
        }
        curve.append(point)
        runs[float(weight)] = run
        states[float(weight)] = (copy.deepcopy(gr.model.state_dict()), gr.scheme.to_dict())
        log(f"  λ={weight:g}: dev new R@10 {point['new_recall@10']:.3f}, old R@10 {point['old_recall@10']:.3f} "
            f"(before {before_old_dev:.3f}), {run['seconds']:.1f}s")
    chosen = choose_weight(curve, before_old_dev, max_old_drop)
    wanted = {chosen["weight"], *map(float, keep)}
    return {
        "curve": curve,
        "chosen": chosen,
        "states": {w: s for w, s in states.items() if w in wanted},
        "runs": runs,
        "selection_seconds": time.perf_counter() - t_all,
    }

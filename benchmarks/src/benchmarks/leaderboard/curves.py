"""Training curves of the quick runs, drawn as DIR/leaderboard_curves.png (one panel per package).

Every trainer of the workspace writes `metrics.jsonl` (one JSON object per step with a `step` key; the RL engine,
the parent CLI's `Run.write_metrics`, TRL wrappers). The leaderboard reads every `metrics.jsonl` under a package's
folder, picks the curve metric by a fixed preference (reward first: it is what RL optimises; then the training
loss; then an evaluation accuracy; else the first key that is a number in every record, e.g. a method's own loss),
and draws one line per file, labelled by its folder (`seed0/km/rl`). Per-step logs kept under other names by
packages that predate the convention (`train_log.jsonl` lines, `train_log.json` lists, `logs.json` with a `logs`
list, or a `{stage: list}` whose last stage is drawn; `<row>.log.jsonl`, one per row in one folder) are read the
same way, so no package is silently missing; a package without any is labelled as such.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

PREFERENCE = ("reward", "train/reward", "rewards/mean", "train/loss", "loss", "eval/accuracy", "accuracy")
LOG_NAMES = ("metrics.jsonl", "train_log.jsonl", "train_log.json", "logs.json")
ROW_LOGS = "*.log.jsonl"  # one per-step log per row in one folder (sage: seed0/uniform.log.jsonl, ...)


@dataclass
class Curve:
    label: str
    metric: str
    steps: list[float]
    values: list[float]


def _records(path: Path) -> list[dict]:
    """Per-step records of one log file; a torn last line (a killed writer) is skipped, other bad lines too."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return []
        if isinstance(data, dict):  # {"logs": [...], ...}: a per-step list kept beside a summary
            data = data.get("logs")
        if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            data = list(data.values())[-1]  # {stage: [...]}: the last stage, the one every row of a run shares
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def read_curve(path: Path, root: Path) -> Curve | None:
    """The preferred metric's curve of one log (step from the `step` key, else the record's position)."""
    records = _records(path)
    # the preferred metrics first, then any other key that is a number in every record (e.g. a method's own loss)
    others = [k for k in (records[0] if records else {}) if k != "step" and k not in PREFERENCE
              and all(_number(r.get(k)) is not None for r in records)]
    for metric in (*PREFERENCE, *others):
        points = [(_number(r.get("step", i)), _number(r.get(metric))) for i, r in enumerate(records, start=1)]
        points = [(s, v) for s, v in points if s is not None and v is not None]
        if len(points) >= 2:
            label = str(path.parent.relative_to(root)) if path.parent != root else ""
            if path.name not in LOG_NAMES:  # a row's own log: its name says which row
                label = f"{label}/{path.name.removesuffix('.log.jsonl')}".strip("/")
            return Curve(label or path.stem, metric, [s for s, _ in points], [v for _, v in points])
    return None


def package_curves(pkg_dir: Path, limit: int = 12) -> list[Curve]:
    """Curves of every per-step log under a package's quick-run folder (metrics.jsonl preferred where a folder
    has several), the most common metric only, at most `limit` of them."""
    if not pkg_dir.is_dir():
        return []
    by_folder: dict[Path, list[Path]] = {}
    for name in LOG_NAMES:
        for path in sorted(pkg_dir.rglob(name)):
            by_folder.setdefault(path.parent, [path])  # the first name found wins: metrics.jsonl before older ones
    for path in sorted(pkg_dir.rglob(ROW_LOGS)):
        if path.parent not in by_folder or by_folder[path.parent][0].name != "metrics.jsonl":
            by_folder.setdefault(path.parent, [])
            if path not in by_folder[path.parent]:
                by_folder[path.parent].append(path)
    logs = [p for paths in by_folder.values() for p in paths]
    curves = [c for c in (read_curve(p, pkg_dir) for p in logs) if c is not None]
    if not curves:
        return []
    counts: dict[str, int] = {}
    for c in curves:
        counts[c.metric] = counts.get(c.metric, 0) + 1
    rank = {m: i for i, m in enumerate(PREFERENCE)}
    metric = max(counts, key=lambda m: (counts[m], -rank.get(m, len(rank))))
    return [c for c in curves if c.metric == metric][:limit]


def write_curves_png(entries: list, out_dir: Path) -> Path:
    """DIR/leaderboard_curves.png: per package, the training curves of its quick run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(5, max(1, len(entries)))
    rows = (len(entries) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    for ax, e in zip(axes.flat, entries):
        curves = package_curves(out_dir / e.spec.name) if e.status != "not built yet" else []
        ax.set_title(e.spec.name, fontsize=10, fontweight="bold")
        if not curves:
            ax.set_axis_off()
            why = e.status if e.status in ("not built yet", "not run", "failed", "timeout") else \
                "no per-step log\nin the quick run"
            ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, color="0.45", transform=ax.transAxes)
            continue
        for c in curves:
            ax.plot(c.steps, c.values, linewidth=1.2, marker="o" if len(c.steps) < 15 else None, markersize=2.5,
                    label=textwrap.shorten(c.label, 28, placeholder="…"))
        ax.set_title(f"{e.spec.name}: {curves[0].metric}", fontsize=10, fontweight="bold")
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(entries):]:
        ax.set_axis_off()
    fig.suptitle("Training curves of the quick runs (per-step metrics.jsonl; one line per training run)", fontsize=11)
    fig.tight_layout()
    path = out_dir / "leaderboard_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Rendering collected results: DIR/leaderboard.md (an overview, then one section per package) and two pictures,
DIR/leaderboard.png (headline metric: recorded full run beside the quick run) and DIR/leaderboard_curves.png
(training curves of the quick run, `curves.py`).

Each package's section shows two tables, labelled so that nobody mistakes one for the other: the **recorded full
run** (`recorded/<package>.json`: the figures the claim rests on, with the command, commit, date and seeds that
produced them) and the **quick run (plumbing check)** that this leaderboard command ran (or found cached). Each
table holds only that package's metrics. `value ± sd` is printed only when the run had more than one seed.
Everything here reads files only, so `leaderboard --render DIR` redraws an existing folder without running anything.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.leaderboard.recorded import RECORDED_DIR, Recorded, find_recorded, seeds_of
from benchmarks.leaderboard.registry import PackageSpec, is_built
from benchmarks.leaderboard.results import Results, Row, find_results, load_results
from benchmarks.leaderboard.runner import RunRecord, load_record, user_command

FULL_LABEL = "recorded full run"
QUICK_LABEL = "quick run (plumbing check)"


@dataclass
class Entry:
    spec: PackageSpec
    status: str
    record: RunRecord | None = None
    results: Results | None = None
    error: str = ""
    recorded: Recorded | None = None
    recorded_error: str = ""

    @property
    def command(self) -> str:
        return self.record.command if self.record and self.record.command else ""


def collect(out_dir: Path, packages: list[PackageSpec], records: dict[str, RunRecord] | None = None,
            recorded_dir: Path = RECORDED_DIR) -> list[Entry]:
    """Status, quick results and recorded full run for every package: fresh run records first, then the disk."""
    records = records or {}
    entries = []
    for spec in packages:
        record = records.get(spec.name) or load_record(out_dir, spec)
        path = find_results(out_dir / spec.name)
        results, error = None, ""
        if path is not None:
            try:
                results = load_results(path)
            except DataError as e:
                error = str(e)
        if record is not None and record.status in ("failed", "timeout", "not built yet"):
            status = record.status
        elif results is not None:
            status = record.status if record else "ok"
        elif error:
            status = "invalid results"
        elif not is_built(spec):
            status = "not built yet"
        else:
            status = "not run"
        recorded, recorded_error = None, ""
        try:
            recorded = find_recorded(spec.name, recorded_dir)
        except DataError as e:
            recorded_error = str(e)
        entries.append(Entry(spec, status, record, results if status not in ("failed", "timeout") else None, error,
                             recorded, recorded_error))
    return entries


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def _shown_metrics(names: list[str]) -> list[str]:
    """Metric columns: `<m>_std` is folded into `<m>`'s cell when both are reported."""
    return [m for m in names if not (m.endswith("_std") and m[: -len("_std")] in names)]


def _cell(metrics: dict, name: str, n_seeds: int | None = None) -> str:
    """`value ± sd` over seeds; a single-seed run (or an sd of 0 with an unknown seed count) shows the value only."""
    value, std = metrics.get(name), metrics.get(f"{name}_std")
    text = _fmt(value)
    if value is None or std is None:
        return text
    if (n_seeds is not None and n_seeds > 1) or (n_seeds is None and std > 0):
        return f"{text} ± {_fmt(std)}"
    return text


def _cmd(entry: Entry, out_dir: Path) -> str:
    return entry.command or user_command(
        entry.spec, out_dir / entry.spec.name, entry.results.quick if entry.results else True
    )


def _recorded_rows(rec: Recorded) -> tuple[Row, list[Row], str]:
    """(method row, baselines, headline metric) of a recorded run, by the same rules as results.json."""
    rows = [Row(r["method"], dict(r["metrics"])) for r in rec.rows]
    names = {rec.main_method} if rec.main_method else {rec.package, rec.package.replace("-", "_")}
    own = next((r for r in rows if r.method in names), rows[0])
    metrics = [m for r in rows for m in r.metrics]
    headline = rec.headline if rec.headline in metrics else next(iter(own.metrics))
    return own, [r for r in rows if r is not own], headline


def _quick_rows(results: Results, prefer: str = "") -> tuple[Row, list[Row], str]:
    """Method row, baselines and headline of the quick run; `prefer` (the recorded run's headline) wins when the
    quick run reports it, so both columns compare the same metric."""
    metric = prefer if prefer and prefer in results.metric_names() else results.headline()
    return results.method_row(), results.baselines(), metric


def _summary(own: Row, baselines: list[Row], metric: str, n: int | None) -> str:
    base = ", ".join(f"{b.method} {_cell(b.metrics, metric, n)}" for b in baselines) or "–"
    return f"{metric}: {own.method} **{_cell(own.metrics, metric, n)}** vs {base}"


def _table(own: Row, baselines: list[Row], n: int | None) -> list[str]:
    rows = [own, *baselines]
    names: list[str] = []
    for r in rows:
        names += [k for k in r.metrics if k not in names]
    metrics = _shown_metrics(names)
    lines = ["| method | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for r in rows:
        name = f"**{r.method}**" if r is own else r.method
        lines.append(f"| {name} | " + " | ".join(_cell(r.metrics, m, n) for m in metrics) + " |")
    return lines


def _seed_text(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"


def _package_section(e: Entry, out_dir: Path) -> list[str]:
    lines = ["", f"## {e.spec.name} — {e.spec.suite}", "", f"Claim: {e.spec.claim}.", "", f"### {FULL_LABEL}", ""]
    rec = e.recorded
    if rec is not None:
        own, base, _ = _recorded_rows(rec)
        lines.append(f"`{rec.command}` — commit `{rec.commit}`, {rec.date}, {_seed_text(rec.seeds)}, version "
                     f"{rec.version}" + (f"; data: {rec.data}" if rec.data else "") + ".")
        lines += ["", *_table(own, base, len(rec.seeds))]
        if rec.reading:
            lines += ["", f"Reading: {rec.reading}"]
    else:
        lines.append(e.recorded_error or "No recorded full run for this package.")
    lines += ["", f"### {QUICK_LABEL}", ""]
    if e.results is None:
        why = e.error or (f"see `{e.record.log}`" if e.record and e.record.log else "")
        lines.append(f"Status: {e.status}" + (f" ({why})" if why else "") + ".")
        return lines
    r = e.results
    seeds = seeds_of(r.raw)
    secs = e.record.seconds if e.record and e.record.seconds else r.seconds
    lines.append(f"`{_cmd(e, out_dir)}` — status {e.status}, {_fmt(secs)} s, {_seed_text(seeds)}, version "
                 f"{r.version}" + (f"; data: {r.data_name}" if r.data_name else "") + ".")
    own, base, _ = _quick_rows(r)
    lines += ["", *_table(own, base, len(seeds))]
    return lines


def write_markdown(entries: list[Entry], out_dir: Path, title_command: str) -> Path:
    built = sum(e.status not in ("not built yet",) for e in entries)
    lines = [
        "# Leaderboard",
        "",
        f"Produced by `{title_command}` ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{built}/{len(entries)} packages built). Every package shows two kinds of figures:",
        "",
        f"- **{FULL_LABEL}**: the figures the package's claim rests on (its full replication: more seeds, steps "
        "and test items), with the command, commit, date and seeds that produced them;",
        f"- **{QUICK_LABEL}**: the short run this command made (or found cached). It shows that the pipeline works "
        "end to end in minutes; at its size it does not test the claim.",
        "",
        "In each table the method and its baselines were measured in the same run. `value ± sd` is over seeds and "
        "printed only for runs with more than one seed; `–`: not reported or not applicable.",
        "",
        "## Overview",
        "",
        f"| package | suite | {FULL_LABEL} | {QUICK_LABEL} | status |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        metric = ""
        if e.recorded is not None:
            own, base, metric = _recorded_rows(e.recorded)
            full = _summary(own, base, metric, len(e.recorded.seeds)) + f" ({_seed_text(e.recorded.seeds)})"
        else:
            full = "–"
        if e.results is not None:
            own, base, metric = _quick_rows(e.results, metric)
            quick = _summary(own, base, metric, len(seeds_of(e.results.raw)))
        else:
            quick = "–"
        lines.append(f"| {e.spec.name} | {e.spec.suite} | {full} | {quick} | {e.status} |")
    timed = [e.record.seconds for e in entries if e.record and e.record.seconds and e.results is not None]
    if timed:
        lines += ["", f"Quick-run time of the {len(timed)} packages with results: {sum(timed) / 60:.1f} min "
                  "(cached packages count the seconds of the run that produced them)."]  # fmt: skip
    for e in entries:
        if e.status == "not built yet" and e.recorded is None:
            lines += ["", f"## {e.spec.name} — {e.spec.suite}", "", f"Not built yet. Claim to test: {e.spec.claim}."]
            continue
        lines += _package_section(e, out_dir)
    lines += [
        "",
        "Pictures: `leaderboard.png` (headline metric per package, recorded full run beside the quick run) and "
        "`leaderboard_curves.png` (training curves of the quick run, from its `metrics.jsonl` files).",
        "",
    ]
    path = out_dir / "leaderboard.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _bars(ax, e: Entry) -> None:
    """Headline metric per method: recorded full run (solid) beside the quick run (hatched)."""
    import numpy as np

    series = []  # (label, {method: (value, sd)}, metric)
    metric = ""
    if e.recorded is not None:
        own, base, metric = _recorded_rows(e.recorded)
        n = len(e.recorded.seeds)
        series.append((FULL_LABEL, {r.method: (r.metrics.get(metric), r.metrics.get(f"{metric}_std") if n > 1
                                               else None) for r in [own, *base]}))
    if e.results is not None:
        own_q, base_q, metric_q = _quick_rows(e.results, metric)
        metric = metric or metric_q
        n = len(seeds_of(e.results.raw))
        series.append((QUICK_LABEL, {r.method: (r.metrics.get(metric), r.metrics.get(f"{metric}_std") if n > 1
                                                else None) for r in [own_q, *base_q]}))
    methods: list[str] = []
    for _, values in series:
        methods += [m for m in values if m not in methods]
    width = 0.8 / max(1, len(series))
    x = np.arange(len(methods))
    for k, (label, values) in enumerate(series):
        heights = [np.nan if values.get(m, (None,))[0] is None else values[m][0] for m in methods]
        errs = [0.0 if values.get(m, (None, None))[1] is None else values[m][1] for m in methods]
        full = label == FULL_LABEL
        colours = ["#1f77b4" if i == 0 else "#9e9e9e" for i in range(len(methods))]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, color=colours,
                      alpha=1.0 if full else 0.45, hatch=None if full else "//", edgecolor="0.2", linewidth=0.5,
                      yerr=errs if any(errs) else None, capsize=2, label=label)
        for bar, v in zip(bars, heights):
            if v == v:  # not NaN
                ax.annotate(_fmt(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=6, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=7)
    ax.set_title(f"{e.spec.name}: {metric}", fontsize=10, fontweight="bold")
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(y=0.18)
    finite = [v for _, values in series for v, _ in values.values() if v is not None]
    if finite and min(finite) >= 0:  # rates and counts keep the zero baseline
        ax.set_ylim(bottom=0, top=None if max(finite) > 0 else 1)


def write_png(entries: list[Entry], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cols = min(5, max(1, len(entries)))
    rows = (len(entries) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows + 0.5), squeeze=False)
    for ax, e in zip(axes.flat, entries):
        if e.results is None and e.recorded is None:
            ax.set_axis_off()
            ax.set_title(e.spec.name, fontsize=10, fontweight="bold")
            ax.text(0.5, 0.5, e.status, ha="center", va="center", fontsize=10, color="0.45", transform=ax.transAxes)
            continue
        _bars(ax, e)
        if e.results is None:
            ax.set_xlabel(textwrap.fill(f"quick run: {e.status}", 40), fontsize=7, color="0.3")
    for ax in list(axes.flat)[len(entries):]:
        ax.set_axis_off()
    legend = [Patch(facecolor="#1f77b4", edgecolor="0.2", label=f"method, {FULL_LABEL}"),
              Patch(facecolor="#9e9e9e", edgecolor="0.2", label=f"baselines, {FULL_LABEL}"),
              Patch(facecolor="#1f77b4", alpha=0.45, hatch="//", edgecolor="0.2", label=f"method, {QUICK_LABEL}"),
              Patch(facecolor="#9e9e9e", alpha=0.45, hatch="//", edgecolor="0.2", label=f"baselines, {QUICK_LABEL}")]
    fig.legend(handles=legend, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Headline metric per package: recorded full run (solid, ± sd over seeds) beside the quick run "
                 "(hatched)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = out_dir / "leaderboard.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Rendering collected results: DIR/leaderboard.md (overview + one table per suite) and DIR/leaderboard.png.

Everything here reads results.json and run.json files only, so `leaderboard --render DIR` redraws an existing
results folder without running anything. Packages that are not built or failed stay visible with their status.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.leaderboard.registry import PackageSpec, is_built
from benchmarks.leaderboard.results import Results, find_results, load_results
from benchmarks.leaderboard.runner import RunRecord, load_record, user_command


@dataclass
class Entry:
    spec: PackageSpec
    status: str
    record: RunRecord | None = None
    results: Results | None = None
    error: str = ""

    @property
    def command(self) -> str:
        return self.record.command if self.record and self.record.command else ""


def collect(out_dir: Path, packages: list[PackageSpec], records: dict[str, RunRecord] | None = None) -> list[Entry]:
    """Status and results for every package: fresh run records first, then what is on disk."""
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
        entries.append(Entry(spec, status, record, results if status not in ("failed", "timeout") else None, error))
    return entries


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def _shown_metrics(names: list[str]) -> list[str]:
    """Metric columns: `<m>_std` is folded into `<m>`'s cell when both are reported."""
    return [m for m in names if not (m.endswith("_std") and m[: -len("_std")] in names)]


def _cell(metrics: dict, name: str) -> str:
    std = metrics.get(f"{name}_std")
    return _fmt(metrics.get(name)) + (f" ± {_fmt(std)}" if std is not None and metrics.get(name) is not None else "")


def _cmd(entry: Entry, out_dir: Path) -> str:
    return entry.command or user_command(
        entry.spec, out_dir / entry.spec.name, entry.results.quick if entry.results else True
    )


def write_markdown(entries: list[Entry], out_dir: Path, title_command: str) -> Path:
    built = sum(e.status not in ("not built yet",) for e in entries)
    lines = [
        "# Leaderboard",
        "",
        f"CPU-scale replications of each package's central claim, produced by `{title_command}` "
        f"({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; {built}/{len(entries)} packages built). "
        "Each package row comes from its `results.json`; the method and the baselines it was compared with were "
        "measured in the same run.",
        "",
        "## Overview",
        "",
        "| package | suite | status | version | headline metric | method | baselines | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        if e.results is None:
            why = e.error or (f"see `{e.record.log}`" if e.record and e.record.log else "")
            lines.append(f"| {e.spec.name} | {e.spec.suite} | {e.status} | – | – | – | {why or '–'} | – |")
            continue
        r, metric = e.results, e.results.headline()
        own = r.method_row()
        base = ", ".join(f"{b.method} {_cell(b.metrics, metric)}" for b in r.baselines()) or "–"
        secs = e.record.seconds if e.record and e.record.seconds else r.seconds
        lines.append(
            f"| {e.spec.name} | {e.spec.suite} | {e.status} | {r.version} | {metric} | "
            f"{own.method} **{_cell(own.metrics, metric)}** | {base} | {_fmt(secs)} |"
        )
    timed = [e.record.seconds for e in entries if e.record and e.record.seconds and e.results is not None]
    if timed:
        lines += ["", f"Replication time of the {len(timed)} packages with results: {sum(timed) / 60:.1f} min "
                  "(cached packages count the seconds of the run that produced them)."]  # fmt: skip
    suites: dict[str, list[Entry]] = {}
    for e in entries:
        suites.setdefault(e.spec.suite, []).append(e)
    for suite, members in suites.items():
        lines += ["", f"## {suite}", ""]
        for e in members:
            lines.append(f"- **{e.spec.name}** — {e.spec.claim}" + (f" ({e.status})" if e.results is None else ""))
        with_results = [e for e in members if e.results is not None]
        if not with_results:
            continue
        metrics: list[str] = []
        for e in with_results:
            metrics += [m for m in _shown_metrics(e.results.metric_names()) if m not in metrics]
        lines += ["", "| package | data | method | " + " | ".join(metrics) + " | command |"]
        lines.append("|" + "---|" * (len(metrics) + 4))
        for e in with_results:
            own = e.results.method_row()
            for row in [own] + e.results.baselines():
                name = f"**{row.method}**" if row is own else row.method
                cells = " | ".join(_cell(row.metrics, m) for m in metrics)
                data = e.results.data_name or "–"
                lines.append(f"| {e.spec.name} | {data} | {name} | {cells} | `{_cmd(e, out_dir)}` |")
    lines += [
        "",
        "Bold: the package's own method. `–`: metric not reported by that package. "
        "Plot: `leaderboard.png` (one panel per package, headline metric, method vs baselines).",
        "",
    ]
    path = out_dir / "leaderboard.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_png(entries: list[Entry], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(5, max(1, len(entries)))
    rows = (len(entries) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.2 * rows), squeeze=False)
    for ax, e in zip(axes.flat, entries):
        if e.results is None:
            ax.set_axis_off()
            ax.set_title(e.spec.name, fontsize=11, fontweight="bold")
            ax.text(0.5, 0.5, e.status, ha="center", va="center", fontsize=10, color="0.45", transform=ax.transAxes)
            continue
        metric = e.results.headline()
        own = e.results.method_row()
        rows_ = [own] + e.results.baselines()
        values = [float("nan") if r.metrics.get(metric) is None else r.metrics[metric] for r in rows_]
        colours = ["#1f77b4"] + ["#b0b0b0"] * (len(rows_) - 1)
        stds = [r.metrics.get(f"{metric}_std") for r in rows_]
        yerr = [0.0 if v is None else v for v in stds] if any(v for v in stds) else None
        bars = ax.bar(range(len(rows_)), values, color=colours, yerr=yerr, capsize=3 if yerr else 0)
        ax.set_xticks(range(len(rows_)), [r.method for r in rows_], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{e.spec.name}: {metric}", fontsize=10, fontweight="bold")
        for bar, v in zip(bars, values):
            if v == v:  # not NaN
                ax.annotate(_fmt(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")  # fmt: skip
        if e.results.data_name:
            ax.set_xlabel(textwrap.fill(f"data: {e.results.data_name}", 48), fontsize=7, color="0.3")
        ax.margins(y=0.15)
        finite = [v for v in values if v == v]
        if finite and min(finite) >= 0:  # rates and counts: keep the zero baseline, and a visible axis at all-zero
            ax.set_ylim(bottom=0, top=None if max(finite) > 0 else 1)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(entries) :]:
        ax.set_axis_off()
    fig.suptitle("Leaderboard: each package's method (blue) vs its baselines (grey), headline metric", fontsize=11)
    fig.tight_layout()
    path = out_dir / "leaderboard.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The stage x benchmark table as a picture: one panel per row of the replication (or one for a single recipe).

Cells hold the value; their colour runs from light (the column's worst value over all panels) to dark green (its
best), with `filings_ppl` read as lower-is-better; a benchmark not evaluated at a stage is a grey "-". Drawn with
Pillow (already a dependency of the workspace), so no plotting library is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

LOWER_IS_BETTER = ("filings_ppl",)
CELL_W, CELL_H, LABEL_W, HEAD_H = 132, 30, 150, 34


def _shade(t: float) -> tuple[int, int, int]:
    """Light (t=0) to dark green (t=1)."""
    lo, hi = (237, 248, 233), (35, 139, 69)
    return tuple(int(a + (b - a) * t) for a, b in zip(lo, hi))  # type: ignore[return-value]


def draw_stage_tables(panels: Mapping[str, Mapping[str, Mapping[str, float | None]]], benchmarks: Sequence[str],
                      path: str | Path, title: str = "") -> Path:
    """Write a PNG of `panels[name][stage][benchmark]` to `path` and return the path."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    ranges = {}
    for b in benchmarks:
        values = [row[b] for table in panels.values() for row in table.values() if row.get(b) is not None]
        ranges[b] = (min(values), max(values)) if values else (0.0, 1.0)
    heights = [HEAD_H + CELL_H * (len(table) + 1) + 10 for table in panels.values()]
    width = LABEL_W + CELL_W * len(benchmarks) + 20
    img = Image.new("RGB", (width, 40 + sum(heights)), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black", font=font)
    y = 40
    for (name, table), h in zip(panels.items(), heights):
        d.text((10, y + 8), f"row: {name}", fill="black", font=font)
        y0 = y + HEAD_H
        for j, b in enumerate(benchmarks):
            d.text((LABEL_W + j * CELL_W + 6, y0 + 8), b, fill="black", font=font)
        for i, (stage, row) in enumerate(table.items(), start=1):
            top = y0 + i * CELL_H
            d.text((10, top + 8), stage, fill="black", font=font)
            for j, b in enumerate(benchmarks):
                box = [LABEL_W + j * CELL_W, top, LABEL_W + (j + 1) * CELL_W - 2, top + CELL_H - 2]
                value = row.get(b)
                if value is None:
                    d.rectangle(box, fill=(225, 225, 225))
                    d.text((box[0] + 6, top + 8), "-", fill="black", font=font)
                    continue
                lo, hi = ranges[b]
                t = 0.5 if hi == lo else (value - lo) / (hi - lo)
                if b in LOWER_IS_BETTER:
                    t = 1.0 - t
                d.rectangle(box, fill=_shade(t))
                d.text((box[0] + 6, top + 8), f"{value:.3f}", fill="white" if t > 0.6 else "black", font=font)
        y += h
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path

"""Small inline SVG pictures of samples that are not images: a waveform per channel for a time
series, a bar per feature for a tabular row. Drawn here, from the sample's own values, so a grid
of a hundred samples needs no request per picture and no script."""

from __future__ import annotations

import itertools

import numpy as np

from tinymlaas.datasets.models import Task

WIDTH, HEIGHT = 120, 60
#: Points per drawn line at most (a 512-sample tone is drawn from its min/max envelope).
POINTS = 120
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#d97706")


def _scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo or 1.0
    return HEIGHT - 2 - (values - lo) / span * (HEIGHT - 4)


def waveform(arr: np.ndarray) -> str:
    """Each channel of a ``[length, channels]`` series as a line, all on one scale."""
    series = np.asarray(arr, dtype=np.float64).reshape(arr.shape[0], -1)
    length = series.shape[0]
    if length > POINTS:  # min and max of each bucket keep the peaks a plain subsample would drop
        edges = np.linspace(0, length, POINTS // 2 + 1).astype(int)
        whole = series
        series = np.concatenate([[whole[a:b].min(axis=0), whole[a:b].max(axis=0)]
                                 for a, b in itertools.pairwise(edges)])
    lo, hi = float(series.min()), float(series.max())
    xs = np.linspace(1, WIDTH - 1, len(series))
    lines = []
    for c in range(min(series.shape[1], len(COLORS))):
        ys = _scaled(series[:, c], lo, hi)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        lines.append(f'<polyline fill="none" stroke="{COLORS[c]}" stroke-width="1" points="{points}"/>')
    return _svg("".join(lines), f"waveform, {series.shape[1]} channel(s)")


def bars(arr: np.ndarray) -> str:
    """One bar per feature of a tabular row, on the row's own scale."""
    values = np.asarray(arr, dtype=np.float64).ravel()
    lo, hi = min(0.0, float(values.min())), max(0.0, float(values.max()))
    width = (WIDTH - 2) / len(values)
    zero = _scaled(np.array([0.0]), lo, hi)[0]
    rects = []
    for i, v in enumerate(values):
        y = _scaled(np.array([v]), lo, hi)[0]
        top, h = min(y, zero), max(abs(zero - y), 1.0)
        rects.append(f'<rect x="{1 + i * width + 1:.1f}" y="{top:.1f}" width="{max(width - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="{COLORS[0]}"/>')
    return _svg("".join(rects), f"{len(values)} feature values")


def _svg(body: str, label: str) -> str:
    return (f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="{label}">{body}</svg>')


def picture(task: Task, arr: np.ndarray) -> str:
    return waveform(arr) if task is Task.time_series else bars(arr)

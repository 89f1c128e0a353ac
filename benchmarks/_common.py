"""Shared output for benchmarks: a Rich table on stdout, optional JSON and PNG plot."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def report(
    title: str,
    rows: Sequence[dict[str, Any]],
    *,
    json_path: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print ``rows`` as a table; write them (and ``extra``) as JSON if asked."""
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for c in columns:
        table.add_column(c, justify="right" if isinstance(rows[0][c], int | float) else "left")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in columns))
    Console(width=160).print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(json_path.read_text()) if json_path.exists() else {}
        data[title] = {"rows": list(rows), **(extra or {})}
        json_path.write_text(json.dumps(data, indent=2) + "\n")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def bar_plot(path: Path, title: str, labels: list[str], series: dict[str, list[float]],
             ylabel: str) -> None:
    """Grouped bars, one group per label: the plot for numbers people compare."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.2), 4))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels,
                  rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hello_world_firmware(work: Path, version: str = "2.0.0") -> Path:
    """The hello_world x86 OS image (local builder), the package the FOTA benchmarks ship."""
    from tinymlaas.builders.local import LocalBuilder
    from tinymlaas.config import Settings
    from tinymlaas.services.compile import compile_model
    from tinymlaas.targets import get_board
    from tinymlaas.zoo import get_recipe

    settings = Settings()
    board = get_board(settings.targets_dir, "x86-tflm")
    model = get_recipe("hello_world").load(settings.zoo_dir)
    compile_model(model, board, work / "module", name="hello_world")
    fw = LocalBuilder().build(work / "module", board, work / "firmware", version=version)
    return work / "firmware" / fw.image

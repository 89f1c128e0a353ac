"""The comparison as a chart: each option's cost per device per year against the fleet size (log
scale), the break-even fleet size and the fleet compared marked. PNG or SVG, written by matplotlib
to bytes (no display)."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np

from tinymlaas.cost.model import LABELS, per_device_at
from tinymlaas.cost.models import Comparison

COLORS = {"cloud": "tab:blue", "tinyml": "tab:green", "hybrid": "tab:purple"}
Format = Literal["png", "svg"]


def fleet_range(c: Comparison) -> np.ndarray:
    """From one device to well past both the fleet compared and every break-even fleet size."""
    top = max([c.inputs["fleet_size"].value * 10] + [3 * b.fleet_size for b in c.break_even if b.fleet_size])
    return np.unique(np.geomspace(1, max(top, 10), 240))


def chart(c: Comparison, fmt: Format = "png") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = c.inputs["inferences_per_day"].value
    fleet = c.inputs["fleet_size"].value
    sizes = fleet_range(c)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for option in c.options:
        ax.plot(sizes, [per_device_at(option, n, rate) for n in sizes], color=COLORS[option.name],
                label=f"{LABELS[option.name]}: USD {option.per_device_per_year:,.2f} at {fleet:,.0f} devices")
    for b in c.break_even:
        if b.fleet_size and (b.first, b.second) == ("cloud", "tinyml"):
            y = per_device_at(next(o for o in c.options if o.name == "cloud"), b.fleet_size, rate)
            ax.plot([b.fleet_size], [y], "ko")
            ax.annotate(f"break-even\n{b.fleet_size:,.0f} devices", (b.fleet_size, y), xytext=(8, 10),
                        textcoords="offset points", fontsize=8)
    ax.axvline(fleet, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fleet size (devices)")
    ax.set_ylabel("cost per device per year (USD)")
    ax.set_title(f"{c.model} on {c.board}, {rate:g} inferences a day per device "
                 f"(cheapest at {fleet:,.0f}: {LABELS[c.cheapest]})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return buf.getvalue()

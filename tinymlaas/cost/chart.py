"""The comparison as a chart against the fleet size (log scale): each option's cost per device per
year, and what each saves against the cloud; the break-even fleet sizes and the fleet compared
marked. PNG or SVG, written by matplotlib to bytes (no display)."""

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
    """Above, each option's cost per device per year (the fleet's fixed costs shared out); below,
    what each saves against the cloud per device per year, which crosses zero where they break
    even (the options' common costs, such as the device itself, cancel there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = c.inputs["inferences_per_day"].value
    fleet = c.inputs["fleet_size"].value
    sizes = fleet_range(c)
    cost = {o.name: np.array([per_device_at(o, n, rate) for n in sizes]) for o in c.options}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, height_ratios=[3, 2])
    for option in c.options:
        label = f"{LABELS[option.name]}: USD {option.per_device_per_year:,.2f} at {fleet:,.0f} devices"
        top.plot(sizes, cost[option.name], color=COLORS[option.name], label=label)
        if option.name != "cloud":
            bottom.plot(sizes, cost["cloud"] - cost[option.name], color=COLORS[option.name],
                        label=f"{LABELS[option.name]} saves")
    at_fleet = max(o.per_device_per_year for o in c.options)
    top.set_ylim(0, at_fleet * 2.5)
    bottom.axhline(0, color="tab:blue", lw=1)
    # Saving is steep for a handful of devices: show it from a third of the first break-even on.
    start = min([b.fleet_size for b in c.break_even if b.fleet_size] + [fleet]) / 3
    visible = sizes >= start
    shown = [cost["cloud"][visible] - cost[o.name][visible] for o in c.options if o.name != "cloud"]
    if shown:
        lo, hi = min(0.0, *(float(v.min()) for v in shown)), max(0.0, *(float(v.max()) for v in shown))
        pad = (hi - lo) * 0.15 or 0.01
        bottom.set_ylim(lo - pad, hi + pad)
    for b in c.break_even:
        if b.fleet_size and b.first == "cloud":
            y = per_device_at(next(o for o in c.options if o.name == "cloud"), b.fleet_size, rate)
            top.plot([b.fleet_size], [y], "ko")
            bottom.plot([b.fleet_size], [0], "o", color=COLORS[b.second])
            if b.second == "tinyml":
                top.annotate(f"break-even\n{b.fleet_size:,.0f} devices", (b.fleet_size, y), xytext=(8, 12),
                             textcoords="offset points", fontsize=8)
    for ax in (top, bottom):
        ax.axvline(fleet, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    top.set_ylabel("cost per device per year (USD)")
    bottom.set_ylabel("saving against the cloud\n(USD per device per year)")
    bottom.set_xlabel("fleet size (devices)")
    top.set_title(f"{c.model} on {c.board}, {rate:,g} inferences a day per device "
                  f"(cheapest at {fleet:,.0f}: {LABELS[c.cheapest]})", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return buf.getvalue()

"""The README's generated sections about the ``aot`` compiler, never typed by hand.

* the ops and dtypes it takes, from its own declaration (:func:`.lower.declaration`);
* its measured results on Cortex-M, from ``benchmarks/bench_cortexm.py``'s JSON.

``python -m tinymlaas.compilers.aot.docs README.md [--bench var/bench.json]`` rewrites
the text between the marker comments; a test checks the ops section is current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tinymlaas.compilers.aot.lower import FOLDED_OPS, declaration

OPS = ("<!-- generated:aot-ops -->", "<!-- /generated:aot-ops -->")
RESULTS = ("<!-- generated:aot-results -->", "<!-- /generated:aot-results -->")
BENCH_TITLE = "aot on Cortex-M: instructions, model flash and RAM vs TFLM (+CMSIS-NN)"


def ops_table() -> str:
    """One row per op: the dtypes (or conversions) the compiler declares for it."""
    lines = ["| op | dtypes |", "|---|---|"]
    for op, dtypes in declaration().items():
        if op in FOLDED_OPS:
            shown = "compile-time only: " + dtypes[0]
        elif all("->" in d for d in dtypes):
            targets: dict[str, list[str]] = {}
            for d in dtypes:
                a, b = d.split("->")
                targets.setdefault(a, []).append(b)
            shown = "; ".join(f"{a} → {', '.join(bs)}" for a, bs in targets.items())
        else:
            shown = ", ".join(dtypes)
        lines.append(f"| {op} | {shown} |")
    return "\n".join(lines)


def _n(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, int) and v >= 1_000_000:
        return f"{v / 1e6:.2f} M"
    return f"{v:,}"


def _ratio(value: float | None, met: bool | None) -> str:
    """A ratio to the reference, in bold where it misses its target."""
    if value is None:
        return "-"
    return f"{value:.2f}" if met or met is None else f"**{value:.2f}**"


def _trace(traced: int | None, counted: int) -> str:
    """How the single-step trace's count compares with the counter's."""
    if traced is None:
        return "-"
    if traced == counted:
        return "equal"
    return f"{traced - counted:+,} ({(traced - counted) / counted * 1e6:.0f} ppm)"


def results_table(rows: list[dict[str, Any]]) -> str:
    """The benchmark's rows as the README shows them."""
    lines = ["| model | CPU | opt | aot instructions | single-step trace | TFLM-ref "
             "| TFLM + CMSIS-NN | ÷ (≤ 0.8) | aot model flash (B) | CMSIS-NN ML flash (B) "
             "| ÷ (≤ 0.6) | aot arena (B) | TFLM RAM (B) | ÷ (≤ 0.5) | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        trace = r["trace_instructions"]
        tflm_ram = (_n(r["cmsis_nn_ram"]) if r["cmsis_nn_ram"]
                    else f"{_n(r['tflm_arena_x86'])} (x86 arena)")
        lines.append("| " + " | ".join([
            r["model"], r["cpu"], f"-{r['opt']}", _n(r["instructions"]),
            _trace(trace, r["instructions"]),
            _n(r["tflm_ref"]), _n(r["tflm_cmsis_nn"]),
            _ratio(r["x_cmsis_nn"], r["target_met"]),
            _n(r["model_flash"]), _n(r["cmsis_nn_flash"]),
            _ratio(r["x_flash"], r["flash_target_met"]),
            _n(r["arena"]), tflm_ram, _ratio(r["x_arena"], r["arena_target_met"]),
            _n(r["bit_exact"])]) + " |")
    return "\n".join(lines)


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    begin, end = markers
    if begin not in text or end not in text:
        raise ValueError(f"the README has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("readme", type=Path)
    ap.add_argument("--bench", type=Path, help="benchmarks/run.py --json output")
    args = ap.parse_args(argv)
    text = replace_block(args.readme.read_text(), OPS, ops_table())
    if args.bench is not None:
        rows = json.loads(args.bench.read_text())[BENCH_TITLE]["rows"]
        text = replace_block(text, RESULTS, results_table(rows))
    args.readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

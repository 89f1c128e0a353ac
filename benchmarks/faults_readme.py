"""Write the fault-injection table into the README from the benchmark's JSON (never by hand).

    python benchmarks/run.py faults --json var/bench-faults.json
    python benchmarks/faults_readme.py var/bench-faults.json [README.md]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench_faults import TITLE

MARKS = ("<!-- generated:faults -->", "<!-- /generated:faults -->")


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"**{r[c]}**" if r["fault"] == "all" else str(r[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    orchestrators = " and ".join(result["orchestrators"])
    return "\n".join([
        *lines, "",
        f"Measured {result['date']}: {rows[-1]['updates']} updates, {result['devices']} device "
        f"containers per orchestrator ({orchestrators}), {result['rounds']} round(s) of every fault, "
        f"{result['wall_s'] / 60:.0f} min on the shared 2-core machine. \"new image kept\": the update "
        "took (a fault can strike after it is done); \"reconciled\": records the service corrected from "
        "what the device later reported."])


def main() -> int:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "var/bench-faults.json")
    readme = Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    result = json.loads(source.read_text())[TITLE]
    text = readme.read_text()
    start, end = text.index(MARKS[0]) + len(MARKS[0]), text.index(MARKS[1])
    readme.write_text(text[:start] + "\n" + table(result) + "\n" + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the README's LwM2M benchmark table from a benchmark JSON file, so it cannot drift.

    python benchmarks/run.py lwm2m --json var/bench.json
    python benchmarks/readme.py var/bench.json [--readme README.md]

Rewrites what lies between ``<!-- bench:lwm2m -->`` and ``<!-- /bench:lwm2m -->``;
``--check`` only says whether the README matches (exit 1 if not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
START, END = "<!-- bench:lwm2m -->", "<!-- /bench:lwm2m -->"
TITLE = "LwM2M server: simulated devices over UDP loopback"


def _ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def table(result: dict[str, Any]) -> str:
    """The README block: the table, then FOTA and when/how it was measured."""
    rows = result["rows"]
    lines = [
        "| devices | registrations/s | Read /3/0 p50 / p99 | reads/s, 50 in flight (p99) | notify p50 / p99 "
        "| server RSS (per 1,000 devices) | load average (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_k = f" ({r['MiB per 1k devices']:.1f} MiB)" if r["devices"] >= 1000 else ""
        read = f"{_ms(r['read p50 ms'])} / {_ms(r['read p99 ms'])} ms"
        loaded = f"{r['reads/s (50 in flight)']:,.0f} ({_ms(r['p99 ms (50 in flight)'])} ms)"
        notify = f"{_ms(r['notify p50 ms'])} / {_ms(r['notify p99 ms'])} ms"
        lines.append(f"| {r['devices']:,} | {r['registrations/s']:,.0f} | {read} | {loaded} | {notify} "
                     f"| {r['server MiB']:.0f} MiB{per_k} | {r['load before']:.1f} → {r['load after']:.1f} |")
    fota = [r for r in rows if "FOTA s" in r]
    text = "\n".join(lines)
    if fota:
        f = fota[0]
        text += (f"\n\nFOTA of the hello_world x86 firmware to {f['FOTA ok'].split('/')[1]} simulated "
                 "devices at once (Package URI download, SHA-256, Update, re-registration): "
                 f"{f['FOTA s']:.1f} s, {f['FOTA ok']}.")
    text += (f"\n\nMeasured {result.get('measured_at', '')} on {result.get('cpus', '?')} cores shared "
             "with other work (the load average is the machine's, around each row); notify latency is "
             "from the device's timestamp to the server's receipt, 1,000 observed devices notifying "
             "at once.")
    return text


def rewrite(readme: str, block: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"the README has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, help="the benchmark JSON (benchmarks/run.py --json)")
    ap.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    ap.add_argument("--check", action="store_true", help="only check that the README matches")
    args = ap.parse_args()
    data = json.loads(args.json.read_text())
    if TITLE not in data:
        print(f"{args.json} has no '{TITLE}' results; run: python benchmarks/run.py lwm2m --json {args.json}",
              file=sys.stderr)
        return 2
    readme = args.readme.read_text()
    new = rewrite(readme, table(data[TITLE]))
    if args.check:
        if new != readme:
            print(f"{args.readme}: the LwM2M table differs from {args.json}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

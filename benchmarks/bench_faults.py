"""Fault injection: firmware updates that go wrong on purpose, on real x86 device containers.

For each orchestrator (LwM2M with OSCORE, HTTP pull with tokens) a service runs in
its own process with hello_world firmware 1.0.0 and 2.0.0 (local builder), and
``--devices`` x86 device containers (each new image on a 20 s trial). Each round
updates every device to the version it does not run and injects one kind of fault
into each update (``tinymlaas.faults.KINDS``): a power cut at a random moment (the
container killed, then started again), a truncated, corrupt or unsigned image, an
image that crashes 5 s after it boots, hangs, or boots without its management
agent, a dropped link (the container frozen 10 s at a random moment), or a service
crash (the service killed at a random moment and started again). Then it waits for
every device to recover: it answers an inference on a confirmed image, the service
lists it online and the deployment record has ended.

Per kind of fault: how many, bricked devices (no confirmed image answering within
150 s; target 0), records that disagree with what the device runs (target 0),
records corrected from what the device reported (reconciled), and the time from
the update's start to recovery (p50 / max).

    python benchmarks/run.py faults [--json var/bench.json]
    python benchmarks/bench_faults.py [--devices 6] [--rounds 1] [--orchestrator lwm2m ...] [--json F]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _common import bar_plot, percentile, report

from tinymlaas.faults import KINDS, FaultLab, Outcome

TITLE = "Fault injection: updates that go wrong, on real x86 device containers"
ORCHESTRATORS = ("lwm2m", "http-pull")


def measure(orchestrators: tuple[str, ...] = ORCHESTRATORS, devices: int = 6, rounds: int = 1,
            seed: int = 1) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for n, orchestrator in enumerate(orchestrators):
        with tempfile.TemporaryDirectory(prefix="bench-faults-") as work, \
                FaultLab(Path(work), orchestrator=orchestrator, seed=seed + n) as lab:
            eps = [lab.add_device(f"{orchestrator}-{i}").endpoint for i in range(devices)]
            for _ in range(rounds):
                for kind in KINDS:
                    got = lab.inject(kind, eps)
                    outcomes += got
                    bad = [o for o in got if o.bricked or o.disagrees]
                    print(f"{orchestrator:9} {kind:24} {len(got)} updates, "
                          f"{max(o.recover_s for o in got):5.1f} s" + (f"; {len(bad)} NOT RECOVERED: "
                                                                      f"{bad[0].why}" if bad else ""),
                          flush=True)
    return outcomes


def rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    out = []
    for kind in [*KINDS, "all"]:
        got = [o for o in outcomes if kind in ("all", o.kind)]
        times = sorted(o.recover_s for o in got)
        out.append({"fault": kind, "updates": len(got), "fault missed": sum(bool(o.missed) for o in got),
                    "bricked": sum(o.bricked for o in got),
                    "disagreeing records": sum(o.disagrees for o in got),
                    "reconciled": sum(o.reconciled for o in got),
                    "new image kept": sum(o.runs == o.sent for o in got),
                    "recover p50 s": round(percentile(times, 50), 1),
                    "recover max s": round(max(times, default=float("nan")), 1)})
    return out


def run(json_path: Path | None = None, plots: Path | None = None, *,
        orchestrators: tuple[str, ...] = ORCHESTRATORS, devices: int = 6, rounds: int = 1) -> None:
    t0 = time.monotonic()
    outcomes = measure(orchestrators, devices, rounds)
    table = rows(outcomes)
    report(TITLE, table, json_path=json_path, extra={
        "orchestrators": list(orchestrators), "devices": devices, "rounds": rounds,
        "wall_s": round(time.monotonic() - t0), "date": time.strftime("%Y-%m-%d"),
        "targets": {"bricked": 0, "disagreeing records": 0},
        "outcomes": [asdict(o) for o in outcomes]})
    if plots is not None:
        kinds = [r for r in table if r["fault"] != "all"]
        bar_plot(plots / "faults_recovery.png", "Time to recover from each kind of fault",
                 [r["fault"] for r in kinds], {"p50": [r["recover p50 s"] for r in kinds],
                                               "max": [r["recover max s"] for r in kinds]}, "seconds")
    total = table[-1]
    if total["bricked"] or total["disagreeing records"]:
        print(f"TARGET MISSED: {total['bricked']} bricked, {total['disagreeing records']} disagreeing",
              file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=6, help="devices per orchestrator (a round injects "
                                                           "one fault into each)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every kind of fault")
    ap.add_argument("--orchestrator", action="append", choices=ORCHESTRATORS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plots", type=Path, default=Path("var/plots"))
    args = ap.parse_args()
    run(args.json, args.plots, orchestrators=tuple(args.orchestrator or ORCHESTRATORS),
        devices=args.devices, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

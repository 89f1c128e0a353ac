"""The fault-injection suite's short lane (``benchmarks/bench_faults.py`` runs all of it): a few
kinds of fault on real x86 device containers; no device bricked, no record disagreeing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymlaas.faults import FaultLab

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.reliability, pytest.mark.x86]


@pytest.mark.parametrize("orchestrator", ["lwm2m", "http-pull"])
def test_devices_and_records_come_through_faults(tmp_path: Path, orchestrator: str) -> None:
    with FaultLab(tmp_path, orchestrator=orchestrator, seed=7) as lab:
        eps = [lab.add_device(f"ci-{i}").endpoint for i in range(2)]
        outcomes = [o for kind in ("power cut", "hangs", "service crash") for o in lab.inject(kind, eps)]
    assert len(outcomes) == 6
    bad = [o for o in outcomes if o.bricked or o.disagrees]
    assert bad == [], "\n".join(f"{o.kind} {o.endpoint}: {o.why[:600]}" for o in bad)
    hung = [o for o in outcomes if o.kind == "hangs"]
    assert all(o.runs != o.sent and o.result == "firmware update failed" for o in hung), hung

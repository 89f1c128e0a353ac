"""The fault-injection suite's short lane (``benchmarks/bench_faults.py`` runs all of it): a few
kinds of fault on real x86 device containers; no device bricked, no record disagreeing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymlaas.faults import FaultLab

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.reliability, pytest.mark.x86]


@pytest.mark.parametrize(("orchestrator", "kinds"), [
    ("lwm2m", ("power cut", "dropped link", "corrupt image")),
    ("http-pull", ("power cut", "service crash", "unsigned image")),
])
def test_devices_and_records_come_through_faults(tmp_path: Path, orchestrator: str,
                                                 kinds: tuple[str, ...]) -> None:
    """Bad images, hangs and crashes have their scenarios (features/lwm2m/x86_rollback.feature)."""
    with FaultLab(tmp_path, orchestrator=orchestrator, seed=7, poll_wait_s=1.0) as lab:
        eps = [lab.add_device(f"ci-{i}").endpoint for i in range(2)]
        outcomes = [o for kind in kinds for o in lab.inject(kind, eps)]
    assert len(outcomes) == 2 * len(kinds)
    bad = [o for o in outcomes if o.bricked or o.disagrees]
    assert bad == [], "\n".join(f"{o.kind} {o.endpoint}: {o.why[:600]}" for o in bad)
    refused = [o for o in outcomes if o.kind.endswith("image")]
    assert all(o.runs != o.sent and o.result == "integrity check failure" for o in refused), refused

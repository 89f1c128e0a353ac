"""Steps for the reliability stories: a service in its own process (killed for real), real x86
device containers, the fault-injection lab of :mod:`tinymlaas.faults`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_jobs import wait_until
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.faults import FaultLab

scenarios("reliability")


@pytest.fixture
def fault_lab_of(tmp_path: Path, images: dict[str, bool],
                 service_databases: Callable[[Path], str]) -> Iterator[Callable[[str], FaultLab]]:
    labs: list[FaultLab] = []

    def make(orchestrator: str) -> FaultLab:
        work = tmp_path / orchestrator
        labs.append(FaultLab(work, orchestrator=orchestrator, poll_wait_s=1.0,
                             database_url=service_databases(work / "service")).__enter__())
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


@given(parsers.parse('a service in its own process with the {orchestrator} orchestrator and hello_world '
                     'firmware "{v1}" and "{v2}" for "x86-tflm"'), target_fixture="fault_lab")
def fault_lab(fault_lab_of: Callable[[str], FaultLab], orchestrator: str, v1: str, v2: str) -> FaultLab:
    lab = fault_lab_of(orchestrator)
    assert {v1, v2} == set(lab.builds) and lab.api.get("/orchestrator").json()["plugin"] == orchestrator
    return lab


@given(parsers.parse('device "{ep}" boots firmware "{version}" managed by that service'))
def lab_device(fault_lab: FaultLab, ep: str, version: str) -> None:
    assert fault_lab.add_device(ep).runs() == version


@when(parsers.parse('the service deploys firmware "{version}" to "{ep}" and is killed as soon as the '
                    'device has written it'), target_fixture="deployment_id")
def deploy_then_crash(fault_lab: FaultLab, ep: str, version: str) -> str:
    dep = fault_lab.deploy(ep, version)
    device = fault_lab.devices[ep].device
    wait_until(lambda: "firmware written" in device.logs(), 60, f"{ep} writing the new image")
    fault_lab.service.kill()
    return dep


@when("the service starts again")
def service_again(fault_lab: FaultLab) -> None:
    fault_lab.service.start()


@then(parsers.parse('the deployment is corrected to "{result}" from what "{ep}" reports'))
def corrected(fault_lab: FaultLab, deployment_id: str, result: str, ep: str) -> None:
    def record() -> dict[str, Any] | None:
        dep: dict[str, Any] = fault_lab.api.get(f"/deployments/{deployment_id}").json()
        return dep if dep["succeeded"] else None

    dep = wait_until(record, 90, "the record's correction")
    assert dep["reconciled"] is True and dep["result"] == result and dep["result_code"] == 1, dep
    # It was closed as failed when the service started again, then corrected from the device.
    assert "the service restarted during the update" in dep["detail"], dep
    assert "the device later reported it runs the update" in dep["detail"], dep


@then(parsers.parse('"{ep}" runs firmware "{version}" on a confirmed image and answers inferences'))
def runs_confirmed(fault_lab: FaultLab, ep: str, version: str) -> None:
    wait_until(lambda: fault_lab.devices[ep].runs() == version, 60, f"{ep} confirming {version}")
    caps = fault_lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["firmware_version"] == version
    reply = fault_lab.api.post(f"/devices/{ep}/infer", json={"values": [1.0]})
    assert reply.status_code == 200 and abs(reply.json()["values"][0] - 0.84) < 0.15, reply.text

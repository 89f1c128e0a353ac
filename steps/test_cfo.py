"""Steps for the CFO's stories, against the live API over real HTTP: a digits classifier trained by
the service, its instructions counted under QEMU, an x86 device container and an emulated Cortex-M3
behind its bridge over LwM2M with OSCORE, each role calling as its own user."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_jobs import follow_job
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.edge.hybrid import probabilities
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.lwm2m.security import write_context
from tinymlaas.models import LwM2MAttach
from tinymlaas.services.mcu_device import BridgeProcess
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board

scenarios("cfo")

BOARD = "lm3s6965evb"
FLEET, PER_DAY = 10_000, 1_440


@dataclass
class CfoLab:
    """The service (LwM2M with OSCORE), a user per role, the trained model and its test split."""

    server: BackgroundServer
    admin: httpx.Client
    cfo: httpx.Client
    scientist: httpx.Client
    operator: httpx.Client
    model: dict[str, Any] = field(default_factory=dict)
    int8: bytes = b""
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    clouds: list[dict[str, Any]] = field(default_factory=list)


def _succeeded(api: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    job = follow_job(api, job_id, timeout=timeout)[-1]
    assert job["state"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def cfo_lab(tmp_path_factory: pytest.TempPathFactory, images: dict[str, bool],
            service_databases: Callable[[Path], str]) -> Iterator[CfoLab]:
    base = Settings()
    data = tmp_path_factory.mktemp("cfo-service")
    settings = base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data),
        "lwm2m": base.lwm2m.model_copy(update={"port": 0, "security": "oscore"})})
    with BackgroundServer(settings) as server, server.client(timeout=60) as admin:
        clients = {}
        for name, role in (("cfo", "viewer"), ("scientist", "data-scientist"), ("operator", "operator")):
            assert admin.post("/users", json={"name": name, "role": role}).status_code == 201
            token = admin.post(f"/users/{name}/tokens").json()["token"]
            clients[name] = httpx.Client(base_url=server.url, timeout=60,
                                         headers={"Authorization": f"Bearer {token}"})
        yield CfoLab(server, admin, **clients)
        for c in clients.values():
            c.close()


def _train(lab: CfoLab, tmp: Path) -> None:
    api = lab.scientist
    ex = EXAMPLES["digits"]
    ex.write(tmp / "digits.zip", 0, 0)
    assert api.post("/datasets", json={"name": "digits", "task": ex.task,
                                       "spec": ex.spec.model_dump()}).status_code == 201
    archive = (tmp / "digits.zip").read_bytes()
    upload = api.post("/datasets/digits/samples", files={"files": ("digits.zip", archive)})
    assert upload.status_code == 200 and not upload.json()["refused"], upload.text
    training = api.post("/trainings", json={"dataset": "digits", "epochs": 8, "seed": 3}).json()
    _succeeded(api, training["job_id"], 300)
    model_id = api.get(f"/trainings/{training['id']}").json()["model_id"]
    lab.model = api.get(f"/models/{model_id}").json()
    lab.int8 = api.get(f"/models/{lab.model['id']}/variants/int8").content
    items: list[dict[str, Any]] = []
    while len(items) < (page := api.get("/datasets/digits/samples", params={
            "split": "test", "offset": len(items), "limit": 200}).json())["total"]:
        items += page["items"]
    lab.x = np.stack([np.load(io.BytesIO(api.get(f"/datasets/digits/samples/{s['id']}/data").content))
                      for s in items]).astype(np.float32) / 255


@given(parsers.parse('the service has trained a digits classifier and counted its instructions per inference '
                     'on an emulated "{board}"'), target_fixture="lab")
def trained_and_counted(cfo_lab: CfoLab, tmp_path_factory: pytest.TempPathFactory, board: str) -> CfoLab:
    """Once per feature: the training and the profile are the slow part, and the same for each scenario."""
    lab = cfo_lab
    if not lab.model:
        _train(lab, tmp_path_factory.mktemp("cfo-data"))
        job = lab.scientist.post("/profiles", json={"model": lab.model["id"], "targets": [board]}).json()
        row = _succeeded(lab.scientist, job["id"])["result"]["boards"][0]
        assert row["fits"] and row["emulator"] == "qemu" and row["instructions"] > 10_000, row
    lineage = lab.cfo.get(f"/models/{lab.model['id']}/lineage").json()
    assert {"int8", "float"} <= set(lineage["variants"])
    return lab


# -- scenario 1: the comparison -------------------------------------------------------------------

def _compare(lab: CfoLab, **inputs: float) -> dict[str, Any]:
    reply = lab.cfo.post("/cost/compare", json={"model": lab.model["id"], "board": BOARD,
                                                "inputs": {"fleet_size": FLEET, "inferences_per_day": PER_DAY,
                                                           **inputs}})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@when(parsers.parse('the CFO compares cloud and TinyML for 10,000 devices at one inference per minute on '
                    '"{board}"'), target_fixture="comparison")
def compare(lab: CfoLab, board: str) -> dict[str, Any]:
    assert board == BOARD
    return _compare(lab)


def _options(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in comparison["options"]}


@then("the CFO sees which option is cheaper, what each costs per device per year and per million inferences, "
      "and the fleet size where they break even")
def cheaper_and_break_even(comparison: dict[str, Any]) -> None:
    options = _options(comparison)
    cloud, tiny = options["cloud"], options["tinyml"]
    cheaper = "tinyml" if tiny["per_device_per_year"] < cloud["per_device_per_year"] else "cloud"
    assert comparison["cheapest"] in (cheaper, "hybrid") and cheaper == "tinyml", comparison["summary"]
    for o in (cloud, tiny):
        assert o["per_device_per_year"] > 0 and o["battery_life_years"] > 0
        per_year = PER_DAY * 365.25
        assert o["per_million_inferences"] == pytest.approx(o["per_device_per_year"] / per_year * 1e6)
        assert o["fleet_per_year"] == pytest.approx(o["per_device_per_year"] * FLEET)
    be = comparison["break_even"][0]
    assert (be["first"], be["second"]) == ("cloud", "tinyml") and 1 < be["fleet_size"] < FLEET
    assert f"cloud is cheaper below {be['fleet_size']:,.0f} devices and TinyML above" in be["note"]
    assert comparison["summary"].startswith("TinyML is cheapest for 10,000 devices") or \
        comparison["cheapest"] == "hybrid"


@then("every figure says where it came from: the instruction count from the emulator, prices and energy from "
      "their documents, the fleet and the rate from the CFO")
def sources(comparison: dict[str, Any]) -> None:
    inputs = comparison["inputs"]
    for f in inputs.values():
        assert f["source"] in ("measured", "default", "user") and f["ref"] and f["unit"], f
    count = inputs["instructions_per_inference"]
    assert count["source"] == "measured" and count["ref"].startswith("profile job")
    assert f"on {BOARD} under qemu" in count["ref"]
    assert "datasheet" in inputs["energy_per_instruction_j"]["ref"]
    assert "AWS Lambda price list" in inputs["cloud_price_per_1k_requests"]["ref"]
    assert inputs["input_bytes"] == {"value": 64, "unit": "B", "source": "measured",
                                     "ref": "the model's input tensor: [1, 8, 8, 1] int8"}
    assert inputs["cloud_compute_seconds"]["source"] == "measured"
    assert inputs["update_bytes"]["source"] == "measured"
    for name in ("fleet_size", "inferences_per_day"):
        assert inputs[name]["source"] == "user" and inputs[name]["ref"] == "given"
    assert comparison["accuracy"]["tinyml"]["value"] > 0.8


@then("at the break-even fleet size the two options cost the same")
def same_cost_at_break_even(lab: CfoLab, comparison: dict[str, Any]) -> None:
    fleet = comparison["break_even"][0]["fleet_size"]
    at = _options(_compare(lab, fleet_size=fleet))
    assert at["cloud"]["per_device_per_year"] == pytest.approx(at["tinyml"]["per_device_per_year"], rel=1e-9)


@then("the comparison comes as a chart of cost against fleet size, in PNG and SVG")
def chart(lab: CfoLab) -> None:
    body = {"model": lab.model["id"], "board": BOARD, "inputs": {"fleet_size": FLEET}}
    for fmt, magic, media in (("png", b"\x89PNG", "image/png"), ("svg", b"<?xml", "image/svg+xml")):
        reply = lab.cfo.post("/cost/chart", params={"format": fmt}, json=body)
        assert reply.status_code == 200 and reply.content.startswith(magic)
        assert reply.headers["content-type"] == media
    assert b"fleet size (devices)" in lab.cfo.post("/cost/chart", params={"format": "svg"}, json=body).content


# -- scenario 2: hybrid inference -----------------------------------------------------------------

@dataclass
class Running:
    endpoint: str
    board: str
    close: Callable[[], None]


@pytest.fixture
def running() -> Iterator[dict[str, Running]]:
    devices: dict[str, Running] = {}
    yield devices
    for d in devices.values():
        d.close()


@given("the float model serves as a cloud endpoint", target_fixture="cloud")
def cloud_endpoint(lab: CfoLab) -> dict[str, Any]:
    if not lab.clouds:
        reply = lab.scientist.post("/hybrid/endpoints", json={"model": lab.model["id"]})
        assert reply.status_code == 201, reply.text
        lab.clouds.append(reply.json())
    assert lab.clouds[0]["variant"] == "float"
    return lab.clouds[0]


def _build(lab: CfoLab, board: str) -> dict[str, Any]:
    if board not in lab.builds:
        body = {"model": lab.model["id"], "target": board, "version": "1.0.0"}
        reply = lab.scientist.post("/builds", json=body)
        assert reply.status_code == 202, reply.text
        _succeeded(lab.scientist, reply.json()["job"]["id"])
        lab.builds[board] = lab.scientist.get(f"/builds/{reply.json()['build']['id']}").json()
    return lab.builds[board]


@given(parsers.parse('the int8 model runs on {device} "{ep}", managed by the service'))
def device_runs(lab: CfoLab, running: dict[str, Running], tmp_path: Path, device: str, ep: str) -> None:
    board = "x86-tflm" if device == "an x86 container" else device.split()[2]
    fw = _build(lab, board)["firmware"]
    flash = tmp_path / ep / "flash"
    flash.mkdir(parents=True)
    for name, sha in fw["artifacts"].items():
        (flash / name).write_bytes(lab.scientist.get(f"/artifacts/{sha}").content)
    secret = lab.operator.post(f"/devices/{ep}/credentials", json={"replace": True}).json()
    attach = LwM2MAttach(uri=lab.admin.get("/orchestrator").json()["uri"], endpoint=ep,
                         credentials=write_context(tmp_path / ep / "oscore", secret, role="device"))
    targets = Settings().targets_dir
    if board == "x86-tflm":
        x86 = X86Device(get_board(targets, board), flash, attach=attach)
        running[ep] = Running(ep, board, x86.close)
    else:
        bridge = BridgeProcess(get_board(targets, board), flash, attach, tmp_path / ep / "bridge.log",
                               targets_dir=targets, emulator="qemu")
        running[ep] = Running(ep, board, bridge.stop)
    deadline = time.monotonic() + 60
    while not any(d["endpoint"] == ep and d["online"] for d in lab.cfo.get("/devices").json()):
        assert time.monotonic() < deadline, f"{ep} did not register"
        time.sleep(0.2)
    assert lab.cfo.get(f"/devices/{ep}").json()["capabilities"]["model_sha256"] == lab.model["sha256"]


@when(parsers.parse('an operator sets a hybrid threshold of {threshold:g} on "{ep}"'))
def set_threshold(lab: CfoLab, cloud: dict[str, Any], threshold: float, ep: str) -> None:
    body = {"cloud": cloud["id"], "threshold": threshold}
    assert lab.scientist.put(f"/devices/{ep}/hybrid", json=body).status_code == 403  # an operator's call
    reply = lab.operator.put(f"/devices/{ep}/hybrid", json=body)
    assert reply.status_code == 200, reply.text
    reported = reply.json()["reported"]
    assert reported["threshold"] == threshold and reported["cloud"] == cloud["id"]


@when(parsers.parse('"{ep}" runs the digits test split'), target_fixture="run")
def run_split(lab: CfoLab, ep: str) -> dict[str, Any]:
    before = lab.cfo.get(f"/devices/{ep}/hybrid").json()
    job = lab.scientist.post("/hybrid/evaluations", json={"model": lab.model["id"], "device": ep}).json()
    evaluation = _succeeded(lab.scientist, job["id"])["result"]
    return {"before": before, "evaluation": evaluation, "after": lab.cfo.get(f"/devices/{ep}/hybrid").json()}


def _confidences(lab: CfoLab) -> list[float]:
    """What the device computes for each test input: its int8 model's top probability."""
    it = Tflm(lab.int8)
    qi, qo = it.input["quantization_parameters"], it.output["quantization_parameters"]
    spec = {"dtype": "int8", "scale": float(qo["scales"][0]), "zero_point": int(qo["zero_points"][0])}
    return [max(probabilities(it.invoke(quantize(row, qi["scales"][0], qi["zero_points"][0], np.int8))
                              .ravel().tobytes(), spec)) for row in lab.x]


@then(parsers.parse('"{ep}" escalated exactly the inferences its int8 model is less than {pct:d} % sure of'))
def escalated_exactly(lab: CfoLab, run: dict[str, Any], ep: str, pct: int) -> None:
    unsure = [c < pct / 100 for c in _confidences(lab)]
    device = run["evaluation"]["device"]
    assert device["device"] == ep and run["evaluation"]["samples"] == len(unsure)
    assert device["escalated"] == sum(unsure) and 0 < sum(unsure) < len(unsure) / 2, (device, sum(unsure))
    assert device["agree"] == len(unsure) and device["failed"] == 0  # sample by sample, as decided here
    # One inference each way, through the service: an uncertain one comes back from the cloud.
    for i in (unsure.index(True), unsure.index(False)):
        report = lab.scientist.post(f"/devices/{ep}/infer", json={"values": lab.x[i].ravel().tolist()}).json()
        assert report["escalated"] is unsure[i], report


@then("the device and the service count the same local and escalated inferences and report the escalation "
      "rate")
def counted(run: dict[str, Any]) -> None:
    before, after, evaluation = run["before"], run["after"], run["evaluation"]
    device = evaluation["device"]
    assert after["escalated"] - (before["escalated"] or 0) == device["escalated"]
    assert after["local"] - (before["local"] or 0) == device["local"]
    assert device["local"] == evaluation["samples"] - device["escalated"]
    assert after["served"] - before["served"] == device["served"] == device["escalated"]
    assert evaluation["escalation_rate"] == round(device["escalated"] / evaluation["samples"], 4)
    assert after["escalation_rate"] == round(after["escalated"] / (after["local"] + after["escalated"]), 4)


@then("the accuracy of TinyML alone, of the cloud model alone and of the hybrid is measured on the test "
      "split, the device's answers being the hybrid's")
def accurate(run: dict[str, Any]) -> None:
    evaluation = run["evaluation"]
    accuracy = evaluation["accuracy"]
    assert set(accuracy) == {"local", "cloud", "hybrid"} and all(0.8 < a <= 1 for a in accuracy.values())
    assert evaluation["device"]["accuracy"] == accuracy["hybrid"], (evaluation["device"], accuracy)


@then("with that escalation rate, for 10,000 devices at one inference per minute, the hybrid costs more than "
      "TinyML and less than the cloud")
def hybrid_between(lab: CfoLab, run: dict[str, Any]) -> None:
    comparison = _compare(lab)
    rate = comparison["inputs"]["escalation_rate"]
    evaluation = run["evaluation"]
    assert rate["value"] == evaluation["escalation_rate"] and rate["source"] == "measured"
    assert f"hybrid evaluation {evaluation['id']}" in rate["ref"]
    assert f"on device {evaluation['device']['device']}" in rate["ref"]
    cost = {o["name"]: o["per_device_per_year"] for o in comparison["options"]}
    assert cost["tinyml"] < cost["hybrid"] < cost["cloud"], cost
    assert comparison["accuracy"]["hybrid"]["value"] == evaluation["device"]["accuracy"]

"""Hybrid inference and the cost comparison through the live API (real HTTP, real database file, a
model trained by the service): a cloud endpoint for the float model, a policy given to an HTTP pull
device (its real pull agent and TFLM runtime in process), the device escalating exactly its
uncertain inferences, both sides counting, a hybrid evaluation through the device feeding the cost
comparison; and the CLI on the same database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import httpx
import numpy as np
import pytest
from _devices import Device, LwM2MDevice
from aiocoap.numbers.codes import Code

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.edge.hybrid import probabilities
from tinymlaas.edge.lwm2m.agent import ESCALATE
from tinymlaas.edge.tflm import Tflm, quantize

pytestmark = [pytest.mark.slow, pytest.mark.ota, pytest.mark.lwm2m]


@dataclass
class Lab:
    orchestrator: str
    server: BackgroundServer
    api: httpx.Client
    model: dict[str, Any]
    int8: bytes
    x: np.ndarray  # the test split, as model inputs
    y: list[str]


def follow(api: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (job := api.get(f"/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "succeeded", job
    return dict(job)


@pytest.fixture(scope="module", params=["http-pull", "lwm2m"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The service with either orchestrator, on one data directory: the model is trained once."""
    tmp = tmp_path_factory.getbasetemp() / "hybrid"
    settings = Settings(data_dir=tmp / "service", orchestrator=request.param, lwm2m={"port": 0},
                        http_pull={"security": "token", "poll_wait_s": 1.0})
    with BackgroundServer(settings) as server, server.client(timeout=60) as api:
        if api.get("/datasets/iris").status_code == 404:
            ex = EXAMPLES["iris"]
            ex.write(tmp / "iris.csv", 0, 0)
            assert api.post("/datasets", json={"name": "iris", "task": ex.task,
                                               "spec": ex.spec.model_dump()}).status_code == 201
            csv = (tmp / "iris.csv").read_bytes()
            upload = api.post("/datasets/iris/samples", files={"files": ("iris.csv", csv)})
            assert len(upload.json()["accepted"]) == 150, upload.text
            training = api.post("/trainings", json={"dataset": "iris", "epochs": 15, "seed": 2}).json()
            follow(api, training["job_id"])
        model = api.get("/models/iris").json()
        samples = api.get("/datasets/iris/samples", params={"split": "test", "limit": 100}).json()["items"]
        x = np.stack([np.load(io.BytesIO(api.get(f"/datasets/iris/samples/{s['id']}/data").content))
                      for s in samples]).astype(np.float32)
        yield Lab(request.param, server, api, model, api.get(f"/models/{model['id']}/file").content, x,
                  [s["label"] for s in samples])


def confidences(model: bytes, x: np.ndarray) -> list[float]:
    """What the device computes: the top probability of its int8 output."""
    it = Tflm(model)
    qi, qo = it.input["quantization_parameters"], it.output["quantization_parameters"]
    spec = {"dtype": "int8", "scale": float(qo["scales"][0]), "zero_point": int(qo["zero_points"][0])}
    return [max(probabilities(it.invoke(quantize(row, qi["scales"][0], qi["zero_points"][0], np.int8))
                              .ravel().tobytes(), spec)) for row in x]


async def coap_escalate(uri: str, ep: str) -> Code:
    """An escalation in the name of ``ep`` from another address than it registered from."""
    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(code=Code.POST, payload=bytes(4), content_format=42)
        msg.set_request_uri(f"{uri}/tinyml/escalate?ep={ep}")
        return Code((await ctx.request(msg).response).code)
    finally:
        await ctx.shutdown()


def test_a_device_escalates_its_uncertain_inferences_and_the_comparison_reads_the_rate(
        lab: Lab, hello_world: bytes, tmp_path: Path) -> None:
    api, model = lab.api, lab.model
    assert api.post("/hybrid/endpoints", json={"model": model["id"], "variant": "keras"}).status_code == 422
    assert api.post("/hybrid/endpoints", json={"model": "nothing"}).status_code == 404
    cloud = api.post("/hybrid/endpoints", json={"model": model["id"]}).json()
    assert cloud["variant"] == "float" and cloud["device_model_sha256"] == model["sha256"]

    ep, other = f"hy-{lab.orchestrator}", f"other-{lab.orchestrator}"
    with contextlib.ExitStack() as stack:
        if lab.orchestrator == "http-pull":
            token = api.post(f"/devices/{ep}/credentials").json()["token"]
            other_token = api.post(f"/devices/{other}/credentials").json()["token"]
            agents = [stack.enter_context(Device(lab.server.url, name, secret, blob, tmp_path / name)).agent
                      for name, secret, blob in ((ep, token, lab.int8), (other, other_token, hello_world))]
            deadline = time.monotonic() + 10
            while not all(a.connected.is_set() for a in agents):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        else:
            uri = api.get("/orchestrator").json()["uri"]
            stack.enter_context(LwM2MDevice(uri, ep, lab.int8))
            stranger = stack.enter_context(LwM2MDevice(uri, other, hello_world))
        refused = api.put(f"/devices/{other}/hybrid", json={"cloud": cloud["id"], "threshold": 0.8})
        assert refused.status_code == 409 and "deploy that model" in refused.json()["detail"]
        given = api.put(f"/devices/{ep}/hybrid", json={"cloud": cloud["id"], "threshold": 0.8}).json()
        assert given["reported"]["threshold"] == 0.8 and given["reported"]["cloud"] == cloud["id"]
        assert given["policy"]["threshold"] == 0.8

        # Escalations need the device's own credentials (or address) and a policy on the service.
        if lab.orchestrator == "http-pull":
            tensor = base64.b64encode(bytes(4)).decode()
            assert api.post(f"/ota/{ep}/escalate", json={"input": tensor}).status_code == 403
            assert api.post(f"/ota/{other}/escalate", json={"input": tensor},
                            headers={"Authorization": f"Bearer {other_token}"}).status_code == 409
        else:
            assert asyncio.run(coap_escalate(uri, ep)) == Code.FORBIDDEN  # not from its address
            own = stranger.client.post_to_server(ESCALATE, bytes(4), content_format=42,
                                                 query=(f"ep={other}",))
            assert asyncio.run_coroutine_threadsafe(own, stranger.loop).result(10).code == Code.CONFLICT

        conf = confidences(lab.int8, lab.x)
        flags = []
        for row in lab.x:
            report = api.post(f"/devices/{ep}/infer", json={"values": row.tolist()}).json()
            flags.append(report["escalated"])
        assert flags == [c < 0.8 for c in conf] and 0 < sum(flags) < len(flags), (conf, flags)
        hybrid = api.get(f"/devices/{ep}/hybrid").json()
        assert (hybrid["local"], hybrid["escalated"], hybrid["served"]) == (
            len(flags) - sum(flags), sum(flags), sum(flags))
        assert hybrid["escalation_rate"] == round(sum(flags) / len(flags), 4)
        served = api.get(f"/hybrid/endpoints/{cloud['id']}").json()
        assert served["served"] == sum(flags) and served["compute_us"] > 0

        job = api.post("/hybrid/evaluations", json={"model": model["id"], "device": ep}).json()
        evaluation = follow(api, job["id"])["result"]
        device = evaluation["device"]
        assert device["escalated"] == device["served"] == evaluation["escalated"] == sum(flags)
        assert device["agree"] == evaluation["samples"] == len(flags)
        assert evaluation["threshold"] == 0.8 and 0.9 <= evaluation["accuracy"]["hybrid"] <= 1.0
        assert [p["threshold"] for p in evaluation["sweep"]] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
        png = api.get(f"/hybrid/evaluations/{evaluation['id']}/plot.png")
        assert png.content.startswith(b"\x89PNG")

        dropped = api.delete(f"/devices/{ep}/hybrid").json()
        assert dropped["policy"] is None and dropped["reported"]["threshold"] is None, dropped
        uncertain = lab.x[[c < 0.8 for c in conf].index(True)]
        after = api.post(f"/devices/{ep}/infer", json={"values": uncertain.tolist()}).json()
        assert after["escalated"] is None

    body = {"model": model["id"], "board": "lm3s6965evb", "inputs": {"instructions_per_inference": 5000}}
    comparison = api.post("/cost/compare", json=body).json()
    inputs = comparison["inputs"]
    assert inputs["instructions_per_inference"] == {"value": 5000, "unit": "instructions", "source": "user",
                                                    "ref": "given"}
    rate = inputs["escalation_rate"]
    assert rate["source"] == "measured" and rate["value"] == evaluation["escalation_rate"]
    assert f"hybrid evaluation {evaluation['id']}" in rate["ref"] and f"on device {ep}" in rate["ref"]
    assert inputs["input_bytes"]["value"] == 4 and inputs["input_bytes"]["source"] == "measured"
    assert inputs["cloud_compute_seconds"]["ref"].startswith(f"cloud endpoint {cloud['id']}")
    assert "STM32L100" in inputs["energy_per_instruction_j"]["ref"]
    assert all(f["source"] in ("measured", "default", "user") and f["ref"] for f in inputs.values())
    cost = {o["name"]: o["per_device_per_year"] for o in comparison["options"]}
    assert cost["tinyml"] < cost["hybrid"] < cost["cloud"], cost
    assert comparison["accuracy"]["hybrid"]["value"] == device["accuracy"]
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        chart = api.post("/cost/chart", params={"format": fmt}, json=body)
        assert chart.status_code == 200 and chart.content.startswith(magic)
    bad = api.post("/cost/compare", json={**body, "inputs": {"discount": 0.5}})
    assert bad.status_code == 422 and "no figure named 'discount'" in bad.json()["detail"]
    bad = api.post("/cost/compare", json={"model": model["id"]})
    assert bad.status_code == 422 and "no measured instruction count" in bad.json()["detail"]

    # The CLI on the same database: the same comparison, a chart, and one line for a bad figure.
    env = {**os.environ, "TINYMLAAS_DATA_DIR": str(lab.server.settings.data_dir)}
    cli = [sys.executable, "-m", "tinymlaas.cli.main", "cost"]
    run = subprocess.run([*cli, "compare", model["id"], "-t", "lm3s6965evb", "-S",
                          "instructions_per_inference=5000", "--json", "--chart", str(tmp_path / "c.svg")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["options"] == comparison["options"]
    assert (tmp_path / "c.svg").read_text().startswith("<?xml")
    run = subprocess.run([*cli, "compare", model["id"], "-t", "lm3s6965evb", "-S", "discount=1"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert run.returncode == 2 and run.stderr.startswith("error: inputs: no figure named 'discount'")
    assert len(run.stderr.strip().splitlines()) == 1

"""Steps for the operator's stories, against the live API over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import sqlalchemy
from api_jobs import follow_job
from pytest_bdd import parsers, scenarios, then, when

from tinymlaas.api.server import BackgroundServer

scenarios("operator")


@when(parsers.parse('I ask the service to train "{recipe}" from the zoo'), target_fixture="reply")
def train(api: httpx.Client, recipe: str) -> httpx.Response:
    return api.post("/models/train", json={"recipe": recipe})


@then(parsers.parse('the job succeeds and model "{name}" version {version:d} is registered'))
def trained(api: httpx.Client, reply: httpx.Response, name: str, version: int) -> None:
    assert reply.status_code == 202, reply.text
    states = follow_job(api, reply.json()["id"])
    assert states[-1]["state"] == "succeeded", states[-1]
    model = api.get(f"/models/{name}").json()
    assert model["version"] == version and model["info"]["ops"] == ["FULLY_CONNECTED"]


@when(parsers.parse('I request a build of "{model}" for "{target}"'), target_fixture="reply")
def request_build(api: httpx.Client, model: str, target: str) -> httpx.Response:
    return api.post("/builds", json={"model": model, "target": target, "version": "2.1.0"})


@then("the service answers 202 with a job id")
def accepted(reply: httpx.Response) -> None:
    assert reply.status_code == 202, reply.text
    assert reply.json()["job"]["state"] == "queued"


@then("the job reports its steps until it succeeds", target_fixture="build")
def job_progress(api: httpx.Client, reply: httpx.Response) -> dict[str, Any]:
    states = follow_job(api, reply.json()["job"]["id"])
    assert states[-1]["state"] == "succeeded", states[-1]
    steps = [s["step"] for s in states]
    assert any(s.startswith("compile:") for s in steps) and any(s.startswith("build:") for s in steps)
    return api.get(f"/builds/{reply.json()['build']['id']}").json()


@then("the build's OS image can be downloaded by its hash, also in ranges")
def download(api: httpx.Client, build: dict[str, Any]) -> None:
    fw = build["firmware"]
    assert fw["version"] == "2.1.0" and fw["board"] == "x86-tflm"
    whole = api.get(f"/artifacts/{fw['image_sha256']}").content
    assert hashlib.sha256(whole).hexdigest() == fw["image_sha256"]
    half = len(whole) // 2
    rest = api.get(f"/artifacts/{fw['image_sha256']}", headers={"Range": f"bytes={half}-"})
    assert rest.status_code == 206 and whole[:half] + rest.content == whole


@then("the service's database records the build")
def in_database(service: BackgroundServer, build: dict[str, Any]) -> None:
    engine = sqlalchemy.create_engine(service.settings.db_url)
    with engine.connect() as db:
        row = db.execute(sqlalchemy.text("SELECT target, version FROM builds WHERE id=:id"),
                         {"id": build["id"]}).one()
    engine.dispose()
    assert tuple(row) == ("x86-tflm", "2.1.0")


@when(parsers.parse('I upload a file that is not a model as "{name}"'), target_fixture="reply")
def upload_junk(api: httpx.Client, name: str) -> httpx.Response:
    return api.post("/models", files={"file": ("junk.tflite", b"\x00" * 64)}, data={"name": name})


@then("the service answers 422 naming the problem")
def refused(reply: httpx.Response) -> None:
    assert reply.status_code == 422
    assert "TFL3" in reply.json()["detail"]


@then("the model list is empty")
def empty(api: httpx.Client) -> None:
    assert api.get("/models").json() == []

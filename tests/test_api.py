"""The API in-process (real database file, real artifacts); builds are in features/."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _auth import as_admin
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, lwm2m={"port": 0})
    with TestClient(create_app(settings)) as c:
        yield as_admin(c, tmp_path)


def _upload(client: TestClient, data: bytes, name: str = "hw") -> httpx.Response:
    return client.post("/models", files={"file": ("m.tflite", data)}, data={"name": name})


def test_upload_list_download(client: TestClient, hello_world: bytes) -> None:
    r = _upload(client, hello_world)
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["version"] == 1 and model["info"]["ops"] == ["FULLY_CONNECTED"]
    assert [m["id"] for m in client.get("/models").json()] == [model["id"]]
    assert client.get("/models/hw/file").content == hello_world


def test_bad_model_is_422_and_nothing_stored(client: TestClient) -> None:
    r = _upload(client, b"definitely not a model")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert "TFL3" in r.json()["detail"]
    assert client.get("/models").json() == []


def test_artifacts_support_range(client: TestClient, hello_world: bytes) -> None:
    sha = _upload(client, hello_world).json()["sha256"]
    assert sha == hashlib.sha256(hello_world).hexdigest()
    r = client.get(f"/artifacts/{sha}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == hello_world[100:200]
    assert client.get(f"/artifacts/{'0' * 64}").status_code == 404
    assert client.get("/artifacts/nothex").status_code == 422


def test_build_refusals_happen_before_the_job(client: TestClient, hello_world: bytes) -> None:
    _upload(client, hello_world)
    cases = [
        ({"model": "nope", "target": "x86-tflm"}, 404, "no model"),
        ({"model": "hw", "target": "nope"}, 404, "no target board"),
        ({"model": "hw", "target": "x86-tflm", "compiler": "nope"}, 404, "no compiler"),
        ({"model": "hw", "target": "x86-tflm", "options": {"x": 1}}, 422, "option 'x'"),
        ({"model": "hw", "target": "x86-tflm", "builder": "nope"}, 404, "no builder"),
        ({"model": "hw", "target": "x86-tflm", "version": "bad version!"}, 422, "version"),
    ]
    for body, code, message in cases:
        r = client.post("/builds", json=body)
        assert r.status_code == code, (body, r.text)
        assert message in r.json()["detail"], r.json()
    assert client.get("/jobs").json() == []


def test_catalog(client: TestClient) -> None:
    assert "x86-tflm" in [t["name"] for t in client.get("/targets").json()]
    assert client.get("/targets/nope").status_code == 404
    assert "tflm" in [c["name"] for c in client.get("/compilers").json()]
    assert "hello_world" in [z["name"] for z in client.get("/zoo").json()]

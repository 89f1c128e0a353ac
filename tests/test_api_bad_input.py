"""Bad input gets a problem+json answer naming the problem, and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _auth import as_admin
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, lwm2m={"port": 0}, max_body_bytes=64 << 10)
    with TestClient(create_app(settings)) as c:
        yield as_admin(c, tmp_path)


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    for r, status in ((client.get("/no/such/route"), 404), (client.put("/models"), 405)):
        assert r.status_code == status and r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == status and r.json()["detail"]


def test_unparsable_json_says_so(client: TestClient) -> None:
    r = client.post("/builds", content=b'{"model": "m", ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["detail"].startswith("the request body is not valid JSON")


def test_unknown_fields_are_named(client: TestClient) -> None:
    r = client.post("/builds", json={"model": "m", "target": "x86-tflm", "colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["detail"]


def test_bodies_over_the_limit_get_413_before_they_are_read(client: TestClient, hello_world: bytes) -> None:
    big = b"\0" * (65 << 10)
    r = client.post("/models", files={"file": ("m.tflite", big)}, data={"name": "big"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert "over the limit of 65,536 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/builds", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/models").json() == []
    ok = client.post("/models", files={"file": ("m.tflite", hello_world)}, data={"name": "hw"})
    assert ok.status_code == 201


def test_bad_names_are_refused(client: TestClient, hello_world: bytes) -> None:
    for name in ("..", "a/b", "x" * 101):
        r = client.post("/models", files={"file": ("m.tflite", hello_world)}, data={"name": name})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, name
    assert client.get("/models").json() == []


def test_a_model_with_trailing_bytes_is_refused(client: TestClient, hello_world: bytes) -> None:
    r = client.post("/models", files={"file": ("m.tflite", hello_world + b"\xff" * 100)},
                    data={"name": "tail"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "100 bytes after the end of the TFLite model" in r.json()["detail"]
    assert client.get("/models").json() == []

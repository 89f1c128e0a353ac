"""The devices, credentials and deployments API without devices: inventory, refusals, credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _auth import as_admin
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings

pytestmark = pytest.mark.lwm2m


def make(tmp_path: Path, database_url: str, security: str) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path, database_url=database_url,
                                          lwm2m={"port": 0, "security": security})))


@pytest.fixture
def plain(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    with make(tmp_path, database_url, "off") as c:
        yield as_admin(c, tmp_path)


@pytest.fixture
def secure(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    with make(tmp_path, database_url, "oscore") as c:
        yield as_admin(c, tmp_path)


def test_server_info_and_empty_inventory(plain: TestClient) -> None:
    info = plain.get("/lwm2m").json()
    assert info["plugin"] == "lwm2m" and info["security"] == "off"
    assert info["uri"].startswith("coap://127.0.0.1:") and not info["uri"].endswith(":0")
    assert plain.get("/devices").json() == []
    assert plain.get("/deployments").json() == []


def test_unknown_devices_and_deployments_are_404(plain: TestClient) -> None:
    for method, url, body in (("get", "/devices/ghost", None),
                              ("post", "/devices/ghost/firmware", {"build": "b"}),
                              ("post", "/devices/ghost/infer", {"values": [1.0]}),
                              ("get", "/deployments/nope", None)):
        r = plain.request(method.upper(), url, json=body)
        assert r.status_code == 404, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_packages_need_a_grant_or_a_user(plain: TestClient, hello_world: bytes) -> None:
    device = {"Authorization": ""}  # a device: no user token
    r = plain.get(f"/devices/dev/packages/{'a' * 64}", headers=device)
    assert r.status_code == 403 and "grant" in r.json()["detail"]
    r = plain.get(f"/devices/dev/packages/{'a' * 64}?grant=made-up", headers=device)
    assert r.status_code == 403
    model = plain.post("/models", files={"file": ("m.tflite", hello_world)}, data={"name": "hw"}).json()
    sha = model["sha256"]
    assert plain.get(f"/devices/dev/packages/{sha}").content == hello_world  # a signed-in user may


def test_credentials_only_with_security_on(plain: TestClient) -> None:
    r = plain.post("/devices/dev/credentials")
    assert r.status_code == 409 and "security is off" in r.json()["detail"]


def test_credentials_lifecycle(secure: TestClient, tmp_path: Path) -> None:
    r = secure.post("/devices/dev-1/credentials")
    assert r.status_code == 201
    material = r.json()
    assert set(material) >= {"device_id_hex", "secret_hex", "salt_hex", "algorithm"}
    assert secure.post("/devices/dev-1/credentials").status_code == 409
    again = secure.post("/devices/dev-1/credentials", json={"replace": True}).json()
    assert again["secret_hex"] != material["secret_hex"]
    assert secure.delete("/devices/dev-1/credentials").status_code == 204
    assert secure.delete("/devices/dev-1/credentials").status_code == 404
    bad = secure.post("/devices/bad%20name/credentials")
    assert bad.status_code == 422


def test_infer_body_is_checked(plain: TestClient) -> None:
    r = plain.post("/devices/dev/infer", json={})
    assert r.status_code == 422 and "give one of 'input'" in r.text
    r = plain.post("/devices/dev/infer", json={"values": [1.0], "inputs": [{"values": [1.0]}]})
    assert r.status_code == 422 and "give one of 'input'" in r.text
    r = plain.post("/devices/dev/infer", json={"inputs": [{"values": [1.0], "input": [1]}]})
    assert r.status_code == 422 and "either 'input'" in r.text
    r = plain.post("/devices/dev/infer", json={"inputs": [{"values": [1.0], "scale": 2}]})
    assert r.status_code == 422 and "scale" in r.text

"""A service for the web app's tests: its first admin, and users of each role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _web import PASSWORD, Web
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.auth import Role
from tinymlaas.config import Settings


@pytest.fixture(scope="session")
def images() -> dict[str, bool]:
    """Every declared image, current (only rebuilt when its context changed)."""
    from tinymlaas.images import ensure_all

    return ensure_all(Settings())


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """The service with the http-pull orchestrator (devices are plain HTTP polls here) and a
    telemetry tick every 0.2 s; users viewer, ana (data scientist), olga (operator)."""
    yield from _service(tmp_path)


@pytest.fixture(scope="module")
def shared_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """One such service for a module's tests that change nothing."""
    yield from _service(tmp_path_factory.mktemp("web"))


def _service(tmp_path: Path) -> Iterator[Web]:
    settings = Settings(data_dir=tmp_path, lwm2m={"port": 0}, orchestrator="http-pull",
                        telemetry_interval_s=0.2)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        admin = json.loads((tmp_path / "initial-admin.json").read_text())
        auth = {"Authorization": f"Bearer {admin['token']}"}
        for name, role in (("viewer", Role.viewer), ("ana", Role.data_scientist), ("olga", Role.operator)):
            r = client.post("/users", json={"name": name, "role": role, "password": PASSWORD}, headers=auth)
            assert r.status_code == 201, r.text
        assert client.patch("/users/admin", json={"password": PASSWORD}, headers=auth).status_code == 200
        yield Web(client, admin["token"])

"""Every route of the API declares who may call it, and the API holds to it: walked from the
app's own routes, so a route added without an access declaration fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _auth import as_admin
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.auth import Role
from tinymlaas.config import Settings

V, S, OP, A = ({Role.viewer}, {Role.data_scientist, Role.operator}, {Role.operator}, {Role.admin})
#: Who may call what: the access table this API promises. A route missing here fails the test.
ACCESS: dict[tuple[str, str], set[Role] | str] = {
    ("GET", "/health"): "public", ("POST", "/auth/token"): "public", ("GET", "/auth/me"): V,
    ("GET", "/targets"): V, ("GET", "/targets/{name}"): V, ("GET", "/compilers"): V, ("GET", "/zoo"): V,
    ("GET", "/models"): V, ("POST", "/models"): S, ("POST", "/models/train"): S,
    ("GET", "/models/{ref}"): V, ("DELETE", "/models/{ref}"): S, ("GET", "/models/{ref}/file"): V,
    ("GET", "/builds"): V, ("POST", "/builds"): S, ("GET", "/builds/{build_id}"): V,
    ("GET", "/jobs"): V, ("GET", "/jobs/{job_id}"): V, ("GET", "/artifacts/{sha256}"): V,
    ("GET", "/orchestrator"): V, ("GET", "/devices"): V, ("GET", "/devices/{endpoint}"): V,
    ("POST", "/devices/{endpoint}/infer"): S, ("GET", "/devices/{endpoint}/results"): V,
    ("POST", "/devices/{endpoint}/credentials"): OP, ("DELETE", "/devices/{endpoint}/credentials"): OP,
    ("POST", "/devices/{endpoint}/firmware"): OP, ("POST", "/devices/{endpoint}/model"): OP,
    ("GET", "/deployments"): V, ("GET", "/deployments/{deployment_id}"): V,
    # The device registry, bridges, groups and rollouts: changes need an operator, reads a viewer.
    ("POST", "/devices"): OP, ("PATCH", "/devices/{endpoint}"): OP, ("DELETE", "/devices/{endpoint}"): OP,
    ("POST", "/devices/{endpoint}/decommission"): OP, ("POST", "/devices/{endpoint}/approve"): OP,
    ("GET", "/devices/{endpoint}/history"): V,
    ("GET", "/bridges"): V, ("POST", "/bridges"): OP, ("GET", "/bridges/{endpoint}"): V,
    ("DELETE", "/bridges/{endpoint}"): OP,
    ("GET", "/groups"): V, ("POST", "/groups"): OP, ("GET", "/groups/{name}"): V,
    ("GET", "/groups/{name}/devices"): V, ("DELETE", "/groups/{name}"): OP,
    ("GET", "/rollouts"): V, ("POST", "/rollouts"): OP, ("GET", "/rollouts/{rollout_id}"): V,
    ("GET", "/rollouts/{rollout_id}/devices"): V, ("GET", "/rollouts/{rollout_id}/events"): V,
    ("POST", "/rollouts/{rollout_id}/pause"): OP, ("POST", "/rollouts/{rollout_id}/resume"): OP,
    ("POST", "/rollouts/{rollout_id}/approve"): OP, ("POST", "/rollouts/{rollout_id}/cancel"): OP,
    ("POST", "/rollouts/{rollout_id}/stop"): OP,
    ("GET", "/toolchains"): V, ("POST", "/toolchains"): OP, ("POST", "/toolchains/archive"): OP,
    ("GET", "/toolchains/{name}"): V, ("DELETE", "/toolchains/{name}"): OP,
    # Pipelines: checking a file is a data scientist's or an operator's; running one deploys (an operator's).
    ("POST", "/pipelines/validate"): S, ("POST", "/pipelines/runs"): OP, ("GET", "/pipelines/runs"): V,
    ("GET", "/pipelines/runs/{run_id}"): V, ("POST", "/pipelines/runs/{run_id}/rerun"): OP,
    ("POST", "/pipelines/runs/{run_id}/cancel"): OP,
    ("GET", "/users"): A, ("POST", "/users"): A, ("PATCH", "/users/{name}"): A,
    ("POST", "/users/{name}/tokens"): A, ("GET", "/tokens"): A, ("DELETE", "/tokens/{token_id}"): A,
    ("GET", "/datasets"): V, ("POST", "/datasets"): S, ("GET", "/datasets/{ref}"): V,
    ("PATCH", "/datasets/{ref}"): S, ("DELETE", "/datasets/{ref}"): S, ("GET", "/datasets/{ref}/samples"): V,
    ("POST", "/datasets/{ref}/samples"): S, ("PATCH", "/datasets/{ref}/samples"): S,
    ("GET", "/datasets/{ref}/samples/{sample_id}"): V, ("DELETE", "/datasets/{ref}/samples/{sample_id}"): S,
    ("GET", "/datasets/{ref}/samples/{sample_id}/data"): V, ("GET", "/datasets/{ref}/versions"): V,
    ("POST", "/datasets/{ref}/collect"): S, ("GET", "/datasets/{ref}/collectors"): V,
    ("DELETE", "/datasets/{ref}/collectors/{endpoint}"): S,
    ("GET", "/trainings"): V, ("POST", "/trainings"): S, ("GET", "/trainings/{training_id}"): V,
    ("POST", "/trainings/{training_id}/cancel"): S, ("POST", "/models/import"): S,
    ("GET", "/models/{ref}/lineage"): V, ("GET", "/models/{ref}/variants/{variant}"): V,
    ("GET", "/evaluations"): V, ("POST", "/evaluations"): S, ("GET", "/evaluations/{evaluation_id}"): V,
    ("GET", "/evaluations/{evaluation_id}/confusion.png"): V, ("POST", "/profiles"): S,
    ("GET", "/telemetry/fleet"): V,
    ("GET", "/dryruns"): V, ("POST", "/dryruns"): OP, ("GET", "/dryruns/{run_id}"): V,
    # The CFO: comparisons are reads; a cloud endpoint publishes a model version (a data scientist's
    # or an operator's call); a device's policy changes what it does in the field (an operator's).
    ("GET", "/cost/inputs"): V, ("POST", "/cost/compare"): V, ("POST", "/cost/chart"): V,
    ("POST", "/hybrid/endpoints"): S, ("GET", "/hybrid/endpoints"): V,
    ("GET", "/hybrid/endpoints/{endpoint_id}"): V, ("DELETE", "/hybrid/endpoints/{endpoint_id}"): S,
    ("PUT", "/devices/{endpoint}/hybrid"): OP, ("GET", "/devices/{endpoint}/hybrid"): V,
    ("DELETE", "/devices/{endpoint}/hybrid"): OP, ("POST", "/hybrid/evaluations"): S,
    ("GET", "/hybrid/evaluations"): V, ("GET", "/hybrid/evaluations/{evaluation_id}"): V,
    ("GET", "/hybrid/evaluations/{evaluation_id}/plot.png"): V,
    # Devices authenticate with their own credentials: a grant, or their token.
    ("GET", "/devices/{endpoint}/packages/{sha256}"): "device", ("POST", "/ota/{endpoint}/poll"): "device",
    ("POST", "/ota/{endpoint}/escalate"): "device",
}


def _schema_routes(orchestrator: str) -> list[tuple[str, str]]:
    schema = create_app(Settings(lwm2m={"port": 0}, orchestrator=orchestrator)).openapi()
    return [(m.upper(), p) for p, item in schema["paths"].items() for m in item]


ROUTES = sorted({r for o in ("lwm2m", "http-pull") for r in _schema_routes(o)})


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[Role, str]]]:
    data = tmp_path_factory.mktemp("access")
    app = create_app(Settings(data_dir=data, lwm2m={"port": 0}, orchestrator="http-pull"))
    with TestClient(app) as client:
        admin = as_admin(client, data)
        tokens = {Role.admin: client.headers["Authorization"].removeprefix("Bearer ")}
        for role in (Role.viewer, Role.data_scientist, Role.operator):
            assert admin.post("/users", json={"name": f"u-{role.value}", "role": role}).status_code == 201
            tokens[role] = admin.post(f"/users/u-{role.value}/tokens").json()["token"]
        del client.headers["Authorization"]
        yield client, tokens


def test_the_access_table_covers_every_route_of_the_schema() -> None:
    assert sorted(ACCESS) == ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_route_refuses_anonymous_and_wrong_roles(service: tuple[TestClient, dict[Role, str]],
                                                 method: str, path: str) -> None:
    client, tokens = service
    access = ACCESS[(method, path)]
    url = re.sub(r"\{[^}]+\}", "x", path)
    if isinstance(access, str):  # public or device routes take no user token, and need none
        answer = client.request(method, url, headers={"Authorization": f"Bearer {tokens[Role.viewer]}"})
        assert answer.status_code not in (401,), answer.text
        return
    anonymous = client.request(method, url)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert client.request(method, url, headers={"Authorization": "Bearer tmls_forged"}).status_code == 401
    for role, token in tokens.items():
        answer = client.request(method, url, headers={"Authorization": f"Bearer {token}"})
        if role is Role.admin or role in access or Role.viewer in access:
            assert answer.status_code not in (401, 403), (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.text)
            assert role.value in answer.json()["detail"]


def test_schema_declares_the_bearer_scheme_and_each_routes_errors(
        service: tuple[TestClient, dict[Role, str]]) -> None:
    client, _ = service
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer",
        "description": "an API token (`tinymlaas users token NAME`, or POST /auth/token)"}
    for (method, path), access in ACCESS.items():
        op = schema["paths"].get(path, {}).get(method.lower())
        if op is None:  # a route of the other orchestrator
            continue
        if isinstance(access, set):
            assert op["security"] == [{"token": []}], (method, path)
            for code in ("401", "403"):
                assert list(op["responses"][code]["content"]) == ["application/problem+json"], (path, code)
        else:
            assert "security" not in op, (method, path)


def test_device_credentials_only_from_an_operator(service: tuple[TestClient, dict[Role, str]]) -> None:
    client, tokens = service
    for role, status in ((Role.viewer, 403), (Role.data_scientist, 403), (Role.operator, 409)):
        r = client.post("/devices/d1/credentials", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == status, (role, r.text)  # 409: this service runs without device security


def test_a_password_gets_a_token_and_a_revoked_token_stops_working(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, lwm2m={"port": 0}))) as client:
        admin = as_admin(client, tmp_path)
        admin.post("/users", json={"name": "ana", "role": "data-scientist",
                                   "password": "correct horse battery"})
        del client.headers["Authorization"]
        assert client.post("/auth/token", json={"name": "ana", "password": "wrong one, long enough"}
                           ).status_code == 401
        issued = client.post("/auth/token", json={"name": "ana", "password": "correct horse battery"}).json()
        me = client.get("/auth/me", headers={"Authorization": f"Bearer {issued['token']}"}).json()
        assert (me["name"], me["role"]) == ("ana", "data-scientist")
        as_admin(client, tmp_path)
        assert client.delete(f"/tokens/{issued['id']}").status_code == 204
        gone = client.get("/auth/me", headers={"Authorization": f"Bearer {issued['token']}"})
        assert gone.status_code == 401
        # Only the hash is kept: the secret appears nowhere in the database file.
        assert issued["token"].encode() not in (tmp_path / "tinymlaas.sqlite3").read_bytes()

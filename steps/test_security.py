"""Steps for the security scenarios: callers, roles and tokens against a running service."""

from __future__ import annotations

from typing import Any

import httpx
from pytest_bdd import given, parsers, scenarios, then, when

scenarios("security")


def as_user(api: httpx.Client, token: str) -> httpx.Client:
    return httpx.Client(base_url=str(api.base_url), timeout=30, headers={"Authorization": f"Bearer {token}"})


@given(parsers.parse('the admin has created "{viewer}" as a viewer and "{operator}" as an operator'),
       target_fixture="people")
def people(api: httpx.Client, viewer: str, operator: str) -> dict[str, Any]:
    tokens = {}
    for name, role in ((viewer, "viewer"), (operator, "operator")):
        assert api.post("/users", json={"name": name, "role": role}).status_code == 201
        tokens[name] = api.post(f"/users/{name}/tokens").json()["token"]
    return {"tokens": tokens}


@when("someone without a token asks for the devices, a device's credentials and an OS image",
      target_fixture="answers")
def anonymous(api: httpx.Client) -> list[httpx.Response]:
    with httpx.Client(base_url=str(api.base_url), timeout=30) as stranger:
        return [stranger.get("/devices"),
                stranger.post("/devices/victim/credentials", json={"replace": True}),
                stranger.get(f"/artifacts/{'0' * 64}")]


@then("each answer is 401 with a problem saying an API token is needed")
def refused_401(answers: list[httpx.Response]) -> None:
    for r in answers:
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text
        assert "API token" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"


@when(parsers.parse('"{name}" lists the models and then asks for credentials for device "{ep}"'),
      target_fixture="answers")
def viewer_tries(api: httpx.Client, people: dict[str, Any], name: str, ep: str) -> list[httpx.Response]:
    with as_user(api, people["tokens"][name]) as client:
        return [client.get("/models"), client.post(f"/devices/{ep}/credentials")]


@then("the list is answered and the credentials are refused naming the operator role")
def viewer_refused(answers: list[httpx.Response]) -> None:
    listed, creds = answers
    assert listed.status_code == 200
    assert creds.status_code == 403 and "operator role" in creds.json()["detail"], creds.text


@when(parsers.parse('"{name}" asks for credentials for device "{ep}"'), target_fixture="answers")
def operator_asks(api: httpx.Client, people: dict[str, Any], name: str, ep: str) -> list[httpx.Response]:
    with as_user(api, people["tokens"][name]) as client:
        return [client.post(f"/devices/{ep}/credentials")]


@then(parsers.parse('the service says device security is off, not that "{name}" may not'))
def operator_allowed(answers: list[httpx.Response], name: str) -> None:
    (r,) = answers
    assert r.status_code == 409 and "security is off" in r.json()["detail"], r.text


@given(parsers.parse('the admin has given "{name}" the password "{password}"'))
def set_password(api: httpx.Client, people: dict[str, Any], name: str, password: str) -> None:
    assert api.patch(f"/users/{name}", json={"password": password}).status_code == 200
    people["password"] = (name, password)


@when(parsers.parse('"{name}" signs in with that password'))
def sign_in(api: httpx.Client, people: dict[str, Any], name: str) -> None:
    user, password = people["password"]
    with httpx.Client(base_url=str(api.base_url), timeout=30) as anonymous_client:
        reply = anonymous_client.post("/auth/token", json={"name": user, "password": password})
    assert reply.status_code == 201, reply.text
    people["session"] = reply.json()


@then("she gets a token that says she is a viewer")
def whoami(api: httpx.Client, people: dict[str, Any]) -> None:
    with as_user(api, people["session"]["token"]) as client:
        me = client.get("/auth/me").json()
    assert me["role"] == "viewer"


@when("the admin revokes that token")
def revoke(api: httpx.Client, people: dict[str, Any]) -> None:
    assert api.delete(f"/tokens/{people['session']['id']}").status_code == 204


@then("the token is refused from then on")
def refused_after(api: httpx.Client, people: dict[str, Any]) -> None:
    with as_user(api, people["session"]["token"]) as client:
        assert client.get("/auth/me").status_code == 401

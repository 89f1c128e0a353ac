"""The web app without a browser: sessions, CSRF, who sees which page, what the pages show."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from _web import PASSWORD, Web
from starlette.routing import Route

from tinymlaas.api.security import SESSION_COOKIE
from tinymlaas.web.site import STATIC_DIR, sections


def test_login_keeps_the_session_in_a_strict_httponly_cookie_and_logout_revokes_it(web: Web) -> None:
    client = web.client
    r = client.post("/ui/login", data={"name": "olga", "password": PASSWORD, "next": "/ui/operator/jobs"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/operator/jobs"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=tmls_")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert client.get("/auth/me").json()["name"] == "olga"  # the API takes the session too
    token = client.cookies[SESSION_COOKIE]
    r = client.post("/ui/logout", headers=web.csrf())
    assert r.status_code == 204 and r.headers["HX-Redirect"] == "/ui/login"
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_wrong_password_shows_the_apis_words_and_no_cookie(web: Web) -> None:
    r = web.client.post("/ui/login", data={"name": "olga", "password": "not her password"})
    assert r.status_code == 401 and "unknown user or wrong password" in r.text
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("target", ["//elsewhere.example/x", "https://elsewhere.example/", "/\\elsewhere"])
def test_after_login_only_a_path_of_this_service_is_followed(shared_web: Web, target: str) -> None:
    shared_web.client.cookies.clear()
    r = shared_web.client.post("/ui/login", data={"name": "olga", "password": PASSWORD, "next": target})
    assert r.headers["location"] == "/ui/"


def test_changes_by_session_cookie_need_the_csrf_token_and_the_same_origin(web: Web) -> None:
    client = web.login("admin")
    body = {"name": "newcomer", "role": "viewer"}
    r = client.post("/users", json=body)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert "CSRF" in r.json()["detail"]
    assert client.post("/users", json=body, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    r = client.post("/users", json=body, headers={**web.csrf(), "Origin": "http://elsewhere.example"})
    assert r.status_code == 403 and "another site" in r.json()["detail"]
    assert client.post("/users", json=body, headers={**web.csrf(), "Origin": "http://testserver"}
                       ).status_code == 201
    # An API client's bearer token is no ambient credential: no CSRF token needed.
    client.cookies.clear()
    r = client.post("/users", json={"name": "scripted", "role": "viewer"},
                    headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 201


def _ui_routes() -> list[Route]:
    """Every route of every persona section (each router carries its full paths)."""
    return [r for s in sections() for r in s.router.routes if isinstance(r, Route)]


UI = [(m, r.path) for r in _ui_routes() for m in sorted(r.methods or ()) if m != "HEAD"]


@pytest.mark.parametrize(("method", "path"), UI, ids=[f"{m} {p}" for m, p in UI])
def test_every_page_and_action_refuses_anyone_not_logged_in(shared_web: Web, method: str, path: str
                                                            ) -> None:
    url = re.sub(r"\{[^}]+\}", "x", path)
    shared_web.client.cookies.clear()
    r = shared_web.client.request(method, url)
    if method == "GET" and not path.endswith("/events") and not path.endswith("/rows") \
            and not path.endswith("/capabilities"):
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=/ui/"), r.text
    else:  # fragments, streams and actions answer as the API does
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text


def test_a_viewer_sees_pages_but_not_the_operators_actions(web: Web) -> None:
    client = web.login("viewer")
    poll(web, "dev-1", status={"board": "x86-tflm", "firmware_version": "1.0.0"})
    page = client.get("/ui/operator/devices/dev-1")
    assert page.status_code == 200 and "Deploy a build" not in page.text and "Credentials" not in page.text
    r = client.post("/ui/operator/devices/dev-1/deploy", data={"build": "b"}, headers=web.csrf())
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    web.login("olga")
    assert "Deploy a build" in client.get("/ui/operator/devices/dev-1").text


def test_the_navigation_holds_each_persona_section_and_the_docs(shared_web: Web) -> None:
    assert [s.name for s in sections()] == ["ceo", "operator", "fleet", "scientist", "cto", "cfo"]
    page = shared_web.login("viewer").get("/ui/ceo/").text
    for link in ("/ui/ceo/", "/ui/operator/devices", "/ui/operator/builds", "/ui/operator/pipelines",
                 "/ui/fleet/registry",
                 "/ui/fleet/rollouts", "/ui/scientist/datasets", "/ui/scientist/trainings",
                 "/ui/scientist/models", "/ui/cto/dryruns", "/ui/cfo/cost", "/docs"):
        assert f'href="{link}"' in page


def test_pages_answer_a_missing_thing_with_an_html_page_in_the_apis_words(shared_web: Web) -> None:
    client = shared_web.login("viewer")
    r = client.get("/ui/operator/devices/ghost")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "no device" in r.text.lower() or "ghost" in r.text
    r = client.get("/ui/cto/dryruns/nope")
    assert r.status_code == 404 and "no dry-run &#39;nope&#39;" in r.text


def test_pages_allow_scripts_from_the_service_only(shared_web: Web) -> None:
    r = shared_web.login("viewer").get("/ui/ceo/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), "no inline script"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/ui/ceo/"])
def test_docs_and_pages_load_every_asset_from_the_service(shared_web: Web, path: str) -> None:
    if not (STATIC_DIR / "manifest.json").exists():
        pytest.skip("web/dist is not built (ci/setup.sh builds it)")
    client = shared_web.login("viewer")
    html = client.get(path).text
    urls = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assets = [u for u in urls if u.startswith("/static/")]
    assert assets and not [u for u in urls if "://" in u]
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200 and r.content, url
    redoc = (STATIC_DIR / "vendor" / "redoc" / "redoc.standalone.js").read_text()
    assert "cdn.redoc.ly/redoc/logo" not in redoc


def poll(web: Web, endpoint: str, *, status: dict[str, Any]) -> None:
    """One HTTP pull poll of a device reporting ``status`` (what a real device sends: no cookie)."""
    session = dict(web.client.cookies)
    web.client.cookies.clear()
    r = web.client.post(f"/ota/{endpoint}/poll", json={"status": status, "wait_s": 0})
    web.client.cookies.update(session)
    assert r.status_code == 200, r.text


def test_devices_list_filters_and_the_dashboard_shows_the_fleets_figures(web: Web) -> None:
    client = web.login("viewer")
    for i, (board, fw) in enumerate([("x86-tflm", "1.0.0"), ("x86-tflm", "2.0.0"), ("lm3s6965evb", "2.0.0")]):
        poll(web, f"dev-{i}", status={"board": board, "firmware_version": fw, "inference_count": 10 * i,
                                     "latency_us": 100 + i, "instructions": 2000 + i})
    deadline = time.monotonic() + 30
    while sum(bool(d["firmware_version"]) for d in devices_figures(web)) < 3:
        assert time.monotonic() < deadline, "no telemetry tick recorded the three devices"
        time.sleep(0.1)
    # The registry writes what the polls said in batches: wait for its third device too.
    while "2 of 3 devices" not in (rows := client.get("/ui/operator/devices/rows",
                                                      params={"firmware": "2.0.0"}).text):
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert "dev-1" in rows and "dev-2" in rows and "dev-0" not in rows and "2 of 3 devices" in rows
    rows = client.get("/ui/operator/devices/rows", params={"q": "DEV-2", "board": "lm3s6965evb"}).text
    assert "1 of 3 devices" in rows
    fleet = client.get("/telemetry/fleet").json()
    assert (fleet["devices"], fleet["online"]) == (3, 3)
    assert {f["version"]: f["devices"] for f in fleet["firmware"]} == {"1.0.0": 1, "2.0.0": 2}
    boards = {b["board"]: b for b in fleet["boards"]}
    assert boards["lm3s6965evb"]["instructions"]["p50"] == 2002
    # Devices seen for the first time count the inferences of their whole life so far.
    assert fleet["inferences_last_hour"] == 30
    page = client.get("/ui/ceo/").text
    assert 'data-testid="devices-online">3<' in page and "chart-firmware" in page


def devices_figures(web: Web) -> list[dict[str, Any]]:
    from tinymlaas.store import Store

    store = web.client.app.state.store  # type: ignore[attr-defined]
    assert isinstance(store, Store)
    return [d.model_dump() for d in store.telemetry.devices()]


def test_a_dry_run_with_an_unknown_or_repeated_board_is_refused_before_it_starts(web: Web) -> None:
    auth = {"Authorization": f"Bearer {web.admin_token}"}
    r = web.client.post("/dryruns", json={"boards": ["no-such-board"]}, headers=auth)
    assert r.status_code == 404 and "no-such-board" in r.json()["detail"]
    r = web.client.post("/dryruns", json={"boards": ["x86-tflm", "x86-tflm"]}, headers=auth)
    assert r.status_code == 422 and "twice" in r.json()["detail"]
    r = web.client.post("/dryruns", json={"boards": ["x86-tflm"], "epochs": 3}, headers=auth)
    assert r.status_code == 422 and "epochs" in r.json()["detail"]
    assert web.client.get("/dryruns", headers=auth).json() == []

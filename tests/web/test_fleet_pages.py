"""The operator's fleet pages without a browser: the registry's filters and pages, pre-registering,
editing and decommissioning, groups, and rollouts refused in the API's words."""

from __future__ import annotations

import re

from _web import Web


def test_the_registry_pre_registers_filters_pages_edits_and_decommissions(web: Web) -> None:
    client = web.login("olga")
    csrf = web.csrf()
    for i in range(12):
        r = client.post("/ui/fleet/registry", data={"endpoint": f"cell-{i:02d}", "board": "x86-tflm" if i % 2
                                                    else "mps2-an385", "tags": "site:oulu" if i < 4 else ""},
                        headers=csrf)
        assert r.status_code == 200 and r.headers["HX-Trigger"] == "registry-changed", r.text
    assert "cell-11" in r.text and "is registered" in r.text
    r = client.post("/ui/fleet/registry", data={"endpoint": "cell-00"}, headers=csrf)
    assert r.status_code == 409 and "cell-00" in r.json()["detail"]
    r = client.post("/ui/fleet/registry", data={"endpoint": "bad name!"}, headers=csrf)
    assert r.status_code == 422 and r.json()["detail"].startswith("endpoint:")
    rows = client.get("/ui/fleet/registry/rows", params={"board": "x86-tflm", "limit": 5}).text
    assert "1\N{EN DASH}5 of 6 devices" in rows and ">Next<" in rows
    assert "cell-01" in rows and "cell-00" not in rows
    rows = client.get("/ui/fleet/registry/rows", params={"board": "x86-tflm", "limit": 5, "offset": 5}).text
    assert "6\N{EN DASH}6 of 6 devices" in rows and ">Previous<" in rows
    rows = client.get("/ui/fleet/registry/rows", params={"tags": "site:oulu"}).text
    assert "of 4 devices" in rows
    r = client.patch("/ui/fleet/registry/cell-03", data={"name": "press 3", "tags": "site:oulu line-2",
                                                          "location": "", "notes": "", "board": ""},
                     headers=csrf)
    assert r.status_code == 200 and "line-2" in r.text
    page = client.get("/ui/fleet/registry/cell-03").text
    assert 'value="press 3"' in page and "Decommission" in page
    r = client.post("/ui/fleet/registry/cell-03/decommission", data={"reason": "replaced"}, headers=csrf)
    assert r.status_code == 204 and r.headers["HX-Refresh"] == "true"
    assert "replaced" in client.get("/ui/fleet/registry/cell-03").text
    r = client.post("/ui/fleet/registry/cell-03/decommission", headers=csrf)
    assert r.status_code == 409 and "decommissioned already" in r.json()["detail"]
    assert "of 3 devices" in client.get("/ui/fleet/registry/rows", params={"tags": "site:oulu"}).text


def test_groups_and_rollouts_are_checked_as_the_api_checks_them(web: Web) -> None:
    client = web.login("olga")
    csrf = web.csrf()
    r = client.post("/ui/fleet/groups", data={"name": "canary", "tags": "", "devices": ""}, headers=csrf)
    assert r.status_code == 422 and "give a query" in r.json()["detail"]
    client.post("/ui/fleet/registry", data={"endpoint": "cell-1", "tags": "ring:canary"}, headers=csrf)
    r = client.post("/ui/fleet/groups", data={"name": "canary", "tags": "ring:canary"}, headers=csrf)
    assert r.status_code == 204
    page = client.get("/ui/fleet/groups").text
    assert re.search(r"tags ring:canary.*>1</a>", page, re.S)
    r = client.post("/ui/fleet/rollouts", data={"group": "canary", "builds": ["nope"], "waves": "1 rest",
                                                "success_threshold": "95", "error_threshold": "5"},
                    headers=csrf)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.post("/ui/fleet/rollouts", data={"group": "canary", "builds": ["nope"], "waves": "1 often"},
                    headers=csrf)
    assert r.status_code == 422 and "wave 'often'" in r.json()["detail"]
    assert "A rollout needs" in client.get("/ui/fleet/rollouts").text  # no finished build yet
    assert client.get("/ui/fleet/rollouts/ghost").status_code == 404
    assert "No toolchain" in client.get("/ui/fleet/toolchains").text
    assert "No bridge yet" in client.get("/ui/fleet/bridges").text


def test_a_viewer_reads_the_fleet_but_changes_nothing(web: Web) -> None:
    client = web.login("viewer")
    assert "Pre-register" not in client.get("/ui/fleet/registry").text
    r = client.post("/ui/fleet/registry", data={"endpoint": "x"}, headers=web.csrf())
    assert r.status_code == 403 and "operator" in r.json()["detail"]

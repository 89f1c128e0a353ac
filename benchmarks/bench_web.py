"""The web app with 1,000 devices: how long each page takes, in the service and in a browser.

A fleet (``_web_fleet``: the service in its own process, 1,000 simulated LwM2M devices, 50 of
them gone offline, a telemetry tick that read them all) is logged in to through the login form;
each page is asked for ``REPEAT`` times over HTTP (the service's time to answer) and loaded
``REPEAT`` times in Debian's chromium (navigation start to the load event: HTML, scripts,
styles and the charts, which are drawn before it). Target: every page shows 1,000 devices within 1 s.

    python benchmarks/run.py web [--json var/bench.json]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import bar_plot, report
from _web_fleet import Fleet

HERE = Path(__file__).parent
DEVICES = 1_000
REPEAT = 5
TARGET_MS = 1_000.0
PAGES = ["/ui/ceo/", "/ui/operator/devices", "/ui/operator/devices?status=online&board=mps2-an385",
         "/ui/operator/devices/field-00001", "/ui/operator/builds", "/ui/operator/jobs",
         "/ui/operator/models", "/ui/cto/dryruns", "/docs", "/redoc",
         "/ui/fleet/registry?limit=1000", "/ui/fleet/registry?board=mps2-an385",
         "/ui/fleet/registry/field-00001", "/ui/fleet/groups", "/ui/fleet/rollouts",
         "/ui/scientist/datasets", "/ui/scientist/models", "/ui/cfo/cost"]


def _server_ms(client: httpx.Client, path: str) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
        size = len(r.content)
    return times, size


def _browser_ms(fleet: Fleet, paths: list[str]) -> dict[str, list[float]]:
    sys.path.insert(0, str(HERE.parent / "tests" / "web"))
    from _browser import launch, tab
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = launch(p)
        with tab(browser, fleet.url) as t:
            page = t.page
            page.goto("/ui/login")
            page.get_by_label("User name").fill("admin")
            page.get_by_label("Password").fill(fleet.password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/ui/ceo/")
            for path in paths:
                for _ in range(REPEAT):
                    page.goto(path, wait_until="load")
                    out.setdefault(path, []).append(page.evaluate(
                        "performance.getEntriesByType('navigation')[0].loadEventEnd"))
            assert not t.errors and not t.outside, (t.errors, t.outside)
        browser.close()
    return out


def run(json_path: Path | None = None, plots: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        fleet = Fleet(DEVICES, Path(tmp))
        try:
            fleet.content()
            fleet.infer()
            fleet.ticked()  # every device read (the short-lived ones are offline by then)
            overview = fleet.api.get("/telemetry/fleet").json()
            assert overview["devices"] == DEVICES, overview["devices"]
            client = httpx.Client(base_url=fleet.url, timeout=60)
            r = client.post("/ui/login", data={"name": "admin", "password": fleet.password})
            assert r.status_code == 303, r.text
            server = {p: _server_ms(client, p) for p in PAGES}
            browser = _browser_ms(fleet, PAGES)
        finally:
            fleet.close()
    rows: list[dict[str, Any]] = []
    for path in PAGES:
        times, size = server[path]
        rows.append({"page": path, "KiB": round(size / 1024, 1),
                     "service p50 ms": statistics.median(times), "service max ms": max(times),
                     "browser load p50 ms": statistics.median(browser[path]),
                     "browser load max ms": max(browser[path]),
                     "within 1 s": max(browser[path]) < TARGET_MS and max(times) < TARGET_MS})
    report(f"web pages with {DEVICES:,} devices ({overview['online']} online)", rows, json_path=json_path,
           extra={"devices": DEVICES, "online": overview["online"], "target_ms": TARGET_MS})
    if plots is not None:
        bar_plot(plots / "web_pages.png", f"page load with {DEVICES:,} devices",
                 [r["page"].removeprefix("/ui/") for r in rows],
                 {"service p50": [r["service p50 ms"] for r in rows],
                  "browser load p50": [r["browser load p50 ms"] for r in rows]}, "ms")

"""Screenshots of the web app's main pages for the README, taken in Debian's chromium from a
service with a simulated fleet (``benchmarks/_web_fleet.py``): docs/screenshots/*.png.

    .venv/bin/python ci/screenshots.py [--devices 1000] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "web")]

from _browser import launch, tab  # noqa: E402
from _web_fleet import Fleet  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

SHOTS = {  # file: (path, width, height)
    "dashboard": ("/ui/ceo/", 1280, 1000),
    "devices": ("/ui/operator/devices?status=&board=mps2-an385", 1280, 800),
    "device": ("/ui/operator/devices/field-00003", 1280, 900),
    "builds": ("/ui/operator/builds", 1280, 700),
    "dry-runs": ("/ui/cto/dryruns", 1280, 800),
    "docs": ("/docs", 1280, 800),
    "dashboard-phone": ("/ui/ceo/", 390, 844),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinymlaas-shots-") as tmp:
        fleet = Fleet(args.devices, Path(tmp), telemetry_s=3)
        try:
            fleet.content()
            after = None
            for _ in range(6):  # a few ticks of history, with inferences between them
                fleet.infer()
                after = fleet.ticked(after)
            with sync_playwright() as p:
                browser = launch(p)
                for name, (path, width, height) in SHOTS.items():
                    with tab(browser, fleet.url, width=width, height=height) as t:
                        page = t.page
                        page.goto("/ui/login")
                        page.get_by_label("User name").fill("admin")
                        page.get_by_label("Password").fill(fleet.password)
                        page.get_by_role("button", name="Log in").click()
                        page.wait_for_url("**/ui/ceo/")
                        page.goto(path)
                        time.sleep(1.5)  # live parts (capabilities, charts, docs) settle
                        page.screenshot(path=str(args.out / f"{name}.png"))
                        assert not t.errors and not t.outside, (name, t.errors, t.outside)
                    print(f"wrote {args.out / name}.png")
                browser.close()
        finally:
            fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of the web app's main pages for the README, taken in Debian's chromium from a
service with a simulated fleet (``benchmarks/_web_fleet.py``): docs/screenshots/*.png.

    .venv/bin/python ci/screenshots.py [--devices 1000] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "web")]

from _browser import launch, tab  # noqa: E402
from _web_fleet import Fleet  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

SHOTS = {  # file: (path, width, height); "{...}" is filled from what content() made
    "dashboard": ("/ui/ceo/", 1280, 1000),
    "devices": ("/ui/operator/devices?status=&board=mps2-an385", 1280, 800),
    "device": ("/ui/operator/devices/field-00003", 1280, 900),
    "builds": ("/ui/operator/builds", 1280, 700),
    "dry-runs": ("/ui/cto/dryruns", 1280, 800),
    "docs": ("/docs", 1280, 800),
    "dashboard-phone": ("/ui/ceo/", 390, 844),
    "registry": ("/ui/fleet/registry?limit=1000", 1280, 800),
    "rollout": ("/ui/fleet/rollouts/{rollout}", 1280, 900),
    "dataset": ("/ui/scientist/datasets/digits", 1280, 1000),
    "dataset-phone": ("/ui/scientist/datasets/digits", 390, 844),
    "training": ("/ui/scientist/trainings/{training}", 1280, 800),
    "evaluation": ("/ui/scientist/models/{model}", 1280, 1200),
    "cost": ("/ui/cfo/cost", 1280, 1100),
    "pipelines": ("/ui/operator/pipelines", 1280, 1000),
    "pipeline": ("/ui/operator/pipelines/runs/{pipeline}", 1280, 800),
}
#: The pipeline run for the screenshots: hello_world built again and sent to the pilot line.
PIPELINE = """\
name: hello-pilot-line
model: hello_world:1
compile:
  version: 2.1.0
  targets:
    - board: x86-tflm
      builder: local
deploy:
  group: pilot-line
  kind: firmware
  waves: ["2", "rest"]
"""


#: What to do on a page before its screenshot.
def _compare(page: Page) -> None:
    page.get_by_label("Model").select_option(label="hello_world:1")
    page.get_by_role("button", name="Compare").click()
    page.locator("[data-testid=summary], #alerts .problem").first.wait_for()
    problem = page.locator("#alerts .problem")
    assert not problem.count(), problem.inner_text()


def _focus_a_sample(page: Page) -> None:
    page.get_by_role("checkbox").first.focus()


def _check_a_pipeline(page: Page) -> None:
    """A file with three mistakes, checked: each problem with its line."""
    wrong = PIPELINE.replace("version: 2.1.0", "verison: 2.1.0").replace(
        "builder: local\n", "builder: local\n    - board: esp32\n").replace(
        "group: pilot-line\n", "group: pilot-lines\n")
    page.get_by_label("The pipeline, in YAML").fill(wrong)
    page.get_by_label("File name").fill("pilot-line.yaml")
    page.get_by_role("button", name="Validate").click()
    page.get_by_test_id("problems").wait_for()


ACTIONS: dict[str, Callable[[Page], None]] = {"cost": _compare, "dataset-phone": _focus_a_sample,
                                              "pipelines": _check_a_pipeline}


def content(fleet: Fleet, work: Path) -> dict[str, str]:
    """For the data scientist's, the operator's and the CFO's pages: a digits dataset (a few samples
    left unlabelled), a model trained on it, evaluated and profiled on two boards, a rollout of
    firmware to 20 devices, then a pipeline that builds hello_world again and rolls it out to them."""
    from tinymlaas.datasets.samples import EXAMPLES

    api = fleet.api
    ex = EXAMPLES["digits"]
    archive = work / "digits.zip"
    ex.write(archive, 300, 0)
    spec = ex.spec.model_dump(exclude_none=True)
    api.post("/datasets", json={"name": "digits", "task": "image", "spec": spec,
                                "description": "scikit-learn's 8x8 handwritten digits"}).raise_for_status()
    with archive.open("rb") as fh:
        api.post("/datasets/digits/samples", files={"files": ("digits.zip", fh)}).raise_for_status()
    keys = [s["id"] for s in api.get("/datasets/digits/samples", params={"limit": 12}).json()["items"]]
    api.patch("/datasets/digits/samples", json={"samples": keys, "label": None}).raise_for_status()
    training = api.post("/trainings", json={"dataset": "digits", "epochs": 12, "batch_size": 32}).json()
    assert fleet.job(training["job_id"])["state"] == "succeeded", training
    model = api.get(f"/trainings/{training['id']}").json()["model_id"]
    for name, boards in ((model, ["mps2-an385", "stm32vldiscovery"]), ("hello_world", ["mps2-an385"])):
        job = fleet.job(api.post("/profiles", json={"model": name, "targets": boards}).json()["id"])
        assert job["state"] == "succeeded", job
    builds = [b for b in api.get("/builds").json() if b["firmware"]]
    # Devices the registry knows as x86 (it read some of them before their figures were set).
    known = api.get("/devices", params={"board": "x86-tflm", "limit": 1000}).json()
    x86 = [d["endpoint"] for d in known if (d["reported"] or {}).get("cpu") == "x86-64"][:20]
    api.post("/groups", json={"name": "pilot-line", "devices": x86,
                              "description": "the x86 gateways of the pilot line"}).raise_for_status()
    reply = api.post("/rollouts", json={"name": "firmware 2.0.0 to the pilot line", "group": "pilot-line",
                                        "builds": [builds[0]["id"]], "waves": ["2", "25%", "rest"]})
    assert reply.status_code == 201, reply.text
    rollout = reply.json()
    deadline = time.monotonic() + 300
    while api.get(f"/rollouts/{rollout['id']}").json()["state"] == "running":
        assert time.monotonic() < deadline, "the rollout did not end"
        time.sleep(1)
    reply = api.post("/pipelines/runs", json={"source": PIPELINE, "filename": "pilot-line.yaml"})
    assert reply.status_code == 201, reply.text
    run = reply.json()
    while run["state"] == "running":
        assert time.monotonic() < deadline + 300, "the pipeline did not end"
        time.sleep(1)
        run = api.get(f"/pipelines/runs/{run['id']}").json()
    assert run["state"] == "succeeded", run
    return {"training": training["id"], "model": model, "rollout": rollout["id"], "pipeline": run["id"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--only", nargs="*", help="these screenshots only")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinymlaas-shots-") as tmp:
        fleet = Fleet(args.devices, Path(tmp), telemetry_s=3)
        try:
            fleet.content()
            made = content(fleet, Path(tmp))
            after = None
            for _ in range(6):  # a few ticks of history, with inferences between them
                fleet.infer()
                after = fleet.ticked(after)
            with sync_playwright() as p:
                browser = launch(p)
                for name, (path, width, height) in SHOTS.items():
                    if args.only and name not in args.only:
                        continue
                    with tab(browser, fleet.url, width=width, height=height) as t:
                        page = t.page
                        page.goto("/ui/login")
                        page.get_by_label("User name").fill("admin")
                        page.get_by_label("Password").fill(fleet.password)
                        page.get_by_role("button", name="Log in").click()
                        page.wait_for_url("**/ui/ceo/")
                        page.goto(path.format(**made))
                        if name in ACTIONS:
                            ACTIONS[name](page)
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

"""The web app in a real browser (Debian's chromium through Playwright) against a real service:
logging in, every page without a console error, the docs offline, an operator deploying a model
to a running x86 device container, the CTO's dry-run, a pipeline checked, fixed, run and re-run."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _browser import launch, tab
from _web import PASSWORD, bench_pipeline
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.lwm2m.security import write_context
from tinymlaas.models import LwM2MAttach
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board

pytestmark = pytest.mark.web

PAGES = {"/ui/ceo/": "Fleet dashboard", "/ui/operator/devices": "Devices",
         "/ui/operator/builds": "Builds", "/ui/operator/jobs": "Jobs", "/ui/operator/models": "Models",
         "/ui/operator/pipelines": "Pipelines",
         "/ui/fleet/registry": "Registry", "/ui/fleet/bridges": "Bridges", "/ui/fleet/groups": "Groups",
         "/ui/fleet/rollouts": "Rollouts", "/ui/fleet/toolchains": "Toolchains",
         "/ui/scientist/datasets": "Datasets", "/ui/scientist/datasets/digits": "digits version 1",
         "/ui/scientist/trainings": "Training", "/ui/scientist/models": "Evaluation",
         "/ui/cto/dryruns": "Lifecycle dry-runs", "/ui/cfo/cost": "Cloud vs TinyML vs hybrid"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory,
            service_databases: Callable[[Path], str]) -> Iterator[BackgroundServer]:
    """A service with LwM2M over OSCORE, as the operator runs it; users olga (operator) and vic
    (viewer) with passwords."""
    base = Settings()
    data = tmp_path_factory.mktemp("web-service")
    settings = base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data), "telemetry_interval_s": 1.0,
        "lwm2m": base.lwm2m.model_copy(update={"port": 0, "security": "oscore"})})
    with BackgroundServer(settings) as server, server.client() as api:
        for name, role in (("olga", "operator"), ("vic", "viewer")):
            r = api.post("/users", json={"name": name, "role": role, "password": PASSWORD})
            assert r.status_code == 201, r.text
        yield server


def log_in(page: Page, name: str = "olga", password: str = PASSWORD) -> None:
    """By keyboard, as a person who does not reach for the mouse would."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("User name").fill(name)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Fleet dashboard")).to_be_visible()


def test_log_in_refused_with_the_apis_words_then_in_and_out(browser: Browser, service: BackgroundServer
                                                             ) -> None:
    with tab(browser, service.url) as t:
        page = t.page
        page.goto("/ui/operator/jobs")
        page.get_by_label("User name").fill("olga")
        page.get_by_label("Password").fill("not her password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("unknown user or wrong password")
        assert len(t.errors) == 1 and "401" in t.errors[0]  # the browser logs the refusal's status
        t.errors.clear()
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()  # back where they were going
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs")
               ).to_have_attribute("aria-current", "page")
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/ui/login$"), timeout=20_000)  # a loaded CI machine
        page.goto("/ui/ceo/")
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        assert not t.errors and not t.outside


def digits_archive(n: int, *, labelled: bool) -> bytes:
    """``n`` of scikit-learn's digits as PNGs in a zip, in a folder per class or all at its top."""
    from PIL import Image

    from tinymlaas.datasets.samples import digits_images

    images, labels = digits_images(n)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (img, y) in enumerate(zip(images, labels, strict=True)):
            png = io.BytesIO()
            Image.fromarray(img).save(png, format="PNG")
            zf.writestr(f"{y}/{i:03d}.png" if labelled else f"{i:03d}.png", png.getvalue())
    return buf.getvalue()


def new_dataset(api: httpx.Client, name: str, archive: bytes) -> None:
    spec = EXAMPLES["digits"].spec.model_dump(exclude_none=True)
    assert api.post("/datasets", json={"name": name, "task": "image", "spec": spec}).status_code == 201
    r = api.post(f"/datasets/{name}/samples", files={"files": (f"{name}.zip", archive)})
    assert r.status_code == 200 and not r.json()["refused"], r.text


@pytest.fixture(scope="module")
def digits(service: BackgroundServer) -> str:
    """A labelled image dataset, for the pages that show one."""
    with service.client() as api:
        new_dataset(api, "digits", digits_archive(40, labelled=True))
    return "digits"


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_every_page_loads_without_console_errors_and_fits_the_width(
        browser: Browser, service: BackgroundServer, digits: str, width: int) -> None:
    with tab(browser, service.url, width=width, height=844 if width < 800 else 900) as t:
        log_in(t.page)
        for path, heading in PAGES.items():
            t.page.goto(path)
            expect(t.page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            t.page.wait_for_timeout(300)  # the page's scripts ran (its live stream stays open)
            overflow = t.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} is {overflow} px wider than {width} px"
        assert not t.errors, t.errors
        assert not t.outside, t.outside


def test_the_skip_link_and_the_navigation_work_by_keyboard(browser: Browser, service: BackgroundServer
                                                           ) -> None:
    with tab(browser, service.url) as t:
        page = t.page
        log_in(page)
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
        page.get_by_role("link", name="Devices").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()


@pytest.mark.parametrize(("path", "shows"), [("/docs", "GET/devices"), ("/redoc", "TinyMLaaS")])
def test_the_api_docs_render_with_the_network_closed(browser: Browser, service: BackgroundServer,
                                                    path: str, shows: str) -> None:
    with tab(browser, service.url) as t:
        t.page.goto(path)
        if path == "/docs":
            expect(t.page.locator(".opblock-summary").filter(has_text="/devices").first).to_be_visible()
            expect(t.page.get_by_role("heading", name=re.compile("TinyMLaaS"))).to_be_visible()
        else:
            expect(t.page.get_by_role("heading", name=re.compile(r"^TinyMLaaS"))).to_be_visible()
            expect(t.page.get_by_text("Compile, build, deploy and run").first).to_be_visible()
        t.page.wait_for_load_state("networkidle")
        assert not t.outside, f"{path} asked outside the service: {t.outside}"
        assert not t.errors, t.errors


# -- with real devices ------------------------------------------------------------------

def _job(api: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            assert job["state"] == "succeeded", job
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def x86_device(service: BackgroundServer, images: dict[str, bool], tmp_path: Path) -> Iterator[str]:
    """An x86 device container running hello_world firmware 1.0.0, joined over OSCORE."""
    ep = "web-x86"
    with service.client(timeout=120) as api:
        _job(api, api.post("/models/train", json={"recipe": "hello_world"}).json()["id"])
        reply = api.post("/builds", json={"model": "hello_world", "target": "x86-tflm", "version": "1.0.0"})
        assert reply.status_code == 202, reply.text
        _job(api, reply.json()["job"]["id"])
        build = api.get(f"/builds/{reply.json()['build']['id']}").json()
        flash = tmp_path / "flash"
        flash.mkdir()
        image = api.get(f"/artifacts/{build['firmware']['image_sha256']}").content
        (flash / "firmware.pyz").write_bytes(image)
        creds = api.post(f"/devices/{ep}/credentials", json={"replace": True}).json()
        oscore = write_context(tmp_path / "oscore", creds, role="device")
        uri = api.get("/orchestrator").json()["uri"]
        board = get_board(Settings().targets_dir, "x86-tflm")
        with X86Device(board, flash, attach=LwM2MAttach(uri=uri, endpoint=ep, credentials=oscore)):
            deadline = time.monotonic() + 30
            while not any(d["endpoint"] == ep and d["online"] for d in api.get("/devices").json()):
                assert time.monotonic() < deadline, f"{ep} did not join"
                time.sleep(0.2)
            yield ep


@pytest.mark.docker
@pytest.mark.x86
@pytest.mark.slow
def test_the_operator_builds_a_model_deploys_it_to_a_running_device_and_watches_it_finish(
        browser: Browser, service: BackgroundServer, x86_device: str) -> None:
    with tab(browser, service.url) as t, service.client() as api:
        page = t.page
        _job(api, api.post("/models/train", json={"recipe": "hello_world_float"}).json()["id"])
        log_in(page)
        # The device is listed online, with the firmware the telemetry read from it.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Devices").click()
        page.get_by_label("Endpoint contains").fill("web-")
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=x86_device))
        expect(row).to_contain_text("online")
        expect(row).to_contain_text("1.0.0", timeout=15_000)
        # A build of the float model for the board, followed step by step on the Builds page.
        page.get_by_role("link", name="Builds").click()
        page.get_by_label("Model").select_option(label="hello_world_float:1")
        page.get_by_label("Board").select_option("x86-tflm")
        page.get_by_role("button", name="Build").click()
        expect(page.get_by_text(re.compile(r"^Done"))).to_be_visible(timeout=300_000)
        # The device page: capabilities read live, an action refused in the API's words, the deployment.
        page.goto(f"/ui/operator/devices/{x86_device}")
        caps = page.get_by_role("region", name="Capabilities, read now")
        expect(caps).to_contain_text("x86-64")
        expect(caps).to_contain_text("hello_world")
        tensors = caps.get_by_role("table", name=re.compile("The model's tensors"))
        expect(tensors.get_by_role("row")).to_have_count(3)  # the header, one input, one output
        expect(tensors.get_by_role("row").nth(1)).to_contain_text("input 0")
        expect(tensors.get_by_role("row").nth(1)).to_contain_text("int8")
        page.get_by_role("button", name="Issue").click()
        detail = api.post(f"/devices/{x86_device}/credentials").json()["detail"]  # what the API says
        expect(page.get_by_role("alert")).to_contain_text(detail)
        # The browser and htmx log the refusal's status; nothing else went wrong.
        assert t.errors and all("409" in e for e in t.errors), t.errors
        t.errors.clear()
        option = page.locator("#d-build option", has_text="hello_world_float:1 for x86-tflm")
        page.get_by_label("Build", exact=True).select_option(option.get_attribute("value"))
        page.get_by_label(re.compile("the model only")).check()
        page.get_by_role("button", name="Deploy").click()
        result = page.get_by_test_id("deployment-result")
        expect(result).to_have_text(re.compile("Deployment finished: software successfully installed"),
                                    timeout=60_000)
        page.reload()
        expect(page.get_by_role("region", name="Capabilities, read now")).to_contain_text("hello_world_float")
        deployments = page.get_by_role("region", name="Deployments")
        expect(deployments).to_contain_text("software successfully installed")
        assert not t.errors, t.errors
        assert not t.outside, t.outside


@pytest.mark.docker
@pytest.mark.x86
@pytest.mark.slow
def test_the_cto_starts_a_dry_run_on_x86_and_watches_its_steps(browser: Browser, service: BackgroundServer,
                                                               images: dict[str, bool]) -> None:
    with tab(browser, service.url) as t:
        page = t.page
        log_in(page)
        page.get_by_role("link", name="Dry-runs").click()
        boards = page.get_by_role("group", name="Boards")
        for box in boards.get_by_role("checkbox").all():
            box.set_checked(False)
        boards.get_by_role("checkbox", name=re.compile("^x86-tflm")).check()
        page.get_by_role("button", name="Start the dry-run").click()
        run = page.get_by_test_id("dry-run")
        expect(run).to_contain_text("x86-tflm")
        expect(run.get_by_role("row").filter(has_text="7 inferences on the new model")).to_contain_text(
            "ok", timeout=300_000)
        expect(run).to_contain_text("succeeded")
        page.get_by_role("link", name="Dry-runs").click()
        expect(page.get_by_role("row").filter(has_text="x86-tflm").first).to_contain_text("7/7")
        assert not t.errors, t.errors
        assert not t.outside, t.outside


def test_a_viewer_sees_no_actions(browser: Browser, service: BackgroundServer) -> None:
    with tab(browser, service.url) as t:
        log_in(t.page, "vic")
        t.page.goto("/ui/cto/dryruns")
        expect(t.page.get_by_role("heading", name="Past runs")).to_be_visible()
        expect(t.page.get_by_role("button", name="Start the dry-run")).to_have_count(0)
        t.page.goto("/ui/operator/builds")
        expect(t.page.get_by_role("button", name="Build")).to_have_count(0)
        t.page.goto("/ui/operator/pipelines")
        expect(t.page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(t.page.get_by_role("button", name="Validate")).to_have_count(0)
        expect(t.page.get_by_role("button", name="Run")).to_have_count(0)



def test_the_data_scientist_labels_samples_with_the_keyboard(browser: Browser, service: BackgroundServer
                                                             ) -> None:
    with service.client() as api:
        new_dataset(api, "unsorted", digits_archive(12, labelled=False))
    with tab(browser, service.url) as t:
        page = t.page
        log_in(page)
        page.goto("/ui/scientist/datasets/unsorted")
        expect(page.get_by_test_id("unlabelled")).to_have_text("12")
        with page.expect_response(lambda r: "/rows?" in r.url):
            page.get_by_label("Show").select_option("unlabelled")
        # The answer is in; wait until htmx has swapped it in, or a key goes to the old rows.
        page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, "
                               ".htmx-settling, .htmx-added')")
        first = page.get_by_role("checkbox").first
        first.focus()
        page.keyboard.press("4")  # the sample in focus is a 4; the next one gets the focus
        expect(page.get_by_test_id("count-4")).to_have_text("1")
        expect(page.get_by_role("checkbox")).to_have_count(11)
        expect(page.get_by_role("checkbox").first).to_be_focused()
        page.keyboard.press("Space")  # two samples selected by keyboard, then labelled 7 at once
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Space")
        expect(page.get_by_text("2 selected")).to_be_visible()
        page.keyboard.press("7")
        expect(page.get_by_test_id("count-7")).to_have_text("2")
        expect(page.get_by_test_id("unlabelled")).to_have_text("9")
        expect(page.get_by_role("checkbox")).to_have_count(9)
        expect(page.get_by_role("checkbox").nth(1)).to_be_focused()  # the one after them
        page.keyboard.press("a")  # the whole page, unlabelled again: back to where it was
        page.keyboard.press("u")
        expect(page.get_by_test_id("unlabelled")).to_have_text("9")
        assert not t.errors and not t.outside, (t.errors, t.outside)
    with service.client() as api:
        assert api.get("/datasets/unsorted/samples", params={"label": "7"}).json()["total"] == 2
        assert api.get("/datasets/unsorted").json()["counts"]["labels"] == {"4": 1, "7": 2}


@pytest.fixture
def fleet_service(tmp_path: Path) -> Iterator[tuple[BackgroundServer, Any]]:
    """A service with six simulated LwM2M devices (firmware 1.0.0, tagged line:2) whose updates
    take a moment each, and a finished build of firmware 2.0.0 for them."""
    from _fleet import Fleet, make_build

    from tinymlaas.store import Store
    from tinymlaas.zoo import get_recipe

    settings = Settings(data_dir=tmp_path / "service", lwm2m={"port": 0, "update_timeout_s": 20,
                                                              "download_timeout_s": 20},
                        devices={"flush_s": 0.05})
    model = get_recipe("hello_world").load(Settings().zoo_dir)
    with BackgroundServer(settings) as server, server.client() as api:
        assert api.post("/users", json={"name": "olga", "role": "operator", "password": PASSWORD}
                        ).status_code == 201
        store = Store(settings.db_url, settings.artifacts_dir)
        build = make_build(store, model, "2.0.0")
        fleet = Fleet(api.get("/orchestrator").json()["uri"], tmp_path / "devices", model)
        try:
            for i in range(6):
                fleet.add(f"line2-{i}", slow_s=0.3)
            deadline = time.monotonic() + 30
            while len(api.get("/devices", params={"online": True}).json()) < 6:
                assert time.monotonic() < deadline, "the simulated devices did not join"
                time.sleep(0.1)
            for i in range(6):
                assert api.patch(f"/devices/line2-{i}", json={"tags": ["line:2"]}).status_code == 200
            yield server, build
        finally:
            fleet.close()
            store.close()


@pytest.mark.lwm2m
def test_the_operator_creates_a_group_rollout_and_watches_its_waves(
        browser: Browser, fleet_service: tuple[BackgroundServer, Any]) -> None:
    server, build = fleet_service
    with tab(browser, server.url) as t, server.client() as api:
        page = t.page
        log_in(page)
        page.get_by_role("link", name="Groups").click()
        page.get_by_label("Name").fill("line-2")
        page.get_by_label("Devices with every tag").fill("line:2")
        page.get_by_role("button", name="Create the group").click()
        expect(page.get_by_role("row").filter(has_text="line-2")).to_contain_text("6")
        # A refusal shows the API's problem: the group exists already.
        page.get_by_label("Name").fill("line-2")
        page.get_by_label("Devices with every tag").fill("line:2")
        page.get_by_role("button", name="Create the group").click()
        detail = api.post("/groups", json={"name": "line-2", "tags": ["line:2"]}).json()["detail"]
        expect(page.get_by_role("alert")).to_contain_text(detail)
        t.errors.clear()  # the browser logs the refusal's status
        page.get_by_role("link", name="Rollouts").click()
        page.get_by_label("Group").select_option("line-2")
        page.get_by_label("Builds (one per board)").select_option(build.id)
        page.get_by_label("Waves").fill("1 50% rest")
        page.get_by_label(re.compile("wait for an approval")).check()
        page.get_by_role("button", name="Start the rollout").click()
        rollout = page.get_by_test_id("rollout")
        expect(page.get_by_test_id("rollout-state")).to_have_text("waiting approval", timeout=30_000)
        expect(page.get_by_test_id("wave-1")).to_have_text("succeeded 1")
        expect(page.get_by_test_id("wave-2")).to_have_text("pending 3")
        page.get_by_role("button", name="Resume").click()  # refused: it waits for an approval
        rid = page.url.rsplit("/", 1)[1]
        detail = api.post(f"/rollouts/{rid}/resume").json()["detail"]
        expect(page.get_by_role("alert")).to_contain_text(detail)
        t.errors.clear()
        page.get_by_role("button", name="Approve the next wave").click()
        expect(page.get_by_test_id("wave-2")).to_have_text("succeeded 3", timeout=30_000)
        expect(page.get_by_test_id("rollout-state")).to_have_text("waiting approval")
        page.get_by_role("button", name="Approve the next wave").click()
        expect(page.get_by_test_id("rollout-state")).to_have_text("succeeded", timeout=30_000)
        expect(page.get_by_test_id("wave-3")).to_have_text("succeeded 2")
        expect(rollout.get_by_role("row").filter(has_text="line2-5")).to_contain_text("succeeded")
        assert not t.errors and not t.outside, (t.errors, t.outside)
        assert {d["firmware_version"] for d in api.get("/devices").json()} == {"2.0.0"}


PIPELINE, WRONG_PIPELINE = bench_pipeline("hello_bench:1")


def test_the_operator_fixes_a_pipeline_runs_it_watches_its_stages_and_re_runs_the_failed_one(
        browser: Browser, service: BackgroundServer) -> None:
    from tinymlaas.zoo import get_recipe

    wrong = WRONG_PIPELINE
    with service.client() as api:
        model = get_recipe("hello_world").load(Settings().zoo_dir)
        assert api.post("/models", files={"file": ("m.tflite", model)}, data={"name": "hello_bench"}
                        ).status_code == 201
        assert api.post("/devices", json={"endpoint": "bench-1", "board": "x86-tflm", "tags": ["bench"]}
                        ).status_code == 201
        assert api.post("/groups", json={"name": "bench", "tags": ["bench"]}).status_code == 201
        expected = api.post("/pipelines/validate", json={"source": wrong, "filename": "bench.yaml"}
                            ).json()["details"]["errors"]
    assert len(expected) == 3
    with tab(browser, service.url) as t, service.client() as api:
        page = t.page
        log_in(page)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Pipelines").click()
        page.get_by_label("The pipeline, in YAML").fill(wrong)
        page.get_by_label("File name").fill("bench.yaml")
        page.get_by_role("button", name="Validate").click()
        problems = page.get_by_test_id("problems")
        expect(problems.get_by_role("heading")).to_have_text("3 problems in bench.yaml")
        expect(problems.get_by_role("listitem")).to_have_count(3)
        for item, e in zip(problems.get_by_role("listitem").all(), expected, strict=True):
            expect(item).to_contain_text(f"bench.yaml:{e['line']}:{e['column']} {e['field']}: {e['message']}")
        page.get_by_label("The pipeline, in YAML").fill(PIPELINE)
        page.get_by_role("button", name="Validate").click()
        expect(page.get_by_test_id("plan")).to_contain_text("bench.yaml is valid")
        expect(problems).to_have_count(0)
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page).to_have_url(re.compile(r"/ui/operator/pipelines/runs/\w+$"))
        run_id = page.url.rsplit("/", 1)[1]
        expect(page.get_by_test_id("stage-compile-state")).to_have_text("succeeded", timeout=180_000)
        expect(page.get_by_test_id("stage-deploy-state")).to_have_text("running")
        deploy = page.get_by_test_id("stage-deploy")
        expect(deploy).to_contain_text("rollout paused", timeout=60_000)  # its device failed
        # The operator ends the rollout on its page; the run fails at its deploy stage.
        deploy.get_by_role("link").first.click()
        page.get_by_label("Reason").fill("the bench is switched off")
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_test_id("rollout-state")).to_have_text("cancelled", timeout=30_000)
        page.go_back()
        expect(page.get_by_test_id("run-state")).to_have_text("failed", timeout=30_000)
        expect(page.get_by_test_id("stage-deploy-state")).to_have_text("failed")
        error = api.get(f"/pipelines/runs/{run_id}").json()["stages"][-1]["error"]
        assert "cancelled" in error
        expect(page.get_by_test_id("stage-deploy-error")).to_have_text(error)
        page.get_by_role("button", name="Re-run from the failed stage").click()
        expect(page.get_by_test_id("run-attempt")).to_have_text("attempt 2")
        expect(page.get_by_test_id("run-state")).to_have_text("running")
        expect(page.get_by_test_id("stage-compile-state")).to_have_text("succeeded")  # kept, not run again
        expect(page.get_by_test_id("stage-deploy")).to_contain_text("attempt 2")
        assert api.get(f"/pipelines/runs/{run_id}").json()["attempt"] == 2
        assert not t.errors and not t.outside, (t.errors, t.outside)
        rid = wait_for_rollout(api, run_id, "paused")
        assert api.post(f"/rollouts/{rid}/cancel", json={"reason": "done testing"}).is_success


def wait_for_rollout(api: httpx.Client, run_id: str, state: str, timeout: float = 60) -> str:
    """The id of the run's current rollout, once it is in ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rid = api.get(f"/pipelines/runs/{run_id}").json()["stages"][-1]["artifacts"].get("rollout_id")
        if rid and api.get(f"/rollouts/{rid}").json()["state"] == state:
            return str(rid)
        time.sleep(0.2)
    raise AssertionError(f"the rollout of run {run_id} was not {state} within {timeout} s")

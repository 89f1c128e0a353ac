"""Steps for the operator's stories, against the live API over real HTTP."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from api_jobs import follow_job, wait_until
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import REPO_ROOT, Settings
from tinymlaas.lwm2m.security import write_context
from tinymlaas.models import LwM2MAttach
from tinymlaas.services.mcu_device import BridgedBoard, BridgeProcess
from tinymlaas.services.x86_device import X86Device
from tinymlaas.store import ArtifactStore
from tinymlaas.targets import get_board

scenarios("operator")


@when(parsers.parse('I ask the service to train "{recipe}" from the zoo'), target_fixture="reply")
def train(api: httpx.Client, recipe: str) -> httpx.Response:
    return api.post("/models/train", json={"recipe": recipe})


@then(parsers.parse('the job succeeds and model "{name}" version {version:d} is registered'))
def trained(api: httpx.Client, reply: httpx.Response, name: str, version: int) -> None:
    assert reply.status_code == 202, reply.text
    states = follow_job(api, reply.json()["id"])
    assert states[-1]["state"] == "succeeded", states[-1]
    model = api.get(f"/models/{name}").json()
    assert model["version"] == version and model["info"]["ops"] == ["FULLY_CONNECTED"]


@when(parsers.parse('I request a build of "{model}" for "{target}"'), target_fixture="reply")
def request_build(api: httpx.Client, model: str, target: str) -> httpx.Response:
    return api.post("/builds", json={"model": model, "target": target, "version": "2.1.0"})


@then("the service answers 202 with a job id")
def accepted(reply: httpx.Response) -> None:
    assert reply.status_code == 202, reply.text
    assert reply.json()["job"]["state"] == "queued"


@then("the job reports its steps until it succeeds", target_fixture="build")
def job_progress(api: httpx.Client, reply: httpx.Response) -> dict[str, Any]:
    states = follow_job(api, reply.json()["job"]["id"])
    assert states[-1]["state"] == "succeeded", states[-1]
    steps = [s["step"] for s in states]
    assert any(s.startswith("compile:") for s in steps) and any(s.startswith("build:") for s in steps)
    return api.get(f"/builds/{reply.json()['build']['id']}").json()


@then("the build's OS image can be downloaded by its hash, also in ranges")
def download(api: httpx.Client, build: dict[str, Any]) -> None:
    fw = build["firmware"]
    assert fw["version"] == "2.1.0" and fw["board"] == "x86-tflm"
    whole = api.get(f"/artifacts/{fw['image_sha256']}").content
    assert hashlib.sha256(whole).hexdigest() == fw["image_sha256"]
    half = len(whole) // 2
    rest = api.get(f"/artifacts/{fw['image_sha256']}", headers={"Range": f"bytes={half}-"})
    assert rest.status_code == 206 and whole[:half] + rest.content == whole


@then("the service's database records the build")
def in_database(service: BackgroundServer, build: dict[str, Any]) -> None:
    engine = sqlalchemy.create_engine(service.settings.db_url)
    with engine.connect() as db:
        row = db.execute(sqlalchemy.text("SELECT target, version FROM builds WHERE id=:id"),
                         {"id": build["id"]}).one()
    engine.dispose()
    assert tuple(row) == ("x86-tflm", "2.1.0")


@when(parsers.parse('I upload a file that is not a model as "{name}"'), target_fixture="reply")
def upload_junk(api: httpx.Client, name: str) -> httpx.Response:
    return api.post("/models", files={"file": ("junk.tflite", b"\x00" * 64)}, data={"name": name})


@then("the service answers 422 naming the problem")
def refused(reply: httpx.Response) -> None:
    assert reply.status_code == 422
    assert "TFL3" in reply.json()["detail"]


@then("the model list is empty")
def empty(api: httpx.Client) -> None:
    assert api.get("/models").json() == []


# -- the fleet: registry, bridge, rollouts, refusals, toolchains ------------------------------------

@dataclass
class Fleet:
    """The operator's service (LwM2M with OSCORE), what it built, and the devices a scenario runs."""

    server: BackgroundServer
    api: httpx.Client
    uri: str
    work: Path
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: list[Any] = field(default_factory=list)
    jobs_before: int = 0

    def wait(self, check: Any, timeout: float, what: str) -> Any:
        return wait_until(check, timeout, what)

    def flash(self, board: str, version: str, folder: Path) -> Path:
        """A device's flash: the build's firmware files, as the factory would write them."""
        folder.mkdir(parents=True)
        for name, sha in self.builds[f"{board}:{version}"]["firmware"]["artifacts"].items():
            (folder / name).write_bytes(self.api.get(f"/artifacts/{sha}").content)
        return folder

    def oscore(self, endpoint: str) -> Path:
        return write_context(self.work / endpoint / "oscore", self.credentials[endpoint], role="device")


@pytest.fixture(scope="module")
def fleet_service(tmp_path_factory: pytest.TempPathFactory, images: dict[str, bool],
                  service_databases: Callable[[Path], str]) -> Iterator[Fleet]:
    base = Settings()
    data = tmp_path_factory.mktemp("operator-service")
    settings = base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data),
        "lwm2m": base.lwm2m.model_copy(update={"port": 0, "security": "oscore", "ack_timeout_s": 1.0,
                                               "download_timeout_s": 60, "update_timeout_s": 60})})
    with BackgroundServer(settings) as server, server.client(timeout=60) as api:
        yield Fleet(server, api, api.get("/orchestrator").json()["uri"], tmp_path_factory.mktemp("devices"))


@pytest.fixture
def fleet(fleet_service: Fleet, request: pytest.FixtureRequest) -> Fleet:
    """The module's service; what a scenario boots is stopped after it."""

    def stop() -> None:
        for thing in fleet_service.running:
            thing.close() if isinstance(thing, X86Device) else thing.stop()
        fleet_service.running.clear()

    request.addfinalizer(stop)
    return fleet_service


@given("the operator's service is running with device credentials")
def fleet_up(fleet: Fleet) -> None:
    assert fleet.api.get("/orchestrator").json()["security"] == "oscore"


@given(parsers.parse('it has built hello_world "{v1}" and a retrained model "{v2}" for "{a}" and "{b}"'))
def fleet_builds(fleet: Fleet, v1: str, v2: str, a: str, b: str) -> None:
    wanted = {f"{board}:{v}": (model, board, v) for board in (a, b)
              for v, model in ((v1, "hello_world:1"), (v2, "hello_world:2"))}
    wanted[f"{a}:2.0.0"] = ("hello_world:1", a, "2.0.0")  # the one a scenario damages
    wanted = {k: w for k, w in wanted.items() if k not in fleet.builds}
    if not wanted:
        return
    for seed in (None, 2):  # hello_world, then a retrained version 2 (another seed)
        job = fleet.api.post("/models/train", json={"recipe": "hello_world", "seed": seed}).json()
        assert follow_job(fleet.api, job["id"])[-1]["state"] == "succeeded"
    replies = {k: fleet.api.post("/builds", json={"model": m, "target": t, "version": v}).json()
               for k, (m, t, v) in wanted.items()}
    for key, reply in replies.items():
        assert follow_job(fleet.api, reply["job"]["id"], timeout=600)[-1]["state"] == "succeeded", key
        fleet.builds[key] = fleet.api.get(f"/builds/{reply['build']['id']}").json()


def register(fleet: Fleet, endpoint: str, board: str, tags: list[str], location: str = "") -> None:
    reply = fleet.api.post("/devices", json={"endpoint": endpoint, "board": board, "tags": tags,
                                             "location": location, "name": f"{board} at {location}"})
    assert reply.status_code == 201, reply.text
    fleet.credentials[endpoint] = reply.json()["credentials"]


@given(parsers.parse('I register "{ep}", an "{board}" in "{where}" tagged "{t1}" and "{t2}"'))
def register_one(fleet: Fleet, ep: str, board: str, where: str, t1: str, t2: str) -> None:
    register(fleet, ep, board, [t1, t2], where)


@given(parsers.parse('I register "{a}" and "{b}", "{board}" boards in "{where}" tagged "{t1}" and "{t2}"'))
def register_two(fleet: Fleet, a: str, b: str, board: str, where: str, t1: str, t2: str) -> None:
    for ep in (a, b):
        register(fleet, ep, board, [t1, t2], where)


@then("the three are listed as expected and offline, each with the credentials it got")
def listed_expected(fleet: Fleet) -> None:
    listed = fleet.api.get("/devices", params={"tags": "line-a"}).json()
    assert [(d["endpoint"], d["state"], d["online"]) for d in listed] == [
        ("cam-1", "expected", False), ("mcu-1", "expected", False), ("mcu-2", "expected", False)]
    assert listed[1]["location"] == "rack 3" and listed[0]["tags"] == ["camera", "line-a"]
    for ep in ("cam-1", "mcu-1", "mcu-2"):
        assert {"secret_hex", "salt_hex"} <= set(fleet.credentials[ep])


def boot_x86(fleet: Fleet, ep: str, version: str) -> None:
    flash = fleet.flash("x86-tflm", version, fleet.work / ep / "flash")
    attach = LwM2MAttach(uri=fleet.uri, endpoint=ep, credentials=fleet.oscore(ep), lifetime_s=30)
    fleet.running.append(X86Device(get_board(Settings().targets_dir, "x86-tflm"), flash, attach=attach))


@when(parsers.parse('"{ep}" boots firmware "{version}" in a container'))
def boots(fleet: Fleet, ep: str, version: str) -> None:
    boot_x86(fleet, ep, version)


@when(parsers.parse('bridge "{bridge}" brings up "{a}" and "{b}" on emulated boards with firmware '
                    '"{version}"'))
def bridge_up(fleet: Fleet, bridge: str, a: str, b: str, version: str) -> None:
    made = fleet.api.post("/bridges", json={"endpoint": bridge, "location": "rack 3"})
    assert made.status_code == 201, made.text
    fleet.credentials[bridge] = made.json()["credentials"]
    targets = Settings().targets_dir
    boards = []
    for ep in (a, b):
        board = get_board(targets, fleet.api.get(f"/devices/{ep}").json()["device"]["board"])
        flash = fleet.flash(board.name, version, fleet.work / ep / "flash")
        boards.append(BridgedBoard(LwM2MAttach(uri=fleet.uri, endpoint=ep, credentials=fleet.oscore(ep)),
                                   board, flash))
    process = BridgeProcess.fronting(boards, LwM2MAttach(uri=fleet.uri, endpoint=bridge,
                                                         credentials=fleet.oscore(bridge)),
                                     fleet.work / f"{bridge}.log", targets_dir=targets, emulator="qemu")
    fleet.running.append(process)


@then(parsers.parse('the devices tagged "{tag}" are online and report their board and firmware "{version}"'))
def online_with_facts(fleet: Fleet, tag: str, version: str) -> None:
    def up() -> list[dict[str, Any]] | None:
        found = fleet.api.get("/devices", params={"tags": tag}).json()
        ok = all(d["online"] and d["firmware_version"] == version and d["reported"] for d in found)
        return found if ok else None

    try:
        found = fleet.wait(up, 60, f"the devices tagged {tag} joining")
    except AssertionError as exc:
        logs = [p.logs()[-1500:] for p in fleet.running if isinstance(p, BridgeProcess)]
        raise AssertionError(f"{exc}; bridge log: {logs}") from None
    for d in found:
        assert d["state"] == "active" and d["secure"] is True
        assert d["reported"]["board"] == d["board"], d
        assert d["model_sha256"] == fleet.builds[f"{d['board']}:{version}"]["firmware"]["model_sha256"]


@then(parsers.parse('bridge "{bridge}" lists "{a}" and "{b}" as running'))
def bridge_lists(fleet: Fleet, bridge: str, a: str, b: str) -> None:
    def healthy() -> dict[str, Any] | None:
        found = fleet.api.get(f"/bridges/{bridge}").json()
        return found if [(d["endpoint"], d["health"]) for d in found["devices"]] == [
            (a, "running"), (b, "running")] else None

    found = fleet.wait(healthy, 30, f"bridge {bridge} listing its boards")
    assert found["online"] and found["location"] == "rack 3"


def rollout(fleet: Fleet, tag: str, kind: str, builds: list[str], waves: list[str]) -> httpx.Response:
    group = f"tag-{tag}"
    if fleet.api.get(f"/groups/{group}").status_code == 404:
        assert fleet.api.post("/groups", json={"name": group, "tags": [tag]}).status_code == 201
    return fleet.api.post("/rollouts", json={"group": group, "kind": kind, "builds": builds, "waves": waves})


@when(parsers.parse('I roll out the retrained model to the devices tagged "{tag}" in two waves, one device '
                    'first'), target_fixture="rolled")
def roll_out_model(fleet: Fleet, tag: str) -> dict[str, Any]:
    builds = [fleet.builds[f"{b}:1.1.0"]["id"] for b in ("x86-tflm", "lm3s6965evb")]
    reply = rollout(fleet, tag, "model", builds, ["1", "rest"])
    assert reply.status_code == 201, reply.text
    events = []
    with fleet.api.stream("GET", f"/rollouts/{reply.json()['id']}/events", timeout=300) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return {"rollout": fleet.api.get(f"/rollouts/{reply.json()['id']}").json(), "events": events}


@then(parsers.parse('"{canary}" is updated in the first wave and "{a}" and "{b}" in the second, as the live '
                    'events show'))
def waves_in_order(fleet: Fleet, rolled: dict[str, Any], canary: str, a: str, b: str) -> None:
    r = rolled["rollout"]
    assert r["state"] == "succeeded", r
    targets = {t["endpoint"]: t for t in fleet.api.get(f"/rollouts/{r['id']}/devices").json()}
    assert {ep: (t["wave"], t["state"]) for ep, t in targets.items()} == {
        canary: (0, "succeeded"), a: (1, "succeeded"), b: (1, "succeeded")}
    changes = [(d["endpoint"], d["state"]) for kind, d in rolled["events"] if kind == "device"]
    assert changes.index((canary, "succeeded")) < min(changes.index((a, "running")),
                                                       changes.index((b, "running")))
    assert rolled["events"][-1][0] == "rollout" and rolled["events"][-1][1]["state"] == "succeeded"


@then(parsers.parse('every device tagged "{tag}" runs the retrained model, and the registry says so'))
def runs_retrained(fleet: Fleet, tag: str) -> None:
    retrained = fleet.builds["x86-tflm:1.1.0"]["firmware"]["model_sha256"]
    assert retrained == fleet.builds["lm3s6965evb:1.1.0"]["firmware"]["model_sha256"]
    for d in fleet.api.get("/devices", params={"tags": tag}).json():
        caps = fleet.api.get(f"/devices/{d['endpoint']}").json()["capabilities"]
        assert caps["model_sha256"] == retrained, (d["endpoint"], caps)
    in_registry = fleet.wait(lambda: len(fleet.api.get("/devices", params={"tags": tag, "model": retrained})
                                         .json()) == 3, 10, "the registry knowing the new model")
    assert in_registry


@then("the rollout's job succeeded")
def rollout_job(fleet: Fleet, rolled: dict[str, Any]) -> None:
    job = fleet.api.get(f"/jobs/{rolled['rollout']['job_id']}").json()
    assert job["kind"] == "rollout" and job["state"] == "succeeded" and job["progress"] == 1.0


@given(parsers.parse('"{a}" and "{b}" are registered tagged "{tag}" and run firmware "{version}" in '
                     'containers'))
def two_running(fleet: Fleet, a: str, b: str, tag: str, version: str) -> None:
    for ep in (a, b):
        register(fleet, ep, "x86-tflm", [tag], "hall 2")
        boot_x86(fleet, ep, version)
    online_with_facts(fleet, tag, version)


@given(parsers.parse('the stored image of the "{board}" firmware "{version}" got damaged'))
def damaged(fleet: Fleet, board: str, version: str) -> None:
    firmware = fleet.builds[f"{board}:{version}"]["firmware"]
    sha = firmware["package_sha256"] or firmware["image_sha256"]  # what the devices are sent
    path = ArtifactStore(fleet.server.settings.artifacts_dir).path(sha)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A  # one flipped byte at rest
    path.write_bytes(bytes(data))


@when(parsers.parse('I roll out firmware "{version}" to the devices tagged "{tag}", one device first'),
      target_fixture="rolled")
def roll_out_firmware(fleet: Fleet, version: str, tag: str) -> dict[str, Any]:
    reply = rollout(fleet, tag, "firmware", [fleet.builds[f"x86-tflm:{version}"]["id"]], ["1", "rest"])
    assert reply.status_code == 201, reply.text
    rid = reply.json()["id"]
    r = fleet.wait(lambda: (r := fleet.api.get(f"/rollouts/{rid}").json())["state"] != "running" and r, 120,
                   "the rollout stopping")
    return {"rollout": r}


@then(parsers.parse('the rollout pauses after the canary "{canary}" failed its integrity check'))
def paused(fleet: Fleet, rolled: dict[str, Any], canary: str) -> None:
    r = rolled["rollout"]
    assert r["state"] == "paused" and r["current_wave"] == 0, r
    assert r["reason"] == "wave 1: 1 of 1 devices failed (100%), above the error threshold of 5%"
    (target,) = fleet.api.get(f"/rollouts/{r['id']}/devices", params={"wave": 0}).json()
    assert target["endpoint"] == canary and target["state"] == "failed"
    assert "integrity check failure" in target["detail"]
    assert fleet.api.get(f"/jobs/{r['job_id']}").json()["step"].startswith("paused: wave 1")


@then(parsers.parse('"{other}" was never sent the update, and both still run firmware "{version}"'))
def kept_version(fleet: Fleet, rolled: dict[str, Any], other: str, version: str) -> None:
    r = rolled["rollout"]
    (target,) = fleet.api.get(f"/rollouts/{r['id']}/devices", params={"wave": 1}).json()
    assert (target["endpoint"], target["state"], target["deployment_id"]) == (other, "pending", None)
    assert fleet.api.get("/deployments", params={"endpoint": other}).json() == []
    for ep in [t["endpoint"] for t in fleet.api.get(f"/rollouts/{r['id']}/devices").json()]:
        assert fleet.api.get(f"/devices/{ep}").json()["capabilities"]["firmware_version"] == version


@given(parsers.parse('"{ep}" is registered tagged "{tag}" and runs firmware "{version}" in a container'))
def one_running(fleet: Fleet, ep: str, tag: str, version: str) -> None:
    register(fleet, ep, "x86-tflm", [tag], "hall 3")
    boot_x86(fleet, ep, version)
    online_with_facts(fleet, tag, version)
    fleet.jobs_before = len(fleet.api.get("/jobs").json())


@when(parsers.parse('I deploy the "{board}" firmware "{version}" to "{ep}"'), target_fixture="reply")
def deploy_wrong(fleet: Fleet, board: str, version: str, ep: str) -> httpx.Response:
    return fleet.api.post(f"/devices/{ep}/firmware", json={"build": fleet.builds[f"{board}:{version}"]["id"]})


@then(parsers.parse('the service refuses it, naming the build\'s board "{board}" and the device\'s board '
                    '"{device_board}"'))
def refused_boards(reply: httpx.Response, board: str, device_board: str) -> None:
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
    detail = reply.json()["detail"]
    assert f"is for board '{board}' but device" in detail and f"reports board '{device_board}'" in detail
    assert reply.json()["details"]["device_board"] == device_board


@when(parsers.parse('I roll out the "{board}" firmware "{version}" to the devices tagged "{tag}"'),
      target_fixture="reply")
def roll_out_wrong(fleet: Fleet, board: str, version: str, tag: str) -> httpx.Response:
    return rollout(fleet, tag, "firmware", [fleet.builds[f"{board}:{version}"]["id"]], ["1", "rest"])


@then(parsers.parse('the service refuses it, naming "{ep}" and its board "{board}"'))
def refused_rollout(reply: httpx.Response, ep: str, board: str) -> None:
    assert reply.status_code == 422, reply.text
    assert f"device '{ep}' is board '{board}', and no build is (builds are for lm3s6965evb)" \
        in reply.json()["detail"]


@then("no job was started for either")
def no_job(fleet: Fleet) -> None:
    assert len(fleet.api.get("/jobs").json()) == fleet.jobs_before
    assert fleet.api.get("/deployments", params={"endpoint": "cam-4"}).json() == []


@given(parsers.parse('a partner\'s builder image for "{board}" in the local Docker engine'),
       target_fixture="partner")
def partner_image(fleet: Fleet, board: str, request: pytest.FixtureRequest) -> str:
    from tinymlaas.images import docker_client, image_ref

    client = docker_client()
    settings = Settings()
    base = image_ref(settings, get_board(settings.targets_dir, board).builder.image, client)
    tag = f"tinymlaas-test/acme-builder:{base.rsplit(':', 1)[1]}"
    client.images.build(path=str(REPO_ROOT / "tests" / "data" / "partner_builder"), tag=tag, pull=False,
                        network_mode="none", rm=True, buildargs={"BASE": base})
    request.addfinalizer(lambda: client.images.remove(tag, force=True))
    return tag


@when(parsers.parse('I register it as toolchain "{name}" for "{board}"'), target_fixture="reply")
@when(parsers.parse('I register the same image as toolchain "{name}" for "{board}"'), target_fixture="reply")
def register_toolchain(fleet: Fleet, partner: str, name: str, board: str) -> httpx.Response:
    return fleet.api.post("/toolchains", json={"name": name, "image": partner, "boards": [board],
                                               "description": "Acme's x86 builder"})


@then(parsers.parse('the service ran its self-test and lists "{name}" for "{board}"'))
def toolchain_listed(fleet: Fleet, reply: httpx.Response, name: str, board: str) -> None:
    assert reply.status_code == 201, reply.text
    assert any(line.startswith("acme: TFLM") for line in reply.json()["self_test"])
    assert [(t["name"], t["boards"]) for t in fleet.api.get("/toolchains").json()] == [(name, [board])]


@when(parsers.parse('I build hello_world for "{board}" with toolchain "{name}"'), target_fixture="built")
def build_with(fleet: Fleet, board: str, name: str) -> dict[str, Any]:
    reply = fleet.api.post("/builds", json={"model": "hello_world:1", "target": board, "toolchain": name,
                                            "version": "3.0.0"})
    assert reply.status_code == 202, reply.text
    states = follow_job(fleet.api, reply.json()["job"]["id"])
    return {"states": states, "build": fleet.api.get(f"/builds/{reply.json()['build']['id']}").json()}


@then(parsers.parse('the build succeeds with the partner\'s mark on its firmware, which says toolchain '
                    '"{name}" built it'))
def partner_built(built: dict[str, Any], name: str) -> None:
    assert built["states"][-1]["state"] == "succeeded", built["states"][-1]
    fw = built["build"]["firmware"]
    assert built["build"]["builder"] == fw["builder"] == f"toolchain:{name}"
    assert fw["built_by"] == "acme x86 1.0" and fw["board"] == "x86-tflm" and fw["version"] == "3.0.0"


@then("that firmware boots in a container and answers an inference")
def partner_firmware_runs(fleet: Fleet, built: dict[str, Any]) -> None:
    fw = built["build"]["firmware"]
    flash = fleet.work / "acme-flash"
    flash.mkdir()
    (flash / fw["image"]).write_bytes(fleet.api.get(f"/artifacts/{fw['image_sha256']}").content)
    with X86Device(get_board(Settings().targets_dir, fw["board"]), flash) as device:
        assert "firmware=3.0.0" in device.banner
        assert abs(device.device.infer([1.5])["values"][0] - math.sin(1.5)) < 0.15


@then("the service refuses it, naming the boards its self-test reported")
def toolchain_refused(reply: httpx.Response) -> None:
    assert reply.status_code == 422
    assert reply.json()["detail"].endswith("says it builds for x86-tflm; not for lm3s6965evb"), reply.text


# -- ML pipelines ----------------------------------------------------------------------------------

PIPELINE_FILE = """\
name: iris-{group}
dataset: iris
train:
  epochs: 3
  width: 8
quantize:
  calibration_samples: 50
compile:
  version: 3.0.0
  targets:
    - board: {board}
deploy:
  group: {group}
  kind: model
  waves: ["rest"]
"""


# Quoted values without quotes in them: a looser pattern also took the fleet's Background
# ('... "1.0.0" and a retrained model "1.1.0" for "x86-tflm" and "lm3s6965evb"').
@given(parsers.re(r'it has built hello_world "(?P<version>[^"]+)" for "(?P<board>[^"]+)"'))
def built_one(fleet: Fleet, version: str, board: str) -> None:
    if f"{board}:{version}" in fleet.builds:
        return
    job = fleet.api.post("/models/train", json={"recipe": "hello_world"}).json()
    assert follow_job(fleet.api, job["id"])[-1]["state"] == "succeeded"
    reply = fleet.api.post("/builds", json={"model": "hello_world:1", "target": board,
                                            "version": version}).json()
    assert follow_job(fleet.api, reply["job"]["id"], timeout=600)[-1]["state"] == "succeeded"
    fleet.builds[f"{board}:{version}"] = fleet.api.get(f"/builds/{reply['build']['id']}").json()


@given(parsers.parse('the iris measurements as dataset "{name}"'))
def iris_dataset(fleet: Fleet, name: str) -> None:
    from tinymlaas.datasets.samples import EXAMPLES

    if fleet.api.get(f"/datasets/{name}").status_code == 200:
        return
    example, csv = EXAMPLES["iris"], fleet.work / "iris.csv"
    example.write(csv, 0, 0)
    made = fleet.api.post("/datasets", json={"name": name, "task": example.task,
                                             "spec": example.spec.model_dump()})
    assert made.status_code == 201, made.text
    upload = fleet.api.post(f"/datasets/{name}/samples", files={"files": ("iris.csv", csv.read_bytes())})
    assert len(upload.json()["accepted"]) == 150, upload.text


@given(parsers.parse('a group "{group}" of the devices tagged "{tag}"'))
def tagged_group(fleet: Fleet, group: str, tag: str) -> None:
    made = fleet.api.post("/groups", json={"name": group, "tags": [tag]})
    assert made.status_code == 201, made.text


@when(parsers.parse('I check a pipeline file that names board "{board}" and group "{group}"'),
      target_fixture="reply")
def check_pipeline(fleet: Fleet, board: str, group: str) -> httpx.Response:
    source = PIPELINE_FILE.format(board=board, group=group)
    return fleet.api.post("/pipelines/validate", json={"source": source, "filename": "iris.yaml"})


@then(parsers.parse('the service refuses it, naming board "{board}" and group "{group}", each with its line'))
def refused_pipeline(reply: httpx.Response, board: str, group: str) -> None:
    assert reply.status_code == 422, reply.text
    errors = reply.json()["details"]["errors"]
    lines = PIPELINE_FILE.splitlines()
    assert [(e["line"], e["field"]) for e in errors] == [
        (lines.index("    - board: {board}") + 1, "compile.targets[0].board"),
        (lines.index("  group: {group}") + 1, "deploy.group")]
    assert f"board '{board}' is unknown" in errors[0]["message"]
    assert errors[1]["message"] == f"no group '{group}'"
    assert f"iris.yaml:{errors[0]['line']}: board '{board}'" in reply.json()["detail"]


@then("no pipeline run was started")
def no_run(fleet: Fleet) -> None:
    assert fleet.api.get("/pipelines/runs").json() == []


@when(parsers.parse('I run the pipeline file with board "{board}" and group "{group}"'), target_fixture="run")
def run_pipeline(fleet: Fleet, board: str, group: str) -> dict[str, Any]:
    reply = fleet.api.post("/pipelines/runs", json={"source": PIPELINE_FILE.format(board=board, group=group)})
    assert reply.status_code == 201, reply.text
    return _run_ended(fleet, reply.json()["id"])


@then("every stage succeeded, each with its job and what it made")
def stages_done(fleet: Fleet, run: dict[str, Any]) -> None:
    assert run["state"] == "succeeded", run
    stages = {s["name"]: s for s in run["stages"]}
    assert list(stages) == ["dataset", "train", "quantize", "compile", "deploy"]
    assert all(s["state"] == "succeeded" and s["log"] for s in stages.values())
    for name in ("train", "compile", "deploy"):
        for job_id in stages[name]["job_ids"]:
            assert fleet.api.get(f"/jobs/{job_id}").json()["state"] == "succeeded", (name, job_id)
    assert stages["dataset"]["artifacts"]["dataset"] == "iris"
    assert stages["quantize"]["artifacts"]["model_id"] == stages["train"]["artifacts"]["model_id"]
    assert set(stages["compile"]["artifacts"]["builds"]) == {"x86-tflm"}
    rollout = fleet.api.get(f"/rollouts/{stages['deploy']['artifacts']['rollout_id']}").json()
    assert rollout["state"] == "succeeded" and rollout["devices"] == 1


@then(parsers.parse('"{ep}" runs the model the pipeline trained, and the registry says so'))
def runs_pipeline_model(fleet: Fleet, run: dict[str, Any], ep: str) -> None:
    model_id = next(s for s in run["stages"] if s["name"] == "train")["artifacts"]["model_id"]
    sha = fleet.api.get(f"/models/{model_id}").json()["sha256"]
    assert fleet.api.get(f"/devices/{ep}").json()["capabilities"]["model_sha256"] == sha
    assert fleet.wait(lambda: [d["endpoint"] for d in fleet.api.get("/devices", params={"model": sha}).json()]
                      == [ep], 10, "the registry knowing the pipeline's model")


def _run_ended(fleet: Fleet, run_id: str) -> dict[str, Any]:
    return dict(fleet.wait(lambda: (r := fleet.api.get(f"/pipelines/runs/{run_id}").json())["state"]
                           != "running" and r, 600, "the pipeline run ending"))


@when(parsers.parse('I start the pipeline file with board "{board}" and group "{group}" and cancel it while '
                    'it trains'), target_fixture="run")
def cancel_while_training(fleet: Fleet, board: str, group: str) -> dict[str, Any]:
    # a wider network than the other scenario's: a model of its own, which only this group runs
    source = PIPELINE_FILE.format(board=board, group=group).replace("  width: 8", "  width: 12")
    reply = fleet.api.post("/pipelines/runs", json={"source": source})
    assert reply.status_code == 201, reply.text
    run_id = reply.json()["id"]
    fleet.wait(lambda: next(s for s in fleet.api.get(f"/pipelines/runs/{run_id}").json()["stages"]
                            if s["name"] == "train")["state"] == "running", 120, "the training starting")
    cancelled = fleet.api.post(f"/pipelines/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    return _run_ended(fleet, run_id)


@then("the run ends cancelled in its train stage, the dataset stage keeps what it made and nothing after "
      "it ran")
def cancelled_in_train(run: dict[str, Any]) -> None:
    assert run["state"] == "cancelled" and run["error"] == "train: cancelled by admin", run
    assert [s["state"] for s in run["stages"]] == ["succeeded", "cancelled", "pending", "pending", "pending"]
    assert run["stages"][0]["artifacts"]["dataset"] == "iris"


@when("I run it again", target_fixture="run")
def run_again(fleet: Fleet, run: dict[str, Any]) -> dict[str, Any]:
    reply = fleet.api.post(f"/pipelines/runs/{run['id']}/rerun")
    assert reply.status_code == 200 and reply.json()["attempt"] == 2, reply.text
    return {**_run_ended(fleet, run["id"]), "before": run}


@then("the dataset stage was not run again and every other stage succeeded")
def went_on(run: dict[str, Any]) -> None:
    assert run["state"] == "succeeded", run
    assert [s["state"] for s in run["stages"]] == ["succeeded"] * 5
    assert run["stages"][0] == run["before"]["stages"][0]  # same job, same artifacts
    assert [s["attempt"] for s in run["stages"]] == [1, 2, 2, 2, 2]

"""Steps for device management: the live API with LwM2M (real UDP on loopback, OSCORE) or
HTTP pull (token) as its orchestrator, x86 devices in their containers, the MCU bridge in
front of QEMU, firmware built by the service's builder containers."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_jobs import follow_job, wait_until
from lwm2m_devices import StockDevice
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import LwM2MSettings, Settings
from tinymlaas.edge.archive import reproducible_zip
from tinymlaas.edge.lwm2m.vocab import FwDelivery, FwProtocol
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.lwm2m.security import write_context, write_psk
from tinymlaas.models import DeviceCredentials, LwM2MAttach, PullAttach
from tinymlaas.services.mcu_device import BridgeProcess
from tinymlaas.services.x86_device import X86Device
from tinymlaas.signing import Signer
from tinymlaas.store import ArtifactStore
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

scenarios("lwm2m")
scenarios("ota")



@dataclass
class Lab:
    """The session's service and what it built (builds are slow: once per session)."""

    server: BackgroundServer
    api: httpx.Client
    lwm2m_uri: str
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)


def start_lab(settings: Settings) -> Iterator[Lab]:
    with BackgroundServer(settings) as server, server.client() as api:
        yield Lab(server, api, api.get("/lwm2m").json().get("uri", ""))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, images: dict[str, bool],
        service_databases: Callable[[Path], str]) -> Iterator[Lab]:
    """The LwM2M service (OSCORE on)."""
    base = Settings()
    data = tmp_path_factory.mktemp("lwm2m-service")
    yield from start_lab(base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data),
        "lwm2m": base.lwm2m.model_copy(update={"port": 0, "security": "oscore", "ack_timeout_s": 1.0,
                                               "download_timeout_s": 60, "update_timeout_s": 60}),
    }))


@pytest.fixture(scope="session")
def pull_lab(tmp_path_factory: pytest.TempPathFactory, images: dict[str, bool],
             service_databases: Callable[[Path], str]) -> Iterator[Lab]:
    """The service with the http-pull orchestrator (tokens on). Polls are held 1 s, not 20: a
    device that rebooted into new firmware is healthy only once its first poll is answered."""
    base = Settings()
    data = tmp_path_factory.mktemp("pull-service")
    yield from start_lab(base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data), "orchestrator": "http-pull",
        "lwm2m": base.lwm2m.model_copy(update={"port": 0}),
        "http_pull": base.http_pull.model_copy(update={"security": "token", "update_timeout_s": 60,
                                                       "poll_wait_s": 1.0}),
    }))


@pytest.fixture(scope="session")
def psk_lab(tmp_path_factory: pytest.TempPathFactory, images: dict[str, bool],
            service_databases: Callable[[Path], str]) -> Iterator[Lab]:
    """The LwM2M service with DTLS-PSK on its CoAPS port."""
    base = Settings()
    data = tmp_path_factory.mktemp("psk-service")
    yield from start_lab(base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data),
        "lwm2m": base.lwm2m.model_copy(update={"port": 0, "coaps_port": 0, "security": "psk",
                                               "ack_timeout_s": 1.0, "download_timeout_s": 60,
                                               "update_timeout_s": 60}),
    }))


@given("the LwM2M service is running with DTLS-PSK security", target_fixture="lab")
def psk_service_up(psk_lab: Lab) -> Lab:
    """This feature's steps talk to the DTLS-PSK service (it stands in for ``lab``)."""
    info = psk_lab.api.get("/lwm2m").json()
    assert info["security"] == "psk" and info["uri"].startswith("coaps://127.0.0.1:")
    return psk_lab


@given("the service runs the http-pull orchestrator with token security", target_fixture="lab")
def pull_service_up(pull_lab: Lab) -> Lab:
    """This scenario's steps talk to the http-pull service (it stands in for ``lab``)."""
    info = pull_lab.api.get("/orchestrator").json()
    assert info["plugin"] == "http-pull" and info["security"] == "token"
    return pull_lab


@given("the LwM2M service is running with OSCORE security")
def service_up(lab: Lab) -> None:
    info = lab.api.get("/lwm2m").json()
    assert info["security"] == "oscore" and info["uri"].startswith("coap://127.0.0.1:")


def build_all(lab: Lab, wanted: dict[str, tuple[str, str, str]]) -> None:
    """Train (zoo cache) and build what is missing; keys are "board:version"."""
    wanted = {k: v for k, v in wanted.items() if k not in lab.builds}
    if not wanted:
        return
    for recipe in sorted({m for m, _, _ in wanted.values()}):
        job = lab.api.post("/models/train", json={"recipe": recipe}).json()
        assert follow_job(lab.api, job["id"])[-1]["state"] == "succeeded"
    replies = {}
    for key, (model, target, version) in wanted.items():
        reply = lab.api.post("/builds", json={"model": model, "target": target, "version": version})
        assert reply.status_code == 202, reply.text
        replies[key] = reply.json()
    for key, reply in replies.items():
        job = follow_job(lab.api, reply["job"]["id"], timeout=600)[-1]
        assert job["state"] == "succeeded", job
        lab.builds[key] = lab.api.get(f"/builds/{reply['build']['id']}").json()


@given(parsers.parse('the service has built hello_world firmware "{v1}" and "{v2}" for "{target}"'))
def built(lab: Lab, v1: str, v2: str, target: str) -> None:
    build_all(lab, {f"{target}:{v}": ("hello_world", target, v) for v in (v1, v2)})


@given(parsers.parse('the service has built the hello_world_float model for "{target}"'))
def built_float(lab: Lab, target: str) -> None:
    build_all(lab, {f"{target}:float": ("hello_world_float", target, "1.0.0")})


def build_of(lab: Lab, devices: dict[str, Any], ep: str, version: str) -> dict[str, Any]:
    return lab.builds[f"{devices[ep].board}:{version}"]


# -- devices --------------------------------------------------------------------

@dataclass
class Booted:
    """An x86 device container."""

    endpoint: str
    board: str
    device: X86Device
    flash: Path

    def logs(self) -> str:
        return self.device.logs()

    def infer(self, values: list[float]) -> dict[str, Any]:
        return self.device.device.infer(values)


@pytest.fixture
def devices(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Devices booted by this scenario (and their credentials); containers are removed after."""
    booted: dict[str, Any] = {"credentials": {}}

    def cleanup() -> None:
        for dev in booted.values():
            if isinstance(dev, Booted):
                dev.device.close()
            elif isinstance(dev, Bridge):
                dev.process.stop()

    request.addfinalizer(cleanup)
    return booted


@given(parsers.parse('device "{ep}" has credentials from the service'))
def credentials(lab: Lab, devices: dict[str, Any], ep: str) -> None:
    reply = lab.api.post(f"/devices/{ep}/credentials", json={"replace": True})
    assert reply.status_code == 201, reply.text
    devices["credentials"][ep] = reply.json()


@given(parsers.parse('device "{ep}" has a token from the service'))
def token(lab: Lab, devices: dict[str, Any], ep: str) -> None:
    credentials(lab, devices, ep)
    assert set(devices["credentials"][ep]) == {"endpoint", "token", "signing_key"}


@given(parsers.parse('device "{ep}" has a token from the service, but the device\'s copy is wrong'))
def wrong_token(lab: Lab, devices: dict[str, Any], ep: str) -> None:
    token(lab, devices, ep)
    devices["credentials"][ep]["token"] = devices["credentials"][ep]["token"][::-1]
    devices.setdefault("tampered", set()).add(ep)


@given(parsers.parse('device "{ep}" has credentials from the service, but the device\'s copy of the key '
                     'is wrong'))
def wrong_credentials(lab: Lab, devices: dict[str, Any], ep: str) -> None:
    credentials(lab, devices, ep)
    material = devices["credentials"][ep]
    key = "psk_key_hex" if "psk_key_hex" in material else "secret_hex"
    material[key] = hashlib.sha256(material[key].encode()).hexdigest()[:len(material[key])]
    devices.setdefault("tampered", set()).add(ep)


def boot(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, *,
         lifetime: int = 30, secure: bool = True, pull: bool = False, trial_s: float = 30,
         soak_s: float = 3) -> Booted:
    flash = tmp_path / ep
    flash.mkdir()
    sha = lab.builds[f"x86-tflm:{version}"]["firmware"]["image_sha256"]
    (flash / "firmware.pyz").write_bytes(lab.api.get(f"/artifacts/{sha}").content)
    attach: LwM2MAttach | PullAttach
    if pull:
        tokens = tmp_path / f"{ep}-token"
        tokens.mkdir()
        (tokens / "token").write_text(devices["credentials"][ep]["token"])
        DeviceCredentials.model_validate(devices["credentials"][ep]).write_trust(tokens)
        attach = PullAttach(url=lab.server.url, endpoint=ep, credentials=tokens, wait_s=10)
    elif secure and "psk_key_hex" in devices["credentials"][ep]:
        write_psk(tmp_path / f"{ep}-psk" / "psk.json", devices["credentials"][ep])
        DeviceCredentials.model_validate(devices["credentials"][ep]).write_trust(tmp_path / f"{ep}-psk")
        attach = LwM2MAttach(uri=lab.lwm2m_uri, endpoint=ep, credentials=tmp_path / f"{ep}-psk",
                             security="psk", lifetime_s=lifetime)
    else:
        oscore = None
        if secure:
            oscore = write_context(tmp_path / f"{ep}-oscore", devices["credentials"][ep], role="device")
            DeviceCredentials.model_validate(devices["credentials"][ep]).write_trust(oscore)
        attach = LwM2MAttach(uri=lab.lwm2m_uri, endpoint=ep, credentials=oscore, lifetime_s=lifetime)
    board = get_board(Settings().targets_dir, "x86-tflm")
    dev = devices[ep] = Booted(ep, board.name, X86Device(board, flash, attach=attach, trial_s=trial_s,
                                                                     soak_s=soak_s), flash)
    return dev


def online(lab: Lab, ep: str) -> dict[str, Any] | None:
    for d in lab.api.get("/devices").json():
        if d["endpoint"] == ep and d["online"]:
            return d
    return None


@given(parsers.parse('device "{ep}" boots firmware "{version}" in a container'))
@when(parsers.parse('device "{ep}" boots firmware "{version}" in a container'))
def boot_device(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str) -> None:
    boot(lab, devices, tmp_path, ep, version)
    if ep in devices["credentials"] and ep not in devices.get("tampered", ()):
        wait_until(lambda: online(lab, ep), 30, f"{ep} registering")


@given(parsers.parse('device "{ep}" boots firmware "{version}" in a container with a lifetime of {lt:d} s'))
def boot_short_lifetime(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str,
                        lt: int) -> None:
    boot(lab, devices, tmp_path, ep, version, lifetime=lt)
    wait_until(lambda: online(lab, ep), 30, f"{ep} registering")


@given(parsers.parse('device "{ep}" boots firmware "{version}" in a container with a trial of {s:d} s'))
def boot_with_trial(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, s: int) -> None:
    """A short trial (a new image must stay up 6 s of it), so a rollback is seen in seconds."""
    boot(lab, devices, tmp_path, ep, version, trial_s=s, soak_s=6)
    wait_until(lambda: online(lab, ep), 30, f"{ep} registering")


@given(parsers.parse('device "{ep}" boots firmware "{version}" in a container polling the service'))
@when(parsers.parse('device "{ep}" boots firmware "{version}" in a container polling the service'))
def boot_polling(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str) -> None:
    boot(lab, devices, tmp_path, ep, version, pull=True)
    if ep not in devices.get("tampered", ()):
        wait_until(lambda: online(lab, ep), 30, f"{ep} polling")


@when(parsers.parse('device "{ep}" boots firmware "{version}" in a container without credentials'))
def boot_insecure(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str) -> None:
    boot(lab, devices, tmp_path, ep, version, secure=False)


# -- registration and capabilities -------------------------------------------------

@then(parsers.parse('the service lists "{ep}" online over OSCORE with objects 3, 5, 9 and 33100'))
def listed(lab: Lab, ep: str) -> None:
    dev = wait_until(lambda: online(lab, ep), 30, f"{ep} registering")
    assert dev["secure"] is True and dev["lwm2m"] == "1.1"
    assert {"3", "5", "9", "33100"} <= set(dev["objects"])
    assert dev["versions"]["5"] == "1.1"


@then(parsers.parse('the service lists "{ep}" online over DTLS with objects 3, 5, 9 and 33100'))
def listed_dtls(lab: Lab, ep: str) -> None:
    listed(lab, ep)
    assert lab.api.get("/lwm2m").json()["security"] == "psk"


@then(parsers.parse('the service lists "{ep}" online over HTTP pull with board "{board}" and '
                    'firmware "{version}"'))
def listed_pull(lab: Lab, devices: dict[str, Any], ep: str, board: str, version: str) -> None:
    dev = wait_until(lambda: online(lab, ep), 30, f"{ep} polling")
    assert dev["secure"] is True and dev["binding"] == "HTTP pull" and dev["lwm2m"] is None
    caps = lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["board"] == board and caps["firmware_version"] == version and caps["cpu"] == "x86-64"
    assert caps["model_sha256"] == build_of(lab, devices, ep, version)["firmware"]["model_sha256"]
    assert caps["fota"] and caps["sota"] and caps["storage_total_kb"] == 16384


@then(parsers.parse('its capabilities say board "{board}", firmware "{version}", CPU "{cpu}", '
                    '{ram_kib:d} KiB of RAM and the hello_world model'))
def capabilities(lab: Lab, devices: dict[str, Any], ep_from_scenario: str, board: str, version: str,
                 cpu: str, ram_kib: int) -> None:
    caps = lab.api.get(f"/devices/{ep_from_scenario}").json()["capabilities"]
    assert caps["board"] == board and caps["model"] == board
    assert caps["firmware_version"] == version and caps["cpu"] == cpu
    assert caps["ram_bytes"] == ram_kib * 1024 and caps["manufacturer"] == "TinyMLaaS"
    build = build_of(lab, devices, ep_from_scenario, version)
    assert caps["model_sha256"] == build["firmware"]["model_sha256"]
    assert caps["runtime"] and caps["fota"] and caps["sota"]
    assert caps["tensors"]["inputs"][0]["dtype"] == "int8"


@then(parsers.parse("its storage figures are in kilobytes: {total:d} KiB total"))
def storage(lab: Lab, ep_from_scenario: str, total: int) -> None:
    caps = lab.api.get(f"/devices/{ep_from_scenario}").json()["capabilities"]
    assert caps["storage_total_kb"] == total
    assert 0 < caps["storage_free_kb"] < total  # the OS image takes some of it


@pytest.fixture
def ep_from_scenario(devices: dict[str, Any]) -> str:
    return next(k for k, v in devices.items() if isinstance(v, Booted | Bridge))


# -- FOTA ----------------------------------------------------------------------------

def deploy(lab: Lab, ep: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = lab.api.post(f"/devices/{ep}/{kind}", json=body)
    assert reply.status_code == 202, reply.text
    follow_job(lab.api, reply.json()["job"]["id"])
    return lab.api.get(f"/deployments/{reply.json()['deployment']['id']}").json()


@when(parsers.parse('the service deploys firmware "{version}" to "{ep}"'), target_fixture="deployment")
def deploy_firmware(lab: Lab, devices: dict[str, Any], version: str, ep: str) -> dict[str, Any]:
    return deploy(lab, ep, "firmware", {"build": build_of(lab, devices, ep, version)["id"]})


@when(parsers.parse('the service deploys the model of build "{version}" to "{ep}"'),
      target_fixture="deployment")
def deploy_model_of(lab: Lab, devices: dict[str, Any], version: str, ep: str) -> dict[str, Any]:
    return deploy(lab, ep, "model", {"build": build_of(lab, devices, ep, version)["id"]})


@given(parsers.parse('a copy of firmware "{version}" whose stored bytes got corrupted'),
       target_fixture="corrupted")
def corrupted_copy(lab: Lab, version: str) -> str:
    good = lab.api.get(f"/artifacts/{lab.builds['x86-tflm:' + version]['firmware']['image_sha256']}").content
    copy = good + b"\0" * 16  # another artifact, so the good one stays intact
    sha = hashlib.sha256(copy).hexdigest()
    bad = bytearray(copy)
    bad[len(bad) // 2] ^= 0x5A  # one flipped byte at rest in the artifact store
    path = ArtifactStore(lab.server.settings.artifacts_dir).path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(bad))
    return sha


@when(parsers.parse('the service deploys the corrupted firmware to "{ep}"'), target_fixture="deployment")
def deploy_corrupted(lab: Lab, corrupted: str, ep: str) -> dict[str, Any]:
    return deploy(lab, ep, "firmware", {"artifact": corrupted})


@then(parsers.parse('the deployment succeeds with Update Result "{result}"'))
def deployment_ok(deployment: dict[str, Any], result: str) -> None:
    assert deployment["succeeded"] is True, deployment
    assert deployment["result"] == result


@then(parsers.parse('the deployment fails with Update Result "{result}"'))
def deployment_failed(deployment: dict[str, Any], result: str) -> None:
    assert deployment["succeeded"] is False, deployment
    assert deployment["result"] == result and deployment["result_code"] == 5


def boots(dev: Booted) -> int:
    return dev.logs().count("boot: starting")


@then(parsers.parse('"{ep}" reports firmware "{version}" after rebooting once'))
def new_firmware(lab: Lab, devices: dict[str, Any], ep: str, version: str,
                 deployment: dict[str, Any]) -> None:
    assert deployment["firmware_before"] == "1.0.0" and deployment["firmware_after"] == version
    caps = lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["firmware_version"] == version
    dev = devices[ep]
    assert boots(dev) == 2 and "firmware update succeeded" in dev.logs()


@then(parsers.parse('"{ep}" still runs firmware "{version}" without having rebooted'))
def old_firmware(lab: Lab, devices: dict[str, Any], ep: str, version: str) -> None:
    caps = lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["firmware_version"] == version
    assert boots(devices[ep]) == 1
    logs = devices[ep].logs()
    assert "does not match" in logs or "not signed" in logs, logs[-2000:]  # the device said why


@then(parsers.parse("inferences through LwM2M for x = 0..6 are bit-exact with TFLM and within "
                    "{tol:f} of sin(x)"))
@then(parsers.parse("inferences through the service for x = 0..6 are bit-exact with TFLM and within "
                    "{tol:f} of sin(x)"))
def lwm2m_inferences(lab: Lab, ep_from_scenario: str, tol: float, devices: dict[str, Any]) -> None:
    model = get_recipe("hello_world").load(Settings().zoo_dir)
    oracle = Tflm(model)
    q = oracle.input["quantization_parameters"]
    for x in range(7):
        report = lab.api.post(f"/devices/{ep_from_scenario}/infer", json={"values": [float(x)]})
        assert report.status_code == 200, report.text
        body = report.json()
        tensor = quantize(np.array([[float(x)]]), q["scales"][0], q["zero_points"][0], np.int8)
        assert body["output"] == oracle.invoke(tensor).ravel().tolist()
        assert abs(body["values"][0] - math.sin(x)) < tol
        devices.setdefault("reports", []).append(body)


@then("each of those inferences reports the MCU's instruction count")
def instruction_counts(devices: dict[str, Any]) -> None:
    counts = [r["instructions"] for r in devices["reports"]]
    assert len(counts) == 7 and all(isinstance(c, int) and c > 100 for c in counts), counts


# -- SOTA ----------------------------------------------------------------------------

@dataclass
class Load:
    replies: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@given(parsers.parse('a client keeps sending inference requests to "{ep}"'), target_fixture="load")
def keep_inferring(devices: dict[str, Any], ep: str, request: pytest.FixtureRequest) -> Load:
    dev: Booted = devices[ep]
    load = Load()

    def run() -> None:
        x = 0
        while not load.stop.is_set():
            try:
                load.replies.append({"x": x % 7, **dev.infer([float(x % 7)])})
            except Exception as exc:  # every failure is a lost request: count it
                load.errors.append(repr(exc))
            x += 1
            time.sleep(0.01)

    load.thread = threading.Thread(target=run, daemon=True)
    load.thread.start()
    request.addfinalizer(load.stop.set)
    wait_until(lambda: len(load.replies) >= 20, 10, "the first inferences")
    return load


@when(parsers.parse('the service deploys the hello_world_float model to "{ep}"'), target_fixture="deployment")
def deploy_model(lab: Lab, ep: str, load: Load) -> dict[str, Any]:
    dep = deploy(lab, ep, "model", {"build": lab.builds["x86-tflm:float"]["id"]})
    n = len(load.replies)
    wait_until(lambda: len(load.replies) >= n + 20, 10, "inferences after the swap")
    load.stop.set()
    assert load.thread is not None
    load.thread.join(10)
    return dep


@then(parsers.parse('"{ep}" serves the hello_world_float model without having rebooted'))
def serves_new_model(lab: Lab, devices: dict[str, Any], ep: str, deployment: dict[str, Any]) -> None:
    float_sha = lab.builds["x86-tflm:float"]["firmware"]["model_sha256"]
    assert deployment["model_sha256"] == float_sha and not deployment["fell_back_to_firmware"]
    caps = lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["model_sha256"] == float_sha and caps["firmware_version"] == "1.0.0"
    assert caps["tensors"]["inputs"][0]["dtype"] == "float32"
    assert boots(devices[ep]) == 1


@then("every inference request was answered, by the old model and then by the new one")
def none_lost(lab: Lab, load: Load) -> None:
    assert load.errors == []
    old_sha = lab.builds["x86-tflm:1.0.0"]["firmware"]["model_sha256"]
    new_sha = lab.builds["x86-tflm:float"]["firmware"]["model_sha256"]
    shas = [r["model_sha256"] for r in load.replies]
    switch = shas.index(new_sha)
    assert switch > 0 and set(shas[:switch]) == {old_sha} and set(shas[switch:]) == {new_sha}
    zoo = Settings().zoo_dir
    int8 = Tflm(get_recipe("hello_world").load(zoo))
    flt = Tflm(get_recipe("hello_world_float").load(zoo))
    q = int8.input["quantization_parameters"]
    for r in load.replies:
        if r["model_sha256"] == old_sha:
            t = quantize(np.array([[float(r["x"])]]), q["scales"][0], q["zero_points"][0], np.int8)
            assert r["output"] == int8.invoke(t).ravel().tolist()
        else:
            expected = flt.invoke(np.array([[float(r["x"])]], dtype=np.float32)).ravel().tolist()
            assert r["values"] == pytest.approx(expected, rel=1e-6)


# -- lifetime --------------------------------------------------------------------------

@when(parsers.parse("the device container is frozen for {seconds:d} s"))
def freeze(devices: dict[str, Any], ep_from_scenario: str, seconds: int) -> None:
    dev: Booted = devices[ep_from_scenario]
    dev.device.container.pause()
    time.sleep(seconds)


@then(parsers.parse('the service shows "{ep}" offline because its lifetime expired'))
def offline(lab: Lab, ep: str) -> None:
    dev = lab.api.get(f"/devices/{ep}").json()["device"]
    assert dev["online"] is False and dev["offline_reason"] == "lifetime expired"
    listed = {d["endpoint"]: d for d in lab.api.get("/devices").json()}
    assert listed[ep]["online"] is False
    assert lab.api.post(f"/devices/{ep}/infer", json={"values": [1.0]}).status_code == 504


@when("the device container is thawed")
def thaw(devices: dict[str, Any], ep_from_scenario: str) -> None:
    devices[ep_from_scenario].device.container.unpause()


@then(parsers.parse('the service lists "{ep}" online again within {seconds:d} s'))
def online_again(lab: Lab, devices: dict[str, Any], ep: str, seconds: int) -> None:
    try:
        wait_until(lambda: online(lab, ep), seconds, f"{ep} registering again")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; device log: {devices[ep].logs()[-1500:]}") from None


# -- refusals ----------------------------------------------------------------------------

@then(parsers.parse('neither "{a}" nor "{b}" is listed by the service after {seconds:d} s'))
def not_listed(lab: Lab, devices: dict[str, Any], a: str, b: str, seconds: int) -> None:
    time.sleep(seconds)
    listed = {d["endpoint"] for d in lab.api.get("/devices").json()}
    assert a not in listed and b not in listed
    assert a in devices and b in devices  # both really did boot and try


@then("the device logs say the server refused them")
def refused_in_logs(devices: dict[str, Any]) -> None:
    wrong, none = devices["x86-wrong"].logs(), devices["x86-none"].logs()
    assert "refused our OSCORE request: 4.00 Bad Request Decryption failed" in wrong, wrong[-2000:]
    assert "registration refused: 4.01 Unauthorized registration needs OSCORE credentials" in none, \
        none[-2000:]


@then(parsers.parse('"{ep}" is not listed by the service after {seconds:d} s'))
def one_not_listed(lab: Lab, devices: dict[str, Any], ep: str, seconds: int) -> None:
    time.sleep(seconds)
    assert ep not in {d["endpoint"] for d in lab.api.get("/devices").json()}
    assert ep in devices  # it did boot and try


@then("the device log says the service refused its poll")
def poll_refused(devices: dict[str, Any], ep_from_scenario: str) -> None:
    logs = devices[ep_from_scenario].logs()
    assert f"the server refused the poll: HTTP 403: wrong or missing token for device '{ep_from_scenario}'" \
        in logs, logs[-2000:]


@then(parsers.parse('firmware "{version}" cannot be downloaded for "{ep}" without a grant'))
def no_download(lab: Lab, version: str, ep: str) -> None:
    sha = lab.builds[f"x86-tflm:{version}"]["firmware"]["image_sha256"]
    for query in ("", "?grant=guessed"):  # as the device would ask: no user token
        r = httpx.get(f"{lab.server.url}/devices/{ep}/packages/{sha}{query}")
        assert r.status_code == 403 and "grant" in r.json()["detail"], r.text


# -- the MCU bridge ----------------------------------------------------------------------

@dataclass
class Bridge:
    """The bridge process (the gateway) in front of QEMU."""

    endpoint: str
    board: str
    process: BridgeProcess

    def logs(self) -> str:
        return self.process.logs()


def start_bridge(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, board: str, *,
                 pull: bool, trial_s: float | None = None) -> None:
    fw = lab.builds[f"{board}:{version}"]["firmware"]
    flash = tmp_path / ep / "flash"
    flash.mkdir(parents=True)
    for name, sha in fw["artifacts"].items():
        (flash / name).write_bytes(lab.api.get(f"/artifacts/{sha}").content)
    attach: LwM2MAttach | PullAttach
    if pull:
        (tmp_path / ep / "token").write_text(devices["credentials"][ep]["token"])
        DeviceCredentials.model_validate(devices["credentials"][ep]).write_trust(tmp_path / ep)
        attach = PullAttach(url=lab.server.url, endpoint=ep, credentials=tmp_path / ep, wait_s=10)
    else:
        oscore = write_context(tmp_path / ep / "oscore", devices["credentials"][ep], role="device")
        DeviceCredentials.model_validate(devices["credentials"][ep]).write_trust(oscore)
        attach = LwM2MAttach(uri=lab.lwm2m_uri, endpoint=ep, credentials=oscore)
    targets = Settings().targets_dir
    process = BridgeProcess(get_board(targets, board), flash, attach, tmp_path / ep / "bridge.log",
                            targets_dir=targets, emulator="qemu", trial_s=trial_s)
    devices[ep] = Bridge(ep, board, process)
    try:
        wait_until(lambda: online(lab, ep), 60, f"bridge {ep} joining")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; bridge log: {process.logs()[-1500:]}") from None


@given(parsers.parse('a bridge "{ep}" runs firmware "{version}" on an emulated "{board}"'))
def bridge(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, board: str) -> None:
    start_bridge(lab, devices, tmp_path, ep, version, board, pull=False)


@given(parsers.parse('a bridge "{ep}" runs firmware "{version}" on an emulated "{board}" with a trial of '
                     '{seconds:d} s'))
def bridge_on_trial(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, board: str,
                    seconds: int) -> None:
    """A short trial (QEMU boots hello_world in well under a second), so a rollback is seen soon."""
    start_bridge(lab, devices, tmp_path, ep, version, board, pull=False, trial_s=seconds)


@given(parsers.parse('a bridge "{ep}" polling the service runs firmware "{version}" '
                     'on an emulated "{board}"'))
def pull_bridge(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, version: str, board: str) -> None:
    start_bridge(lab, devices, tmp_path, ep, version, board, pull=True)


@then(parsers.parse('"{ep}" reports firmware "{version}" from an emulator restarted on the new image'))
def restarted(lab: Lab, devices: dict[str, Any], ep: str, version: str, deployment: dict[str, Any]) -> None:
    assert deployment["firmware_after"] == version
    assert lab.api.get(f"/devices/{ep}").json()["capabilities"]["firmware_version"] == version
    logs = devices[ep].logs()
    assert f"MCU restarted: TINYMLAAS READY board={devices[ep].board} fw={version}" in logs, logs[-2000:]


@then("the deployment succeeds by FOTA because the MCU firmware has no writable model region")
def fell_back(deployment: dict[str, Any]) -> None:
    assert deployment["succeeded"] is True and deployment["fell_back_to_firmware"] is True, deployment
    assert "no writable model region" in deployment["detail"]
    assert deployment["result"] == "firmware updated successfully"


# -- devices the project did not write (stock LwM2M 1.1 clients beside the service) -----------

@pytest.fixture
def stock(request: pytest.FixtureRequest) -> dict[str, StockDevice]:
    """Stock devices started by this scenario; closed after it."""
    started: dict[str, StockDevice] = {}
    request.addfinalizer(lambda: [d.close() for d in started.values()])
    return started


@given(parsers.parse("the service runs its LwM2M server with default settings, battery devices staying "
                     "awake {awake:g} s"), target_fixture="lab")
def vendor_service(tmp_path: Path, service_databases: Callable[[Path], str], awake: float,
                   request: pytest.FixtureRequest) -> Lab:
    """A fresh service whose LwM2M settings are the defaults (its ports aside: any free one)."""
    base = Settings()
    data = tmp_path / "vendor-service"
    settings = base.model_copy(update={
        "data_dir": data, "database_url": service_databases(data),
        "lwm2m": LwM2MSettings(port=0, queue_awake_s=awake)})
    assert settings.lwm2m.content_format == LwM2MSettings().content_format == "senml-cbor"
    server = BackgroundServer(settings)
    request.addfinalizer(server.stop)
    api = server.client()
    request.addfinalizer(api.close)
    return Lab(server, api, api.get("/lwm2m").json()["uri"])


FIRMWARE_WAYS = {
    "pushed by the server": {"delivery": FwDelivery.push, "protocols": ()},
    "pulled over CoAP": {"delivery": FwDelivery.pull, "protocols": (FwProtocol.coap,)},
    "pulled over CoAPS": {"delivery": FwDelivery.pull, "protocols": (FwProtocol.coaps,)},
}


@given(parsers.parse('a stock LwM2M 1.1 device "{ep}" that speaks only SenML JSON and takes firmware {how}'))
def stock_device(lab: Lab, stock: dict[str, StockDevice], tmp_path: Path, ep: str, how: str) -> None:
    model = get_recipe("hello_world").load(Settings().zoo_dir)
    image = b"VENDOR-FW-2.0.0" + bytes(range(256)) * 64  # 16 KiB: many blocks either way
    stock[ep] = StockDevice(ep, lab.lwm2m_uri, model, tmp_path, image=image, **FIRMWARE_WAYS[how])
    wait_until(lambda: online(lab, ep), 10, f"{ep} registering")


@given(parsers.parse('a stock LwM2M 1.1 device "{ep}" that sleeps between its messages'))
def sleeping_device(lab: Lab, stock: dict[str, StockDevice], tmp_path: Path, ep: str) -> None:
    model = get_recipe("hello_world").load(Settings().zoo_dir)
    stock[ep] = StockDevice(ep, lab.lwm2m_uri, model, tmp_path, queue_mode=True, awake_s=1.0)
    dev = wait_until(lambda: online(lab, ep), 10, f"{ep} registering")
    assert dev["queue_mode"] is True


@then(parsers.parse('the service shows that "{ep}" is made by "{maker}" and runs firmware "{version}"'))
def vendor_caps(lab: Lab, ep: str, maker: str, version: str) -> None:
    detail = lab.api.get(f"/devices/{ep}").json()
    assert detail["device"]["lwm2m"] == "1.1", detail
    caps = detail["capabilities"]
    assert caps is not None, detail
    assert caps["manufacturer"] == maker and caps["firmware_version"] == version and caps["fota"]
    assert caps["tensors"]["inputs"][0]["dtype"] == "int8"  # the TinyML object, read as SenML JSON


def stream_results(lab: Lab, ep: str) -> tuple[threading.Thread, list[dict[str, Any]], threading.Event]:
    """Follow the device's results (server-sent events) in a thread until one arrives."""
    got: list[dict[str, Any]] = []
    open_ = threading.Event()

    def follow() -> None:
        with lab.server.client(timeout=60) as api, \
                api.stream("GET", f"/devices/{ep}/results", params={"count": 1}) as reply:
            assert reply.status_code == 200, reply.read()
            open_.set()
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread, got, open_


@then(parsers.parse('the service reports each inference "{ep}" runs, as it happens'))
def vendor_results(lab: Lab, ep: str) -> None:
    thread, got, open_ = stream_results(lab, ep)
    assert open_.wait(15), "the results stream did not open"
    report = lab.api.post(f"/devices/{ep}/infer", json={"values": [1.0]})
    assert report.status_code == 200, report.text
    thread.join(15)
    assert got and got[0]["count"] == report.json()["count"] and got[0]["output"] == report.json()["output"]


@when(parsers.parse('the service deploys new firmware to "{ep}"'), target_fixture="deployment")
def vendor_deploy(lab: Lab, stock: dict[str, StockDevice], ep: str) -> dict[str, Any]:
    sha = ArtifactStore(lab.server.settings.artifacts_dir).put_bytes(stock[ep].image)
    t0 = time.monotonic()
    reply = lab.api.post(f"/devices/{ep}/firmware", json={"artifact": sha})
    assert reply.status_code == 202, reply.text
    follow_job(lab.api, reply.json()["job"]["id"], timeout=120)
    dep: dict[str, Any] = lab.api.get(f"/deployments/{reply.json()['deployment']['id']}").json()
    dep["took_s"] = time.monotonic() - t0
    return dep


@then(parsers.parse("the deployment succeeds, the package having gone by {delivery}"))
def vendor_deployed(deployment: dict[str, Any], delivery: str) -> None:
    assert deployment["succeeded"] is True, deployment
    assert deployment["delivery"].startswith(delivery), deployment
    assert deployment["result"] == "firmware updated successfully"


@then(parsers.parse('the deployment fails within seconds, saying "{why}"'))
def vendor_refused(deployment: dict[str, Any], why: str) -> None:
    assert deployment["succeeded"] is False and deployment["took_s"] < 10, deployment
    assert why in deployment["detail"], deployment


@when(parsers.parse('someone asks "{ep}" for an inference while it sleeps'), target_fixture="queued")
def ask_sleeping(lab: Lab, stock: dict[str, StockDevice], ep: str) -> dict[str, Any]:
    wait_until(lambda: stock[ep].asleep() and lab.api.get(f"/devices/{ep}").json()["capabilities"] is None,
               10, f"{ep} falling asleep")
    reply = lab.api.post(f"/devices/{ep}/infer", json={"values": [2.0]})
    assert reply.status_code == 202, reply.text
    return {"endpoint": ep, **reply.json()}


@then("the service answers that the inference is queued")
def answered_queued(lab: Lab, queued: dict[str, Any]) -> None:
    assert queued["state"] == "queued" and queued["job"]["kind"] == "infer", queued
    job = lab.api.get(f"/jobs/{queued['job']['id']}").json()
    assert job["state"] in ("queued", "running") and "queued until the device wakes" in job["step"], job
    detail = lab.api.get(f"/devices/{queued['endpoint']}").json()
    assert "sleeps (queue mode)" in detail["capabilities_error"], detail


@then(parsers.parse('the job gives the inference\'s result once "{ep}" wakes'))
def queued_result(lab: Lab, queued: dict[str, Any], ep: str) -> None:
    seen = follow_job(lab.api, queued["job"]["id"], timeout=30)
    assert seen[-1]["state"] == "succeeded", seen
    result = seen[-1]["result"]
    oracle = Tflm(get_recipe("hello_world").load(Settings().zoo_dir))
    q = oracle.input["quantization_parameters"]
    tensor = quantize(np.array([[2.0]]), q["scales"][0], q["zero_points"][0], np.int8)
    assert result["endpoint"] == ep and result["output"] == oracle.invoke(tensor).ravel().tolist()


@when(parsers.parse('"{ep}" runs an inference on its own and sends it to the service'),
      target_fixture="sent")
def device_sends(lab: Lab, stock: dict[str, StockDevice], ep: str) -> dict[str, Any]:
    thread, got, open_ = stream_results(lab, ep)  # opens when the device next wakes
    assert open_.wait(30), "the results stream did not open"
    wait_until(stock[ep].asleep, 10, f"{ep} falling asleep again")
    before = lab.api.get(f"/devices/{ep}").json()["device"]
    stock[ep].run_inference_and_send(bytes([5]))
    thread.join(15)
    return {"reports": got, "device_before": before}


@then("the service reports that inference, as it happens")
def sent_reported(sent: dict[str, Any]) -> None:
    assert len(sent["reports"]) == 1, sent
    assert sent["reports"][0]["input"] == [5] and sent["reports"][0]["count"] >= 2


# -- images that must prove themselves (trial and rollback) ------------------------------

#: The new image's entry point, made to fail in one way (the rest of the image is the real one).
BAD_MAINS = {
    "crashes 5 s after it boots": "import os, sys, threading\nfrom tinymlaas.edge.x86 import main\n"
                                  "threading.Timer(5.0, lambda: os._exit(3)).start()\nsys.exit(main())\n",
    "hangs at boot": "import time\nwhile True:\n    time.sleep(1)\n",
    "boots without its management agent": (
        "import sys\nfrom tinymlaas.edge.x86 import main\n"
        "keep = [a for i, a in enumerate(sys.argv) if i == 0 or sys.argv[i - 1] in ('--image', '--port')"
        " or a in ('--image', '--port')]\nsys.argv = keep\nsys.exit(main())\n"),
}
ROLLBACK_REASON = {"crashes 5 s after it boots": "stopped (exit 3)", "hangs at boot": "was not healthy",
                   "boots without its management agent": "was not healthy",
                   "crashes on its first inference": "HARDFAULT",
                   "hangs after its banner": "did not answer a health inference",
                   "never prints its banner": "printed no ready banner"}


def _elf_symbol_offset(elf: bytes, suffix: str) -> int:
    """Where in an ELF32 (little-endian) file the code of the symbol named ``*suffix`` starts."""
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x2E)
    sections = [struct.unpack_from("<10I", elf, shoff + i * shentsize) for i in range(shnum)]
    symtab = next(sec for sec in sections if sec[1] == 2)  # SHT_SYMTAB; sh_link is its string table
    strtab = sections[symtab[6]]
    for at in range(symtab[4], symtab[4] + symtab[5], 16):
        st_name, value, _, _, _, shndx = struct.unpack_from("<IIIBBH", elf, at)
        start = strtab[4] + st_name
        if elf[start:elf.index(b"\0", start)].endswith(suffix.encode()):
            section = sections[shndx]
            return section[4] + (value & ~1) - section[3]
    raise KeyError(suffix)


def _bad_elf(elf: bytes, fault: str) -> bytes:
    """The firmware ELF made to fail in one way: a Thumb ``udf`` (a HardFault: the firmware
    reports it and resets) or ``b .`` (a hang) at the model's entry, or a silent banner."""
    if fault == "never prints its banner":
        return elf.replace(b"TINYMLAAS READY", b"TINYMLAAS HELLO")
    at = _elf_symbol_offset(elf, "_invoke")  # the compiled model: hello_world_invoke
    op = {"crashes on its first inference": b"\x00\xde", "hangs after its banner": b"\xfe\xe7"}[fault]
    return elf[:at] + op + elf[at + 2:]


def _rezip(image: bytes, main: str) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(image))
    members = {n: src.read(n) for n in src.namelist()}
    members["__main__.py"] = main.encode()
    return reproducible_zip(members)


@when(parsers.parse('the service deploys a signed copy of firmware "{version}" that {fault} to "{ep}"'),
      target_fixture="deployment")
def deploy_bad_image(lab: Lab, devices: dict[str, Any], version: str, fault: str, ep: str) -> dict[str, Any]:
    board = devices[ep].board
    good = lab.api.get(f"/artifacts/{lab.builds[f'{board}:{version}']['firmware']['image_sha256']}").content
    signer = Signer.load_or_create(lab.server.settings.data_dir)  # as if the service had built it
    made_bad = _bad_elf(good, fault) if isinstance(devices[ep], Bridge) else _rezip(good, BAD_MAINS[fault])
    bad = signer.sign(made_bad)
    sha = ArtifactStore(lab.server.settings.artifacts_dir).put_bytes(bad)
    devices["fault"] = fault
    return deploy(lab, ep, "firmware", {"artifact": sha})


@when(parsers.parse('the service sends firmware "{version}" without the service\'s signature to "{ep}"'),
      target_fixture="deployment")
def deploy_unsigned(lab: Lab, version: str, ep: str) -> dict[str, Any]:
    raw = lab.builds["x86-tflm:" + version]["firmware"]["image_sha256"]  # the image, not its package
    return deploy(lab, ep, "firmware", {"artifact": raw})


@then(parsers.parse('the deployment fails with Update Result "{result}" saying why'))
def rolled_back(deployment: dict[str, Any], devices: dict[str, Any], ep_from_scenario: str,
                result: str) -> None:
    assert (deployment["succeeded"], deployment["result"], deployment["result_code"]) == (False, result, 8), \
        deployment
    logs = devices[ep_from_scenario].logs()
    assert "rolling back" in logs and ROLLBACK_REASON[devices["fault"]] in logs, logs[-3000:]


@then(parsers.parse('"{ep}" runs firmware "{version}" again and answers inferences bit-exact with TFLM'))
def old_image_again(lab: Lab, devices: dict[str, Any], ep: str, version: str) -> None:
    caps = lab.api.get(f"/devices/{ep}").json()["capabilities"]
    assert caps["firmware_version"] == version
    lwm2m_inferences(lab, ep, 0.15, devices)


# -- several inputs and outputs ------------------------------------------------------

@given(parsers.parse('the service has built the sensor_fusion model for "{a}" and "{b}"'))
def built_fusion(lab: Lab, a: str, b: str) -> None:
    build_all(lab, {f"{t}:fusion": ("sensor_fusion", t, "1.0.0") for t in (a, b)})


@given(parsers.parse('device "{ep}" boots the sensor_fusion firmware in a container'))
def boot_fusion(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str) -> None:
    boot(lab, devices, tmp_path, ep, "fusion")
    wait_until(lambda: online(lab, ep), 60, f"{ep} registering")


@given(parsers.parse('a bridge "{ep}" runs the sensor_fusion firmware on an emulated "{board}"'))
def bridge_fusion(lab: Lab, devices: dict[str, Any], tmp_path: Path, ep: str, board: str) -> None:
    start_bridge(lab, devices, tmp_path, ep, "fusion", board, pull=False)


def _fusion_oracle() -> tuple[Tflm, Any]:
    from tinymlaas import tflite

    model = get_recipe("sensor_fusion").load(Settings().zoo_dir)
    return Tflm(model, inputs=2, outputs=2), tflite.inspect(model)


@then(parsers.parse('"{a}" and "{b}" each describe the inputs "{x}" of {nx:d} values and "{y}" of {ny:d}, '
                    'and {n_out:d} outputs, each tensor with the model\'s own quantization'))
def describe_fusion(lab: Lab, a: str, b: str, x: str, nx: int, y: str, ny: int, n_out: int) -> None:
    _, info = _fusion_oracle()
    for ep in (a, b):
        tensors = lab.api.get(f"/devices/{ep}").json()["capabilities"]["tensors"]
        ins, outs = tensors["inputs"], tensors["outputs"]
        assert [(x in ins[0]["name"], ins[0]["shape"]), (y in ins[1]["name"], ins[1]["shape"])] == \
            [(True, [1, nx]), (True, [1, ny])], (ep, ins)
        assert len(outs) == n_out
        for got, want in zip(ins + outs, info.inputs + info.outputs, strict=True):
            assert (got["name"], got["dtype"], got["shape"], got["scale"], got["zero_point"]) == \
                (want.name, want.dtype, want.shape, want.scale, want.zero_point), ep


@when(parsers.parse('the data scientist sends {n:d} samples of motion and context, each input by its name, '
                    'to "{a}" and "{b}" through the service'), target_fixture="fusion_replies")
def send_fusion(lab: Lab, n: int, a: str, b: str) -> dict[str, list[tuple[list[np.ndarray], dict[str, Any]]]]:
    from tinymlaas.zoo.fusion import samples

    motion, context, _, _ = samples(n, 7)
    _, info = _fusion_oracle()
    names = [t.name for t in info.inputs]
    replies: dict[str, list[tuple[list[np.ndarray], dict[str, Any]]]] = {}
    for ep in (a, b):
        for m, c in zip(motion, context, strict=True):
            # context first: by name, the order does not matter
            body = {"inputs": [{"name": names[1], "values": c.tolist()},
                               {"name": names[0], "values": m.tolist()}]}
            reply = lab.api.post(f"/devices/{ep}/infer", json=body)
            assert reply.status_code == 200, reply.text
            xs = [quantize(v, t.scale, t.zero_point, np.int8)
                  for v, t in zip((m, c), info.inputs, strict=True)]
            replies.setdefault(ep, []).append((xs, reply.json()))
    return replies


@then("both outputs of every inference are bit-exact with TFLM, on both devices")
def fusion_bit_exact(fusion_replies: dict[str, list[tuple[list[np.ndarray], dict[str, Any]]]]) -> None:
    oracle, info = _fusion_oracle()
    for ep, replies in fusion_replies.items():
        for xs, body in replies:
            assert [t["raw"] for t in body["inputs"]] == [x.ravel().tolist() for x in xs], ep
            want = oracle.invoke_all(xs)
            assert [t["raw"] for t in body["outputs"]] == [w.ravel().tolist() for w in want], ep
            assert [t["name"] for t in body["outputs"]] == [t.name for t in info.outputs]
            for t, spec in zip(body["outputs"], info.outputs, strict=True):
                assert spec.scale is not None and spec.zero_point is not None
                assert t["values"] == pytest.approx([(v - spec.zero_point) * spec.scale for v in t["raw"]])
            assert body["output"] == body["outputs"][0]["raw"]
    mcu = [r for ep, rs in fusion_replies.items() for _, r in rs if r["instructions"] is not None]
    assert mcu and all(r["instructions"] > 100 for r in mcu)  # the MCU counts its instructions


@then(parsers.parse('a request to "{ep}" with only the motion values is refused with a problem naming '
                    'both inputs'))
def fusion_refused(lab: Lab, ep: str) -> None:
    _, info = _fusion_oracle()
    reply = lab.api.post(f"/devices/{ep}/infer", json={"values": [0.0] * 8})
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
    detail = reply.json()["detail"]
    assert "takes 2 input tensors" in detail and all(t.name in detail for t in info.inputs), detail

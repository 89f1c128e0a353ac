"""Fault injection: firmware updates of real x86 device containers that go wrong on purpose,
and whether every device and every record came out right.

A :class:`FaultLab` is a service in its own process (so it can crash for real) with
hello_world firmware 1.0.0 and 2.0.0 built by its local builder, and x86 device
containers managed by it (LwM2M with OSCORE, or HTTP pull with tokens; each image
on trial until it proves itself). :meth:`FaultLab.inject` updates a device to the
version it does not run and injects one fault of :data:`KINDS` on the way; then it
waits until the device has recovered: it answers an inference, runs a confirmed
image (not one on trial), the service lists it online, and the deployment's record
has ended. A device that does not get there in time is *bricked*; a record whose
result disagrees with what the device then runs (succeeded, but the device runs
the old image; or failed, but it runs the new one) is *disagreeing*. Used by
``benchmarks/bench_faults.py`` and the reliability tests.
"""

from __future__ import annotations

import http.client
import io
import json
import random
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx

from tinymlaas.api.server import ServiceProcess
from tinymlaas.config import Settings
from tinymlaas.edge.archive import reproducible_zip
from tinymlaas.errors import DeviceUnreachable, TinyMLaaSError
from tinymlaas.models import DeviceCredentials, JoinInfo
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.services.x86_device import DeviceClient, X86Device
from tinymlaas.signing import Signer
from tinymlaas.store import ArtifactStore
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

VERSIONS = ("1.0.0", "2.0.0")

#: The new image's entry point, made to fail in one way (the rest of the image is the real one).
BAD_MAINS = {
    "crashes late": (  # after its health check, before the boot ROM confirms it
        "import os, sys, threading, time\nfrom pathlib import Path\nfrom tinymlaas.edge.x86 import main\n"
        "marker = Path(sys.argv[sys.argv.index('--image') + 1]).parent / 'fota.json'\n"
        "def crash():\n"
        "    while 'healthy' not in (marker.read_text() if marker.exists() else ''):\n"
        "        time.sleep(0.1)\n"
        "    time.sleep(2.0)\n"
        "    os._exit(3)\n"
        "threading.Thread(target=crash, daemon=True).start()\nsys.exit(main())\n"),
    "hangs": "import time\nwhile True:\n    time.sleep(1)\n",
    "boots without its agent": (
        "import sys\nfrom tinymlaas.edge.x86 import main\n"
        "keep = [a for i, a in enumerate(sys.argv) if i == 0 or sys.argv[i - 1] in ('--image', '--port')"
        " or a in ('--image', '--port')]\nsys.argv = keep\nsys.exit(main())\n"),
}
#: About how long a good update takes here (download, reboot, trial): faults strike within it.
UPDATE_S = 10.0
#: A recovered device stays so this long (an image that keeps crashing is not recovered).
STABLE_S = 8.0
#: Every kind of fault, in the order the benchmark's table lists them.
KINDS = ("power cut", "truncated image", "corrupt image", "unsigned image", *BAD_MAINS, "dropped link",
         "service crash")


@dataclass
class Outcome:
    """One injected fault and how the device and its record came out of it."""

    kind: str
    endpoint: str
    sent: str
    bricked: bool
    disagrees: bool
    recover_s: float
    runs: str | None
    result: str
    reconciled: bool = False
    #: The fault struck this long after the update started (None: it is in the image).
    struck_s: float | None = None
    detail: str = ""
    why: str = ""
    #: Why the fault could not be injected (then the update ran without it), if it could not.
    missed: str = ""


class LabDevice:
    """An x86 device container managed by the lab's service; its flash is a host folder."""

    def __init__(self, endpoint: str, flash: Path, device: X86Device) -> None:
        self.endpoint, self.flash, self.device = endpoint, flash, device
        self.client = DeviceClient(device.port, timeout=3.0)

    def runs(self) -> str | None:
        """The firmware version it runs if it answers an inference on a confirmed image."""
        try:
            marker = json.loads((self.flash / "fota.json").read_text())
        except (OSError, ValueError):
            marker = {}
        try:
            version = str(self.client.info()["version"])
            self.client.infer([1.0])
        except (TinyMLaaSError, KeyError, ValueError, OSError, http.client.HTTPException):
            return None  # down, booting, or cut off in the middle of its answer
        return None if marker.get("state") in ("trial", "healthy") else version

    def power_cut(self) -> None:
        self.device.container.kill()

    def power_on(self) -> None:
        self.device.container.start()

    def close(self) -> None:
        self.device.close()


class FaultLab:
    """A service that can be crashed, its two firmware builds and its devices (``with`` closes all)."""

    def __init__(self, work: Path, *, orchestrator: str = "lwm2m", database_url: str | None = None,
                 trial_s: float = 20.0, soak_s: float = 8.0, seed: int = 0, poll_wait_s: float = 5.0) -> None:
        """``poll_wait_s``: how long the service holds an HTTP pull device's poll (a new image is
        healthy only once its first poll after the reboot is answered)."""
        self.work, self.trial_s, self.soak_s = work, trial_s, soak_s
        self.random = random.Random(seed)
        self.settings = Settings()
        env = {"TINYMLAAS_LWM2M__SECURITY": "oscore", "TINYMLAAS_LWM2M__ACK_TIMEOUT_S": "1.0",
               "TINYMLAAS_LWM2M__UPDATE_TIMEOUT_S": "60", "TINYMLAAS_LWM2M__DOWNLOAD_TIMEOUT_S": "60",
               "TINYMLAAS_HTTP_PULL__SECURITY": "token", "TINYMLAAS_HTTP_PULL__UPDATE_TIMEOUT_S": "60",
               "TINYMLAAS_HTTP_PULL__OFFLINE_AFTER_S": "15",
               "TINYMLAAS_HTTP_PULL__POLL_WAIT_S": str(poll_wait_s)}
        self.service = ServiceProcess(work / "service", orchestrator=orchestrator, database_url=database_url,
                                      env=env)
        self.devices: dict[str, LabDevice] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._struck: dict[str, float] = {}
        #: Devices a fault could not be injected into, and why (their outcome says so).
        self._missed: dict[str, str] = {}

    def __enter__(self) -> FaultLab:
        self.service.start()
        self.api = self.service.client()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for dev in self.devices.values():
            dev.close()
        self.service.stop()

    # -- set-up ---------------------------------------------------------------------------------
    def _build(self) -> None:
        model = get_recipe("hello_world").load(self.settings.zoo_dir)
        r = self.api.post("/models", files={"file": ("hello_world.tflite", model)},
                          data={"name": "hello_world"})
        r.raise_for_status()
        jobs = {}
        for version in VERSIONS:
            r = self.api.post("/builds", json={"model": "hello_world", "target": "x86-tflm",
                                                "builder": "local", "version": version})
            r.raise_for_status()
            jobs[version] = r.json()
        for version, reply in jobs.items():
            self._wait_job(reply["job"]["id"], 300)
            self.builds[version] = self.api.get(f"/builds/{reply['build']['id']}").json()

    def _wait_job(self, job_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.api.get(f"/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                if job["state"] != "succeeded" and job["kind"] == "build":
                    raise TinyMLaaSError(f"the build failed: {job['error']}")
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} did not end within {timeout_s:.0f} s")

    def image(self, version: str) -> bytes:
        return self.api.get(f"/artifacts/{self.builds[version]['firmware']['image_sha256']}").content

    def add_device(self, endpoint: str) -> LabDevice:
        """A device with credentials, booted on firmware 1.0.0, online in the service."""
        flash = self.work / endpoint / "flash"
        flash.mkdir(parents=True)
        (flash / "firmware.pyz").write_bytes(self.image(VERSIONS[0]))
        material = self.api.post(f"/devices/{endpoint}/credentials", json={"replace": True})
        material.raise_for_status()
        join = JoinInfo.model_validate(self.api.get("/orchestrator").json())
        attach = orchestrator_plugin(join.plugin).attach(
            join, api_url=self.service.url, endpoint=endpoint, folder=self.work / endpoint,
            credentials=DeviceCredentials.model_validate(material.json()))
        board = get_board(self.settings.targets_dir, "x86-tflm")
        dev = LabDevice(endpoint, flash, X86Device(board, flash, attach=attach, trial_s=self.trial_s,
                                                   soak_s=self.soak_s))
        with self._lock:
            self.devices[endpoint] = dev
        _until(lambda: self._online(endpoint), 60, f"{endpoint} joining")
        return dev

    def _online(self, endpoint: str) -> bool:
        try:
            r = self.api.get(f"/devices/{endpoint}")
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and bool(r.json()["device"]["online"])

    # -- faults ------------------------------------------------------------------------------------
    def _package(self, kind: str, version: str) -> dict[str, str]:
        """What the deployment sends for this kind of fault: the build, or a bad artifact."""
        if kind not in ("truncated image", "corrupt image", "unsigned image", *BAD_MAINS):
            return {"build": self.builds[version]["id"]}
        raw = self.image(version)
        signer = Signer.load_or_create(self.service.data_dir)  # the service's own key
        data = bytearray(raw if kind == "unsigned image" else
                         signer.sign(_rezip(raw, BAD_MAINS[kind]) if kind in BAD_MAINS else raw))
        if kind == "truncated image":
            del data[len(data) * 2 // 3:]
        elif kind == "corrupt image":
            data[len(data) // 2] ^= 0x5A
        return {"artifact": ArtifactStore(self.service.data_dir / "artifacts").put_bytes(bytes(data))}

    def inject(self, kind: str, endpoints: list[str], timeout_s: float = 150.0) -> list[Outcome]:
        """Update each device to the version it does not run, with ``kind`` going wrong on the way
        (a service crash: once, for all of them); wait for each to recover."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; faults: {', '.join(KINDS)}")
        started = time.monotonic()
        sent: dict[str, str] = {}
        deployments: dict[str, str] = {}
        results: list[Outcome] = []
        for ep in endpoints:
            try:
                sent[ep] = self.other_version(ep)
                deployments[ep] = self.deploy(ep, sent[ep], kind)
            except (DeviceUnreachable, httpx.HTTPError) as exc:  # it was not fit to start with
                results.append(Outcome(kind, ep, sent.get(ep, ""), True, False, 0.0, None, "",
                                       why=f"the update could not start: {exc}"))
        endpoints = list(deployments)
        self._struck, self._missed = {}, {}
        if kind == "service crash":
            at = self.random.uniform(0.5, UPDATE_S)
            time.sleep(max(at - (time.monotonic() - started), 0))
            self._struck = dict.fromkeys(endpoints, at)
            self.crash_service(down_s=self.random.uniform(0.5, 3.0))
        elif kind in ("power cut", "dropped link"):
            self._struck = {ep: self.random.uniform(0.5, UPDATE_S) for ep in endpoints}
            threads = [threading.Thread(target=self._cut if kind == "power cut" else self._drop,
                                        args=(self.devices[ep], started + self._struck[ep]))
                       for ep in endpoints]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        threads = [threading.Thread(target=lambda ep=ep: results.append(
            self.recovered(kind, ep, sent[ep], deployments[ep], started, timeout_s))) for ep in endpoints]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(results, key=lambda o: o.endpoint)

    def other_version(self, endpoint: str, timeout_s: float = 30.0) -> str:
        """The version the device does not run (what an update sends it)."""
        deadline = time.monotonic() + timeout_s
        while (runs := self.devices[endpoint].runs()) is None:
            if time.monotonic() > deadline:
                raise DeviceUnreachable(f"{endpoint} does not answer on a confirmed image")
            time.sleep(0.5)
        return VERSIONS[1] if runs == VERSIONS[0] else VERSIONS[0]

    def deploy(self, endpoint: str, version: str, kind: str = "") -> str:
        """Start updating ``endpoint`` to ``version`` (made bad as ``kind`` says); the deployment's id."""
        r = self.api.post(f"/devices/{endpoint}/firmware", json=self._package(kind, version))
        r.raise_for_status()
        return str(r.json()["deployment"]["id"])

    def crash_service(self, down_s: float = 1.0) -> None:
        """The service dies at once, whatever it was doing, and starts again ``down_s`` later."""
        self.service.kill()
        time.sleep(down_s)
        self.service.start()

    @staticmethod
    def _cut(dev: LabDevice, at: float) -> None:
        time.sleep(max(at - time.monotonic(), 0))
        dev.power_cut()
        time.sleep(1.0)
        dev.power_on()

    def _drop(self, dev: LabDevice, at: float) -> None:
        time.sleep(max(at - time.monotonic(), 0))
        for attempt in range(5):  # the engine's freezer can refuse while the device reboots
            try:
                dev.device.container.pause()
                break
            except docker.errors.APIError as exc:
                if attempt == 4:
                    self._missed[dev.endpoint] = f"the link could not be dropped: {exc.explanation}"
                    return
                time.sleep(0.3)
        time.sleep(10.0)
        dev.device.container.unpause()

    def recovered(self, kind: str, ep: str, sent: str, dep_id: str, started: float,
                   timeout_s: float) -> Outcome:
        """Wait until the device runs a confirmed image, is online and its record has ended and
        agrees with it; say which of those did not happen in time."""
        dev, deadline = self.devices[ep], started + timeout_s
        runs: str | None = None
        record: dict[str, Any] = {}
        since: float | None = None  # when it first looked recovered: it must stay so a while
        while time.monotonic() < deadline:
            runs = dev.runs()
            try:
                record = self.api.get(f"/deployments/{dep_id}").json()
            except httpx.HTTPError:  # the service is starting again
                record = {}
            ended = record.get("succeeded") is not None
            if runs is not None and ended and self._online(ep) and record["succeeded"] == (runs == sent):
                since = since or time.monotonic()
                if time.monotonic() - since >= STABLE_S:
                    return Outcome(kind, ep, sent, False, False, since - started, runs,
                                   str(record.get("result", "")), bool(record.get("reconciled")),
                                   self._struck.get(ep), str(record.get("detail", "")),
                                   missed=self._missed.get(ep, ""))
            else:
                since = None
            time.sleep(0.5)
        bricked = runs is None or not self._online(ep)
        agrees = (record.get("succeeded") is not None and runs is not None
                  and record["succeeded"] == (runs == sent))
        why = ("it does not answer on a confirmed image" if runs is None else
               "the service does not list it online" if bricked else
               f"the record says succeeded={record.get('succeeded')} but it runs {runs}")
        why += (f"; record: {record.get('result')}: {record.get('detail')}; "
                f"device log: {dev.device.logs()[-1500:]}")
        return Outcome(kind, ep, sent, bricked, not agrees, time.monotonic() - started, runs,
                       str(record.get("result", "")), bool(record.get("reconciled")), self._struck.get(ep),
                       str(record.get("detail", "")), why, self._missed.get(ep, ""))


def _rezip(image: bytes, main: str) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(image))
    members = {n: src.read(n) for n in src.namelist()}
    members["__main__.py"] = main.encode()
    return reproducible_zip(members)


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise DeviceUnreachable(f"{what} did not happen within {timeout_s:.0f} s")

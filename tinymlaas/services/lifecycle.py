"""The CTO's automated dry-run of the whole lifecycle, over the real service.

A private service (API + its orchestrator: LwM2M with OSCORE, or HTTP pull with
tokens; its own database file) is started; it trains and registers hello_world,
builds two firmware versions and a retrained model per board; each board's device
(an x86 container, or the bridge in front of an emulated MCU) gets credentials,
boots v1 and joins; then: capabilities are read, seven inferences go through the
orchestrator and are compared byte for byte with TFLM, the firmware is updated
over the air (FOTA), inferences are checked again, and the retrained model is
deployed (SOTA, or FOTA where the device cannot swap models live).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.errors import DeviceUnreachable, TinyMLaaSError
from tinymlaas.models import Board, DeviceAttach, DeviceCredentials, JoinInfo
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.services.mcu_device import BridgeProcess
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

RETRAINED_SEED = 2
#: (firmware version, model) built for every board: v1, its update, the retrained model.
PLAN = (("1.0.0", "hello_world:1"), ("1.1.0", "hello_world:1"), ("1.2.0", "hello_world:2"))


@dataclass
class Check:
    step: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class BoardRun:
    board: str
    endpoint: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


class _Api:
    """The service's REST API, failing loudly with the service's own message."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            detail = r.json().get("detail", r.text) if r.headers.get("content-type", "").endswith(
                "json") else r.text
            raise TinyMLaaSError(f"{method} {path}: {r.status_code} {detail}")
        return r.json() if r.content else None

    def job(self, job_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.call("GET", f"/jobs/{job_id}")
            if job["state"] == "failed":
                raise TinyMLaaSError(f"job {job['kind']} failed: {job['error']}")
            if job["state"] == "succeeded":
                return dict(job)
            time.sleep(0.2)
        raise TinyMLaaSError(f"job {job_id} did not finish within {timeout:.0f} s")

    def online(self, endpoint: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(d["endpoint"] == endpoint and d["online"] for d in self.call("GET", "/devices")):
                return
            time.sleep(0.2)
        raise DeviceUnreachable(f"device '{endpoint}' did not register within {timeout:.0f} s")


@contextlib.contextmanager
def _device(board: Board, attach: DeviceAttach, flash: Path,
            targets_dir: Path) -> Iterator[None]:
    """Boot the board's device on ``flash``, joining the service; stop it afterwards."""
    if board.device is not None:  # a container board: the device image boots /flash
        with X86Device(board, flash, attach=attach):
            yield
    else:  # an MCU: the bridge (the gateway) runs it in its emulator
        with BridgeProcess(board, flash, attach, flash.parent / "bridge.log", targets_dir=targets_dir):
            yield


def _seven(api: _Api, endpoint: str, model: bytes) -> tuple[bool, str]:
    """x = 0..6 through the orchestrator; the device's int8 outputs against TFLM's."""
    oracle = Tflm(model)
    q = oracle.input["quantization_parameters"]
    got, want, instructions = [], [], []
    for x in range(7):
        tensor = quantize(np.array([[float(x)]]), q["scales"][0], q["zero_points"][0], np.int8)
        report = api.call("POST", f"/devices/{endpoint}/infer", json={"input": tensor.ravel().tolist()})
        got.append(report["output"])
        want.append(oracle.invoke(tensor).ravel().tolist())
        if report.get("instructions"):
            instructions.append(report["instructions"])
    detail = f"outputs {[g[0] for g in got]}"
    if instructions:
        detail += f", {min(instructions):,}-{max(instructions):,} instructions"
    return got == want, detail + ("" if got == want else f"; TFLM says {[w[0] for w in want]}")


def dry_run(settings: Settings, work: Path, boards: list[str], progress: Progress = no_progress, *,
            orchestrator: str = "lwm2m",
            on_check: Callable[[list[BoardRun]], None] | None = None) -> list[BoardRun]:
    """Run the lifecycle on each board; every step is recorded, the first failure ends a board.
    ``on_check`` sees the runs so far after every step (a service job shows them as they come)."""
    targets = [get_board(settings.targets_dir, b) for b in boards]
    service_settings = settings.model_copy(update={
        "data_dir": work / "service", "database_url": None, "orchestrator": orchestrator,
        "lwm2m": settings.lwm2m.model_copy(update={"port": 0, "security": "oscore"}),
        "http_pull": settings.http_pull.model_copy(update={"security": "token"}),
    })
    runs: list[BoardRun] = []

    def checked() -> None:
        if on_check is not None:
            on_check(runs)

    with BackgroundServer(service_settings) as server:
        api = _Api(server.client(timeout=120))
        join = _Joiner(server.url, JoinInfo.model_validate(api.call("GET", "/orchestrator")), work)
        progress("training and registering hello_world (v1 and a retrained v2)", 0.02)
        api.job(api.call("POST", "/models/train", json={"recipe": "hello_world"})["id"])
        api.job(api.call("POST", "/models/train",
                         json={"recipe": "hello_world", "seed": RETRAINED_SEED})["id"])
        progress("building firmware 1.0.0, 1.1.0 and the retrained model per board", 0.1)
        requests = {(b.name, version): api.call("POST", "/builds", json={
                        "model": model, "target": b.name, "version": version})
                    for b in targets for version, model in PLAN}
        builds = {}
        for i, (key, reply) in enumerate(requests.items()):
            api.job(reply["job"]["id"])
            builds[key] = api.call("GET", f"/builds/{reply['build']['id']}")
            progress(f"built {key[0]} {key[1]}", 0.1 + 0.3 * (i + 1) / len(requests))
        zoo = get_recipe("hello_world")
        v1_model = zoo.load(settings.zoo_dir)
        v2_model = zoo.load(settings.zoo_dir, RETRAINED_SEED)
        for n, board in enumerate(targets):
            run = BoardRun(board.name, f"dry-run-{board.name}")
            runs.append(run)
            checked()
            share = 0.4 + 0.6 * n / len(targets)
            progress(f"{board.name}: boot, register, infer, FOTA, SOTA", share)
            with contextlib.suppress(_Stop):
                _board_lifecycle(api, join, board, run, builds, work, v1_model, v2_model,
                                 settings.targets_dir, checked)
        api.http.close()
    progress("done", 1.0)
    return runs


class _Stop(Exception):
    """A step failed (and is recorded): the board's run ends there."""


def _timed(run: BoardRun, step: str, fn: Any, checked: Callable[[], None]) -> None:
    t0 = time.monotonic()
    try:
        ok, detail = fn()
    except TinyMLaaSError as exc:
        ok, detail = False, exc.message
    run.checks.append(Check(step, ok, detail, time.monotonic() - t0))
    checked()
    if not ok:
        raise _Stop(step)


@dataclass
class _Joiner:
    """How a device joins this service: its orchestrator's plugin, address and security."""

    api_url: str
    info: JoinInfo
    work: Path

    def attach(self, endpoint: str, credentials: dict[str, Any]) -> DeviceAttach:
        plugin = orchestrator_plugin(self.info.plugin)
        folder = self.work / endpoint
        folder.mkdir(parents=True, exist_ok=True)
        return plugin.attach(self.info, api_url=self.api_url, endpoint=endpoint,
                             credentials=DeviceCredentials.model_validate(credentials), folder=folder)


def _board_lifecycle(api: _Api, join: _Joiner, board: Board, run: BoardRun,
                     builds: dict[tuple[str, str], dict[str, Any]], work: Path,
                     v1_model: bytes, v2_model: bytes, targets_dir: Path,
                     checked: Callable[[], None]) -> None:
    ep = run.endpoint
    v1, v2, retrained = (builds[(board.name, version)] for version, _ in PLAN)
    flash = work / ep / "flash"
    flash.mkdir(parents=True)
    for name, sha in v1["firmware"]["artifacts"].items():  # "flash" v1 at the factory
        (flash / name).write_bytes(api.http.get(f"/artifacts/{sha}").content)
    material = api.call("POST", f"/devices/{ep}/credentials", json={"replace": True})
    attach = join.attach(ep, material)
    with _device(board, attach, flash, targets_dir):
        def register() -> tuple[bool, str]:
            api.online(ep)
            return True, attach.how

        def capabilities() -> tuple[bool, str]:
            c = api.call("GET", f"/devices/{ep}")["capabilities"]
            ok = (c["firmware_version"] == v1["firmware"]["version"]
                  and c["model_sha256"] == v1["firmware"]["model_sha256"])
            return ok, (f"{c['cpu']}, {c['ram_bytes']:,} B RAM, {c['flash_bytes']:,} B flash, "
                        f"firmware {c['firmware_version']}, runtime {c['runtime']}")

        def deploy(kind: str, build: dict[str, Any]) -> tuple[bool, str]:
            reply = api.call("POST", f"/devices/{ep}/{kind}", json={"build": build["id"]})
            api.job(reply["job"]["id"])
            dep = api.call("GET", f"/deployments/{reply['deployment']['id']}")
            if dep["fell_back_to_firmware"] or kind == "firmware":
                how = "by FOTA: the device cannot swap models live" if kind == "model" else "FOTA"
                change = f"firmware {dep['firmware_before']} -> {dep['firmware_after']}"
            else:
                how, change = "swapped live", f"model now {(dep['model_sha256'] or '?')[:12]}"
            return bool(dep["succeeded"]), f"{dep['result']} ({how}); {change}"

        _timed(run, f"boot {v1['firmware']['version']} and join", register, checked)
        _timed(run, "read capabilities", capabilities, checked)
        _timed(run, "7 inferences, bit-exact vs TFLM", lambda: _seven(api, ep, v1_model), checked)
        _timed(run, f"FOTA to {v2['firmware']['version']}", lambda: deploy("firmware", v2), checked)
        _timed(run, "7 inferences after FOTA", lambda: _seven(api, ep, v1_model), checked)
        _timed(run, "SOTA: the retrained model", lambda: deploy("model", retrained), checked)
        _timed(run, "7 inferences on the new model", lambda: _seven(api, ep, v2_model), checked)

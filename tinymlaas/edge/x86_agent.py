"""The x86 device's management agent: its flash, its model slot and its inference runtime,
served over LwM2M (``--lwm2m``) or the plain HTTP pull protocol (``--ota``).

Flash is the folder holding ``firmware.pyz`` (mounted read-write at ``/flash``):

* FOTA writes the new image there (the old one becomes ``firmware.pyz.prev``
  for the boot ROM's rollback), leaves ``fota.json`` saying which image it
  expects to come up, and exits with 75 so the boot ROM reboots into it. The
  next boot reads ``fota.json`` and reports Update Result 1 (the expected image
  runs) or 8 (the boot ROM rolled back).
* SOTA keeps an activated inference module in ``module/`` and serves it, also
  after a reboot, until a FOTA brings a new firmware.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from tinymlaas.edge.archive import sha256_file
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, SoftwareManagement, TinyMLObject
from tinymlaas.edge.lwm2m.client import LwM2MClient, client_security
from tinymlaas.edge.lwm2m.vocab import Dev, FwResult, Tiny
from tinymlaas.edge.package import unpack
from tinymlaas.edge.signing import read_trust, unwrap
from tinymlaas.edge.x86 import FirmwareImage, Model, Runtime

log = logging.getLogger("tinymlaas.device")


def _soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """Run ``fn(*args)`` on the agent's loop (the HTTP server calls from its threads)."""
    loop.call_soon_threadsafe(fn, *args)
REBOOT = 75
MARKER = "fota.json"


class Flash:
    """The board's flash budget and what is on it."""

    def __init__(self, image: Path, manifest: dict[str, Any]) -> None:
        self.dir = image.parent
        self.image = image
        board = manifest.get("board_info", {})
        self.flash_bytes = int(board.get("flash_bytes", 16 * 1024 * 1024))
        self.ram_bytes = int(board.get("ram_bytes", 64 * 1024 * 1024))
        self.board = board

    @property
    def used(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file() and ".part" not in p.name)

    @property
    def free_kb(self) -> int:
        return max(self.flash_bytes - self.used, 0) // 1024

    @property
    def total_kb(self) -> int:
        return self.flash_bytes // 1024


class X86Firmware:
    """Object 5 backend: flash the OS image and ask the boot ROM to reboot."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.max_bytes = agent.flash.flash_bytes

    def check(self, image: Path) -> tuple[str, str]:
        unwrap(image, self.agent.trust)
        try:
            fw = FirmwareImage.open(image)
        except Exception as exc:  # any unreadable zip is simply not our firmware
            raise ValueError(f"not an x86 OS image: {exc}") from exc
        board = fw.manifest.get("board")
        if board != self.agent.board:
            raise ValueError(f"image is for board {board!r}, this is {self.agent.board!r}")
        if hashlib.sha256(fw.model).hexdigest() != fw.manifest.get("model_sha256"):
            raise ValueError("the image's model does not match its manifest")
        return f"{board} firmware", str(fw.manifest.get("version", ""))

    async def install(self, image: Path) -> None:
        current = self.agent.flash.image
        marker = {"from_sha256": sha256_file(current), "to_sha256": sha256_file(image), "state": "trial"}
        shutil.copy2(current, current.with_name(current.name + ".prev"))
        # The marker first: a power cut before the image is in place leaves the old image with a
        # trial it cannot pass (its hash differs), so the boot ROM runs the old one and it says so.
        (current.parent / MARKER).write_text(json.dumps(marker))  # the boot ROM watches the trial
        os.replace(image, current)
        shutil.rmtree(self.agent.modules.root, ignore_errors=True)  # the new firmware brings its model
        log.info("firmware written; rebooting into it")
        self.agent.reboot()
        await asyncio.Event().wait()  # the reboot ends this process; the next boot reports


class X86Modules:
    """Object 9 backend: load a new model next to the running one, swap when activated."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.root = agent.flash.dir / "module"
        self.max_bytes = agent.flash.flash_bytes
        self.pending: Model | None = None
        self.firmware_model = agent.runtime.model

    def check(self, package: Path) -> tuple[str, str]:
        unwrap(package, self.agent.trust)
        manifest, model = unpack(package)
        if hashlib.sha256(model).hexdigest() != manifest.get("model_sha256"):
            raise ValueError("the package's payload is not the module's .tflite model")
        want = self.agent.module_kind
        if want and manifest.get("kind") != want:
            raise ValueError(f"module kind {manifest.get('kind')!r} does not run here (needs {want!r})")
        if manifest.get("target") not in (None, self.agent.board):
            raise ValueError(f"module is for {manifest.get('target')!r}, this is {self.agent.board!r}")
        return str(manifest.get("name", "model")), str(manifest["model_sha256"])[:12]

    @staticmethod
    def _load(manifest: dict[str, Any], model: bytes) -> Model:
        spec = {"model_sha256": manifest["model_sha256"], "name": manifest.get("name", ""),
                "arena_bytes": int(manifest.get("memory", {}).get("arena_bytes") or 0) or 16384,
                "inputs": manifest["inputs"], "outputs": manifest["outputs"]}
        loaded = Model.load(model, spec)
        import numpy as np

        loaded.tflm.invoke_all([np.zeros(s["shape"], dtype=s["dtype"]) for s in loaded.inputs])
        return loaded

    async def install(self, package: Path) -> None:
        manifest, model = unpack(package)
        self.pending = await asyncio.to_thread(self._load, manifest, model)
        staged = self.root / "staged"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        (staged / "manifest.json").write_text(json.dumps(manifest))
        (staged / "model.tflite").write_bytes(model)

    async def activate(self) -> None:
        if self.pending is None:
            raise RuntimeError("no module is installed")
        self.agent.runtime.swap(self.pending)
        active = self.root / "active"
        shutil.rmtree(active, ignore_errors=True)
        if (self.root / "staged").exists():
            os.replace(self.root / "staged", active)
        self.agent.model_changed()
        log.info("inference module %s active", self.pending.sha256[:12])

    async def deactivate(self) -> None:
        self.agent.runtime.swap(self.firmware_model)
        shutil.rmtree(self.root / "active", ignore_errors=True)
        self.agent.model_changed()

    async def uninstall(self) -> None:
        await self.deactivate()
        self.pending = None
        shutil.rmtree(self.root, ignore_errors=True)

    def restore(self) -> tuple[str, str]:
        """After a boot: serve the module activated before it, if any."""
        active = self.root / "active"
        if not (active / "manifest.json").is_file():
            return "", ""
        manifest = json.loads((active / "manifest.json").read_text())
        self.pending = self._load(manifest, (active / "model.tflite").read_bytes())
        self.agent.runtime.swap(self.pending)
        return str(manifest.get("name", "model")), str(manifest["model_sha256"])[:12]


class X86Inference:
    """Object 33100 backend over the in-process TFLM runtime."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        try:  # read once: capabilities are asked for on every poll or object refresh
            self.runtime_version = metadata.version("tflite-micro")
        except metadata.PackageNotFoundError:
            self.runtime_version = "unknown"

    def capabilities(self) -> dict[int, Any]:
        rt, flash = self.agent.runtime, self.agent.flash
        accel = flash.board.get("accelerators") or []
        return {
            Tiny.RAM: flash.ram_bytes, Tiny.FLASH: flash.flash_bytes,
            Tiny.CPU: str(flash.board.get("cpu", "x86-64")), Tiny.CLOCK: int(flash.board.get("clock_hz", 0)),
            Tiny.ACCELERATORS: dict(enumerate(accel)), Tiny.RUNTIME: f"tflite-micro {self.runtime_version}",
            Tiny.MODEL_SHA256: rt.model.sha256, Tiny.MODEL_NAME: rt.model.name,
            Tiny.ARENA: rt.model.arena_bytes, Tiny.BOARD: self.agent.board,
            Tiny.TENSORS: json.dumps({"inputs": rt.model.inputs, "outputs": rt.model.outputs}),
        }

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        out, latency = await asyncio.to_thread(self.agent.runtime.infer_bytes, tensor)
        return out, latency, None


async def _announce(connected: asyncio.Event, line: Callable[[], str]) -> None:
    """Print ``line()`` each time the agent (re)connects: the device log's milestones."""
    while True:
        await connected.wait()
        print(line(), flush=True)
        while connected.is_set():
            await asyncio.sleep(0.5)


class Agent:
    """Builds the backends and runs a protocol's client until SIGTERM (exit 0) or a FOTA (exit 75)."""

    def __init__(self, runtime: Runtime, args: argparse.Namespace) -> None:
        self.runtime = runtime
        self.args = args
        manifest = runtime.image.manifest
        self.board = str(manifest["board"])
        self.version = str(manifest["version"])
        self.module_kind = str(manifest.get("module", {}).get("kind", ""))
        self.endpoint = args.endpoint or socket.gethostname()
        self.flash = Flash(args.image, manifest)
        #: The service's public key: updates not signed with its key are refused.
        self.trust = read_trust(args.trust) if args.trust else None
        self.exit_code = 0
        self._stop: asyncio.Event | None = None
        self.modules = X86Modules(self)
        #: What to tell the protocol when the model changed (LwM2M re-reads its TinyML object).
        self.model_changed: Callable[[], None] = lambda: None

    def reboot(self) -> None:
        self.exit_code = REBOOT
        if self._stop is not None:
            self._stop.set()

    def _boot_state(self) -> tuple[FwResult | None, str]:
        """How the last firmware update ended, as the boot ROM left it: None while this image
        is on trial (it must confirm itself first), with the reason when it failed."""
        path = self.flash.dir / MARKER
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            return FwResult.initial, ""
        state, installed = marker.get("state"), marker.get("to_sha256") == sha256_file(self.flash.image)
        if state in ("trial", "healthy") and installed:
            return None, ""
        path.unlink(missing_ok=True)
        if state == "confirmed" and installed:  # confirmed, but not yet reported before a restart
            return FwResult.success, ""
        reason = str(marker.get("reason") or "the new image was not written completely")
        log.info("firmware update failed: %s", reason)
        return FwResult.update_failed, reason

    async def _confirm(self, joined: asyncio.Event, report: Callable[[FwResult], None]) -> None:
        """An image on trial shows it is healthy once it is back with its service and answers a
        test inference; the boot ROM confirms it after a while (then the update is done), or
        puts the previous image back if it stops first."""
        await joined.wait()
        try:
            await asyncio.to_thread(self.runtime.self_test)
        except Exception as exc:
            log.error("the new image fails its test inference (%s); stopping for the rollback", exc)
            self.exit_code = 1
            assert self._stop is not None
            self._stop.set()
            return
        path = self.flash.dir / MARKER
        path.write_text(json.dumps({**json.loads(path.read_text()), "state": "healthy"}))
        log.info("the new image is healthy; waiting for the boot ROM to confirm it")
        while json.loads(path.read_text()).get("state") != "confirmed":
            await asyncio.sleep(0.2)
        path.unlink()
        log.info("firmware update succeeded: the new image is confirmed")
        report(FwResult.success)

    def run(self) -> int:
        logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                            format="%(name)s: %(message)s")
        logging.getLogger("coap-server").setLevel(logging.WARNING)
        return asyncio.run(self._main())

    def device_values(self) -> dict[int, Any]:
        """The Device object's resources (3/0/x): both protocols report them."""
        return {Dev.MANUFACTURER: "TinyMLaaS", Dev.MODEL: self.board, Dev.SERIAL: self.endpoint,
                Dev.FIRMWARE_VERSION: self.version, Dev.MEMORY_FREE: self.flash.free_kb,
                Dev.DEVICE_TYPE: "x86-64 container", Dev.HARDWARE_VERSION: "x86-64",
                Dev.SOFTWARE_VERSION: self.runtime.model.sha256[:12], Dev.MEMORY_TOTAL: self.flash.total_kb}

    async def _main(self) -> int:
        for part in self.flash.dir.rglob("*.part"):  # a download a power cut left half-done
            part.unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        name, version = await asyncio.to_thread(self.modules.restore)
        if self.args.ota:
            await self._pull(loop)
        else:
            await self._lwm2m(loop, name, version)
        return self.exit_code

    async def _pull(self, loop: asyncio.AbstractEventLoop) -> None:
        from tinymlaas.edge.pull import PullAgent

        token = self.args.token_file.read_text().strip() if self.args.token_file else None
        boot, why = self._boot_state()
        agent = PullAgent(self.args.ota, self.endpoint, device=self.device_values, firmware=X86Firmware(self),
                          modules=self.modules, inference=X86Inference(self), workdir=self.flash.dir,
                          token=token, boot_result=boot, boot_detail=why, wait_s=self.args.ota_wait)
        if boot is None:
            loop.create_task(self._confirm(agent.connected, agent.report_boot))
        self.runtime.listeners.append(
            lambda i, o, lat: _soon(loop, agent.record, i, o, lat, None))
        announcer = loop.create_task(
            _announce(agent.connected, lambda: f"OTA POLLING endpoint={self.endpoint}"))
        assert self._stop is not None
        await agent.run(self._stop)
        announcer.cancel()

    async def _lwm2m(self, loop: asyncio.AbstractEventLoop, name: str, version: str) -> None:
        tinyml = TinyMLObject(X86Inference(self), hybrid_state=self.flash.dir / "hybrid.json")
        self.model_changed = tinyml.refresh
        self.runtime.listeners.append(
            lambda i, o, lat: _soon(loop, tinyml.record, i, o, lat, None))
        work = self.flash.dir / "download"
        device = DeviceObject(self.device_values(), reboot=self.reboot)
        boot, _ = self._boot_state()
        fw = FirmwareUpdate(X86Firmware(self), work, result=FwResult.initial if boot is None else boot)
        sw = SoftwareManagement(self.modules, work, name=name, version=version)
        client = LwM2MClient(self.endpoint, self.args.lwm2m, [device, fw, sw, tinyml],
                             lifetime=self.args.lifetime, **client_security(self.args.oscore, self.args.psk))
        await client.start()
        announcer = loop.create_task(_announce(
            client.registered, lambda: f"LWM2M REGISTERED endpoint={self.endpoint} port={client.port}"))
        if boot is None:
            loop.create_task(self._confirm(client.registered, fw.report))
        assert self._stop is not None
        await self._stop.wait()
        announcer.cancel()
        # A reboot is not a goodbye: the new firmware registers again.
        await client.stop(deregister=self.exit_code != REBOOT)

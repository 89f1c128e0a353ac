"""The bridge: an LwM2M (or HTTP pull) client standing in for MCUs that speak neither.

The design's "Raspberry Pi as LwM2M client with a flasher to the microcontroller":
this process registers with the service on each MCU's behalf, flashes one by
running the *flasher* command on the new image (FOTA), and forwards inferences
over the MCU's framed UART, which the flasher connects to its stdin/stdout. SOTA
writes only the model region (``MODEL_WRITE``) when the running firmware was built
with a writable one (``--model-update``) for the same model graph; otherwise it
says so (Update Result 54) and the service falls back to FOTA.

One board, on its endpoint::

    python -m tinymlaas.edge.bridge --board-file board.toml --flash DIR \\
        --flasher "tinymlaas emulate --target lm3s6965evb {image}" \\
        --lwm2m coap://127.0.0.1:5683 --endpoint mcu-1 [--oscore DIR | --psk FILE]
    python -m tinymlaas.edge.bridge ... --ota http://127.0.0.1:8000 --endpoint mcu-1 [--token-file FILE]

Several boards, each on its own endpoint, and the bridge on its own (``--endpoint``)
listing them and their health (the Bridged Board object, 33101)::

    python -m tinymlaas.edge.bridge --endpoint bridge-1 --lwm2m coap://... [--oscore DIR | --psk FILE] \\
        --flasher "tinymlaas emulate --target {board} {image}" \\
        --mcu mcu-1,lm3s.toml,flash1[,CREDENTIALS] --mcu mcu-2,lm3s.toml,flash2[,CREDENTIALS]

``DIR`` is the MCU's flash as the bridge keeps it: the firmware folder a
builder wrote (``manifest.json`` + the ELF it names). ``board.toml`` is the
board's description (``targets/<board>/board.toml``): the bridge reports its
RAM, flash, CPU and clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinymlaas.edge.errors import DeviceUnreachable, InvalidInput, TinyMLaaSError
from tinymlaas.edge.link import ProcessLink, flasher_command
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, SoftwareManagement, TinyMLObject
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient, client_security
from tinymlaas.edge.lwm2m.vocab import Bridged, Dev, Obj, Tiny
from tinymlaas.edge.package import unpack
from tinymlaas.edge.signing import read_trust, unwrap
from tinymlaas.edge.tensors import named
from tinymlaas.edge.uart import Banner, UartClient

log = logging.getLogger("tinymlaas.bridge")
_ELF_MAGIC = b"\x7fELF"
#: In the flash folder while a new image is on trial.
TRIAL_MARKER = "fota.json"
_EM_ARM = 40


@dataclass(frozen=True)
class BoardFacts:
    """What the bridge reports about its MCU's board (from its ``board.toml``)."""

    name: str
    cpu: str
    ram_bytes: int
    flash_bytes: int
    clock_hz: int = 0
    accelerators: tuple[str, ...] = ()

    @classmethod
    def read(cls, path: Path) -> BoardFacts:
        try:
            d = tomllib.loads(path.read_text())
            return cls(name=str(d["name"]), cpu=str(d["cpu"]), ram_bytes=int(d["ram_bytes"]),
                       flash_bytes=int(d["flash_bytes"]), clock_hz=int(d.get("clock_hz", 0)),
                       accelerators=tuple(d.get("accelerators", ())))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot read the board description {path}: {exc}") from exc


class Mcu:
    """The MCU behind its flasher, and its flash folder; one UART conversation at a time.

    A new image is on trial (``fota.json`` in the flash folder says so): it is confirmed
    once it has printed its banner and answered a health inference, all within
    ``trial_s``; if it crashes, hangs or stays silent, the previous image is flashed back.
    A bridge that stopped during a trial finds the marker at its next start and does the
    same before it boots anything.
    """

    def __init__(self, board: BoardFacts, flash: Path, flasher: str, *,
                 boot_timeout_s: float = 10.0, timeout_s: float = 30.0, trial_s: float = 15.0) -> None:
        self.board = board
        self.flash = flash
        self.flasher = flasher
        self.boot_timeout_s = boot_timeout_s
        self.timeout_s = timeout_s
        self.trial_s = trial_s
        self.lock = threading.Lock()
        manifest = json.loads((flash / "manifest.json").read_text())
        self.image = flash / str(manifest["image"])
        self.marker = flash / TRIAL_MARKER
        self.link: ProcessLink | None = None
        self.specs: dict[str, list[dict[str, Any]]] = {}
        if self.marker.exists():
            self._restore("the bridge stopped before the new image was confirmed")
        self.banner = self._prove()
        self.version = self.banner.firmware_version
        #: The compiled module whose code and weights run now (known from the builder's
        #: manifest at first, from the SOTA package after one; unknown after a FOTA).
        self.module: dict[str, Any] = dict(manifest.get("module") or {})

    @property
    def previous(self) -> Path:
        return self.image.with_name(self.image.name + ".prev")

    def _restore(self, reason: str) -> None:
        log.error("%s; rolling back to the previous image", reason)
        if self.previous.exists():
            shutil.copy2(self.previous, self.image)
        self.marker.unlink(missing_ok=True)

    def _prove(self) -> Banner:
        """Boot the image and check it: its banner names this board, and it answers INFO and a
        health inference (zeros in), all within ``trial_s``; sets ``info``."""
        deadline = time.monotonic() + self.trial_s
        wait = min(self.boot_timeout_s, self.trial_s)
        try:
            banner = self._boot(self.image, wait)
        except TinyMLaaSError as exc:
            raise DeviceUnreachable(f"it printed no ready banner within {wait:g} s ({exc.message})") from exc
        if banner.board != self.board.name:
            raise ValueError(f"the image came up as board {banner.board!r}")
        try:
            self.client.timeout = max(deadline - time.monotonic(), 0.1)
            self.info = self.client.info()
            self.specs = self.client.tensors()
            self.client.timeout = max(deadline - time.monotonic(), 0.1)
            self.client.infer(bytes(int(self.info.get("input_bytes", 0))))
        except TinyMLaaSError as exc:
            self.close()
            raise DeviceUnreachable(f"it did not answer a health inference within {self.trial_s:g} s of "
                                    f"booting ({exc.message})") from exc
        except BaseException:
            self.close()
            raise
        self.client.timeout = self.timeout_s
        return banner

    def _boot(self, image: Path, timeout_s: float) -> Banner:
        """Run the flasher on ``image`` and wait for the firmware's ready banner."""
        self.close()
        self.link = ProcessLink(flasher_command(self.flasher, image), what=f"flasher of {self.board.name}")
        self.client = UartClient(self.link, timeout=self.timeout_s)
        try:
            return self.client.wait_ready(timeout_s)
        except BaseException:
            self.close()
            raise

    def tensors(self) -> dict[str, Any]:
        """Input/output specs as the MCU itself reported them (TENSOR), whatever it runs; named as
        the compiled module names them when the bridge knows which module that is."""
        return named(self.specs, self.module)

    def flash_image(self, elf: Path) -> None:
        """Flash ``elf`` and restart the MCU on it, on trial (``elf`` is the image itself: restart
        it). A new image that fails its trial is rolled back, and the error raised (the update
        failed: Update Result 8)."""
        with self.lock:
            new = elf != self.image
            if new:
                shutil.copy2(self.image, self.previous)
                self.marker.write_text(json.dumps({"state": "trial", "image": elf.name}))
                shutil.copy2(elf, self.image)
            try:
                banner = self._prove()
            except (TinyMLaaSError, ValueError, OSError) as exc:
                if not new:
                    raise
                self._restore(f"the new image failed its trial: {getattr(exc, 'message', exc)}")
                self.banner = self._prove()
                raise
            self.marker.unlink(missing_ok=True)
            self.banner = banner
            self.version = banner.firmware_version
            log.info("MCU restarted: %s", banner.line)
            if new:
                self.module = {}

    def infer(self, tensor: bytes) -> tuple[bytes, int]:
        with self.lock:
            result = self.client.infer(tensor)
        return result.output, result.instructions

    def write_model(self, data: bytes) -> None:
        with self.lock:
            self.client.model_write(0, data)
            # The firmware reads the model's hash and quantization from the region.
            self.info = self.client.info()
            self.specs = self.client.tensors()

    def close(self) -> None:
        if self.link is not None:
            self.link.stop()
            self.link = None


class BridgeFirmware:
    """Object 5 backend: an ELF for this board, "flashed" by restarting the emulator."""

    def __init__(self, mcu: Mcu, trust: bytes | None = None) -> None:
        self.mcu = mcu
        self.trust = trust
        self.max_bytes = mcu.board.flash_bytes * 16  # an ELF carries symbols beyond the flash image

    def check(self, image: Path) -> tuple[str, str]:
        unwrap(image, self.trust)
        head = image.read_bytes()
        if head[:4] != _ELF_MAGIC or int.from_bytes(head[18:20], "little") != _EM_ARM:
            raise ValueError("not an ARM ELF image")
        if f"board={self.mcu.board.name}".encode() not in head and \
                self.mcu.board.name.encode() not in head:
            raise ValueError(f"the image does not name board {self.mcu.board.name!r}")
        return f"{self.mcu.board.name} firmware", ""

    async def install(self, image: Path) -> None:
        await asyncio.to_thread(self.mcu.flash_image, image)


class BridgeModules:
    """Object 9 backend: new model weights into the MCU's model region, if it has one."""

    def __init__(self, mcu: Mcu, on_change: Any, trust: bytes | None = None) -> None:
        self.mcu = mcu
        self.trust = trust
        self.on_change = on_change
        self.max_bytes = mcu.board.flash_bytes
        self.pending: tuple[dict[str, Any], bytes] | None = None

    def check(self, package: Path) -> tuple[str, str]:
        unwrap(package, self.trust)
        manifest, data = unpack(package)
        info = self.mcu.info
        if info.get("model_update") != "1":
            raise ValueError("this MCU's firmware has no writable model region (built without "
                             "--model-update): the model can only change by FOTA")
        running = self.mcu.module.get("graph_sha256")
        if not manifest.get("graph_sha256") or manifest.get("graph_sha256") != running:
            raise ValueError("the new model's graph differs from the firmware's compiled code: "
                             "it needs FOTA")
        if len(data) != int(info.get("model_region_bytes", -1)):
            raise ValueError(f"model data of {len(data)} B does not fill the "
                             f"{info.get('model_region_bytes')} B model region")
        return str(manifest.get("name", "model")), str(manifest["model_sha256"])[:12]

    async def install(self, package: Path) -> None:
        self.pending = unpack(package)

    async def activate(self) -> None:
        if self.pending is None:
            raise RuntimeError("no module is installed")
        manifest, data = self.pending
        await asyncio.to_thread(self.mcu.write_model, data)  # inferences wait, none is lost
        self.mcu.module = manifest
        self.on_change()

    async def deactivate(self) -> None:
        raise RuntimeError("the MCU's previous weights are gone; deploy them again to go back")

    async def uninstall(self) -> None:
        self.pending = None


class BridgeInference:
    """Object 33100 backend: capabilities from the board and the MCU; inference over the UART."""

    def __init__(self, mcu: Mcu) -> None:
        self.mcu = mcu

    def capabilities(self) -> dict[int, Any]:
        b, info, module = self.mcu.board, self.mcu.info, self.mcu.module
        compiler = module.get("compiler") or {}
        return {
            Tiny.RAM: b.ram_bytes, Tiny.FLASH: b.flash_bytes, Tiny.CPU: b.cpu, Tiny.CLOCK: b.clock_hz,
            Tiny.ACCELERATORS: dict(enumerate(b.accelerators)),
            Tiny.RUNTIME: f"{compiler.get('name', 'firmware')} {compiler.get('version', '')}".strip(),
            Tiny.MODEL_SHA256: module.get("model_sha256") or info.get("model", ""),
            Tiny.MODEL_NAME: module.get("name", ""), Tiny.ARENA: int(info.get("arena_bytes", 0)),
            Tiny.TENSORS: json.dumps(self.mcu.tensors()), Tiny.BOARD: b.name,
        }

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        t0 = time.perf_counter_ns()
        output, instructions = await asyncio.to_thread(self.mcu.infer, tensor)
        return output, (time.perf_counter_ns() - t0) // 1000, instructions


@dataclass
class Parts:
    """What the bridge serves, whichever protocol it speaks."""

    mcu: Mcu
    endpoint: str
    firmware: BridgeFirmware
    modules: BridgeModules
    inference: BridgeInference
    work: Path
    #: Told when the MCU runs something else (LwM2M re-reads its objects).
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    def device_values(self) -> dict[int, Any]:
        """The Device object's resources (3/0/x): both protocols report them."""
        board, mcu = self.mcu.board, self.mcu
        return {Dev.MANUFACTURER: "TinyMLaaS", Dev.MODEL: board.name, Dev.SERIAL: self.endpoint,
                Dev.FIRMWARE_VERSION: mcu.version,
                Dev.MEMORY_FREE: max(board.flash_bytes - mcu.image.stat().st_size, 0) // 1024,
                Dev.DEVICE_TYPE: f"{board.cpu} MCU behind a bridge", Dev.HARDWARE_VERSION: board.cpu,
                Dev.SOFTWARE_VERSION: str(mcu.info.get("fw", "")),
                Dev.MEMORY_TOTAL: board.flash_bytes // 1024}


def _parts(mcu: Mcu, endpoint: str, work: Path, trust: bytes | None) -> Parts:
    """The protocol-independent parts serving one MCU (the objects tell ``changed`` listeners
    when the MCU runs something else; with ``trust``, only packages signed by that key are taken)."""
    parts: Parts

    class Firmware(BridgeFirmware):
        async def install(self, image: Path) -> None:
            await super().install(image)
            parts.changed()

    parts = Parts(mcu, endpoint, Firmware(mcu, trust), BridgeModules(mcu, lambda: parts.changed(), trust),
                  BridgeInference(mcu), work)
    return parts


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if args.mcu:
        await Bridge(args, [McuSpec.parse(m) for m in args.mcu]).run(stop)
        return 0
    board = BoardFacts.read(args.board_file)
    mcu = await asyncio.to_thread(Mcu, board, args.flash, args.flasher.replace("{board}", board.name),
                                  boot_timeout_s=args.boot_timeout, trial_s=args.trial)
    print(f"BRIDGE MCU READY {mcu.banner.line}", flush=True)
    trust = read_trust(args.trust) if args.trust else None
    parts = _parts(mcu, args.endpoint, args.flash.parent / f"{args.flash.name}.download", trust)
    if args.ota:
        await _pull(args.ota, parts, stop, token_file=args.token_file, wait_s=args.ota_wait)
    else:
        await _lwm2m(args.lwm2m, parts, stop, lifetime=args.lifetime,
                     security=client_security(args.oscore, args.psk))
    await asyncio.to_thread(mcu.close)
    return 0


async def _pull(url: str, parts: Parts, stop: asyncio.Event, *, token_file: Path | None,
                wait_s: float) -> None:
    from tinymlaas.edge.pull import PullAgent

    parts.work.mkdir(parents=True, exist_ok=True)
    token = token_file.read_text().strip() if token_file else None
    agent = PullAgent(url, parts.endpoint, device=parts.device_values, firmware=parts.firmware,
                      modules=parts.modules, inference=parts.inference, workdir=parts.work, token=token,
                      wait_s=wait_s)
    run = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(agent.connected.wait(), 30)
        print(f"OTA POLLING endpoint={parts.endpoint}", flush=True)
    except TimeoutError:
        log.warning("%s: no poll answered yet", parts.endpoint)
    await run


async def _registered(client: LwM2MClient) -> None:
    try:
        await asyncio.wait_for(client.registered.wait(), 30)
        print(f"LWM2M REGISTERED endpoint={client.endpoint} port={client.port}", flush=True)
    except TimeoutError:
        log.warning("%s: not registered yet: %s", client.endpoint, client.last_error)


async def _lwm2m(uri: str, parts: Parts, stop: asyncio.Event, *, lifetime: int,
                 security: dict[str, Any]) -> None:
    """Serve one board on its endpoint (``security``: :func:`client_security`'s arguments)."""
    loop = asyncio.get_running_loop()
    tinyml = TinyMLObject(parts.inference)

    async def reboot() -> None:
        await asyncio.to_thread(parts.mcu.flash_image, parts.mcu.image)
        parts.changed()

    device = DeviceObject(parts.device_values(), reboot=lambda: loop.create_task(reboot()))

    def refresh() -> None:
        tinyml.refresh()
        for rid, value in parts.device_values().items():
            device.set(rid, value)

    parts.listeners.append(refresh)
    fw = FirmwareUpdate(parts.firmware, parts.work)
    sw = SoftwareManagement(parts.modules, parts.work)
    client = LwM2MClient(parts.endpoint, uri, [device, fw, sw, tinyml], lifetime=lifetime, **security)
    await client.start()
    await _registered(client)
    await stop.wait()
    await client.stop()


# -- a bridge fronting several boards -----------------------------------------------------------

@dataclass(frozen=True)
class McuSpec:
    """One board behind the bridge: ``ENDPOINT,BOARD_FILE,FLASH_DIR[,CREDENTIALS]`` (its OSCORE
    context folder, its DTLS key ``psk.json`` or the folder holding it, or its token file or the
    folder holding ``token``)."""

    endpoint: str
    board_file: Path
    flash: Path
    credentials: Path | None = None

    @classmethod
    def parse(cls, text: str) -> McuSpec:
        fields = text.split(",")
        if len(fields) not in (3, 4) or not all(fields):
            raise InvalidInput(f"--mcu {text!r} is not ENDPOINT,BOARD_FILE,FLASH_DIR[,CREDENTIALS]")
        return cls(fields[0], Path(fields[1]), Path(fields[2]), Path(fields[3]) if len(fields) == 4 else None)

    @property
    def token_file(self) -> Path | None:
        if self.credentials is None:
            return None
        return self.credentials / "token" if self.credentials.is_dir() else self.credentials

    @property
    def lwm2m_security(self) -> dict[str, Any]:
        """How the board's endpoint registers: DTLS-PSK with a ``psk.json``, else OSCORE."""
        if self.credentials is None:
            return {}
        if self.credentials.is_dir() and (self.credentials / "psk.json").is_file():
            return client_security(None, self.credentials / "psk.json")
        if self.credentials.suffix == ".json":
            return client_security(None, self.credentials)
        return client_security(self.credentials, None)


class Slot:
    """A board behind the bridge: booted by its flasher, served on its own endpoint, watched.
    A board that does not come up, or whose flasher dies, is "down" (and tried again) while
    the others keep serving."""

    def __init__(self, spec: McuSpec, flasher: str, boot_timeout_s: float,
                 on_health: Callable[[], None], trust: bytes | None, trial_s: float = 15.0) -> None:
        self.spec, self.trust = spec, trust
        self.board = BoardFacts.read(spec.board_file)
        self.flasher = flasher.replace("{board}", self.board.name)
        self.boot_timeout_s, self.trial_s = boot_timeout_s, trial_s
        self.on_health = on_health
        self.mcu: Mcu | None = None
        self.health = "booting"
        self.restarts = 0

    @property
    def version(self) -> str:
        return self.mcu.version if self.mcu is not None else ""

    def _set(self, health: str) -> None:
        if health != self.health:
            log.info("%s: %s", self.spec.endpoint, health)
            self.health = health
            self.on_health()

    async def _boot(self, stop: asyncio.Event) -> Mcu | None:
        delay = 1.0
        while not stop.is_set():
            try:
                mcu = await asyncio.to_thread(Mcu, self.board, self.spec.flash, self.flasher,
                                              boot_timeout_s=self.boot_timeout_s, trial_s=self.trial_s)
            except (TinyMLaaSError, OSError, ValueError) as exc:
                self._set(f"down: it does not boot ({getattr(exc, 'message', exc)})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
                continue
            print(f"BRIDGE MCU READY endpoint={self.spec.endpoint} {mcu.banner.line}", flush=True)
            self._set("running")
            return mcu
        return None

    async def run(self, stop: asyncio.Event, serve: Callable[[Parts, asyncio.Event], Any]) -> None:
        """Boot, serve the board on its endpoint, and restart its flasher if it dies."""
        self.mcu = await self._boot(stop)
        if self.mcu is None:
            return
        work = self.spec.flash.parent / f"{self.spec.flash.name}.download"
        parts = _parts(self.mcu, self.spec.endpoint, work, self.trust)
        parts.listeners.append(self.on_health)  # a new version to report
        serving = asyncio.create_task(serve(parts, stop))
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                await self._check(parts)
        finally:
            await serving
            await asyncio.to_thread(self.mcu.close)

    async def _check(self, parts: Parts) -> None:
        mcu = self.mcu
        if mcu is None or mcu.lock.locked():  # being flashed: the flasher restarts on purpose
            return
        code = mcu.link.proc.poll() if mcu.link is not None else -1
        if code is None:
            return
        self._set(f"down: its flasher exited with code {code}")
        try:
            await asyncio.to_thread(mcu.flash_image, mcu.image)
        except (TinyMLaaSError, OSError, ValueError) as exc:
            log.warning("%s: restarting it failed: %s", self.spec.endpoint, exc)
            return
        self.restarts += 1
        parts.changed()
        self._set("running")


class Bridge:
    """One process fronting several boards: each board joins on its own endpoint, and the bridge
    on its own (``--endpoint``) with a Bridged Board instance per board (endpoint, board, health,
    firmware, restarts), so the service can list them; a change of health updates it at once."""

    def __init__(self, args: argparse.Namespace, specs: list[McuSpec]) -> None:
        if len({s.endpoint for s in specs} | {args.endpoint}) != len(specs) + 1:
            raise InvalidInput("every board behind a bridge, and the bridge, need endpoints of their own")
        self.args = args
        trust = read_trust(args.trust) if args.trust else None
        self.slots = [Slot(s, args.flasher, args.boot_timeout, self._health_changed, trust, args.trial)
                      for s in specs]
        self.boards: list[Instance] = [Instance(Obj.BRIDGED_BOARD, i) for i in range(len(specs))]
        self.client: LwM2MClient | None = None
        self.changed = asyncio.Event()
        self._values()

    def _values(self) -> None:
        for slot, inst in zip(self.slots, self.boards, strict=True):
            for rid, value in ((Bridged.ENDPOINT, slot.spec.endpoint), (Bridged.BOARD, slot.board.name),
                               (Bridged.HEALTH, slot.health), (Bridged.FIRMWARE_VERSION, slot.version),
                               (Bridged.RESTARTS, slot.restarts)):
                inst.set(rid, value)

    def report(self) -> list[dict[str, Any]]:
        return [{"endpoint": s.spec.endpoint, "board": s.board.name, "health": s.health,
                 "firmware_version": s.version, "restarts": s.restarts} for s in self.slots]

    def _health_changed(self) -> None:
        self._values()
        self.changed.set()
        if self.client is not None:
            self.client.trigger_update()  # the service reads the boards again at the update

    def _serve(self, parts: Parts, stop: asyncio.Event) -> Any:
        spec = next(s.spec for s in self.slots if s.spec.endpoint == parts.endpoint)
        if self.args.ota:
            return _pull(self.args.ota, parts, stop, token_file=spec.token_file, wait_s=self.args.ota_wait)
        return _lwm2m(self.args.lwm2m, parts, stop, lifetime=self.args.lifetime, security=spec.lwm2m_security)

    async def run(self, stop: asyncio.Event) -> None:
        slots = [asyncio.create_task(s.run(stop, self._serve)) for s in self.slots]
        try:
            if self.args.ota:
                await self._poll_as_bridge(stop)
            else:
                device = DeviceObject({Dev.MANUFACTURER: "TinyMLaaS", Dev.MODEL: "bridge",
                                       Dev.SERIAL: self.args.endpoint, Dev.FIRMWARE_VERSION: "bridge",
                                       Dev.DEVICE_TYPE: f"bridge of {len(self.slots)} boards"})
                self.client = LwM2MClient(self.args.endpoint, self.args.lwm2m, [device, *self.boards],
                                          lifetime=self.args.lifetime,
                                          **client_security(self.args.oscore, self.args.psk))
                await self.client.start()
                await _registered(self.client)
                await stop.wait()
                await self.client.stop()
        finally:
            stop.set()
            await asyncio.gather(*slots, return_exceptions=True)

    async def _poll_as_bridge(self, stop: asyncio.Event) -> None:
        """HTTP pull: the bridge polls on its own endpoint with its boards in ``bridge``."""
        import urllib.error
        import urllib.request

        url = f"{self.args.ota.rstrip('/')}/ota/{self.args.endpoint}/poll"
        token = self.args.token_file.read_text().strip() if self.args.token_file else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"

        def post(wait_s: float) -> None:
            body = {"status": {"manufacturer": "TinyMLaaS", "model": "bridge", "serial": self.args.endpoint},
                    "bridge": self.report(), "wait_s": wait_s}
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
            with urllib.request.urlopen(req, timeout=wait_s + 30) as resp:
                resp.read()

        while not stop.is_set():
            self.changed.clear()
            try:
                await asyncio.to_thread(post, 0.0)
            except (OSError, urllib.error.URLError) as exc:
                log.warning("the bridge's poll failed: %s", exc)
            with contextlib.suppress(TimeoutError):  # report again when a board changes, or in a while
                await asyncio.wait_for(asyncio.wait({asyncio.ensure_future(stop.wait()),
                                                     asyncio.ensure_future(self.changed.wait())},
                                                    return_when=asyncio.FIRST_COMPLETED),
                                       self.args.ota_wait)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board-file", type=Path, help="the MCU's board.toml (one board)")
    ap.add_argument("--flash", type=Path, help="firmware folder: manifest.json + ELF (one board)")
    ap.add_argument("--mcu", action="append", default=[], metavar="EP,BOARD_FILE,FLASH[,CREDENTIALS]",
                    help="a board behind the bridge, on its own endpoint (repeat it for each); then "
                         "--endpoint, --oscore, --psk and --token-file are the bridge's own")
    ap.add_argument("--flasher", required=True, metavar="COMMAND",
                    help="flashes {image} (of board {board}) and connects the MCU's UART to its stdin/stdout")
    ap.add_argument("--boot-timeout", type=float, default=10.0, help="wait this long for the banner, s")
    ap.add_argument("--trial", type=float, default=15.0,
                    help="a new image must print its banner and answer a health inference within this "
                         "long, s, or the previous one is flashed back")
    ap.add_argument("--endpoint", required=True)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--lwm2m", metavar="URI", help="register with this LwM2M server")
    how.add_argument("--ota", metavar="URL", help="poll this service (the http-pull orchestrator)")
    ap.add_argument("--lifetime", type=int, default=60, help="LwM2M registration lifetime, s")
    ap.add_argument("--oscore", type=Path, metavar="DIR", help="LwM2M: OSCORE security context")
    ap.add_argument("--psk", type=Path, metavar="FILE", help="LwM2M: DTLS pre-shared key (psk.json)")
    ap.add_argument("--token-file", type=Path, metavar="FILE", help="HTTP pull: the bearer token")
    ap.add_argument("--ota-wait", type=float, default=20.0, help="HTTP pull: long-poll wait, s")
    ap.add_argument("--trust", type=Path, metavar="FILE",
                    help="the service's public key: updates must be signed with its key")
    args = ap.parse_args(argv)
    if not args.mcu and (args.board_file is None or args.flash is None):
        ap.error("give --board-file and --flash (one board), or --mcu for each board")
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    logging.getLogger("coap-server").setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(args))
    except TinyMLaaSError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

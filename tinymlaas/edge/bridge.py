"""The bridge: an LwM2M (or HTTP pull) client standing in for an MCU that speaks neither.

The design's "Raspberry Pi as LwM2M client with a flasher to the microcontroller":
this process registers with the service on the MCU's behalf, flashes it by
running the *flasher* command on the new image (FOTA), and forwards inferences
over the MCU's framed UART, which the flasher connects to its stdin/stdout. SOTA
writes only the model region (``MODEL_WRITE``) when the running firmware was built
with a writable one (``--model-update``) for the same model graph; otherwise it
says so (Update Result 54) and the service falls back to FOTA.

    python -m tinymlaas.edge.bridge --board-file board.toml --flash DIR \\
        --flasher "tinymlaas emulate --target lm3s6965evb {image}" \\
        --lwm2m coap://127.0.0.1:5683 --endpoint mcu-1 [--oscore DIR]
    python -m tinymlaas.edge.bridge ... --ota http://127.0.0.1:8000 --endpoint mcu-1 [--token-file FILE]

``DIR`` is the MCU's flash as the bridge keeps it: the firmware folder a
builder wrote (``manifest.json`` + the ELF it names). ``board.toml`` is the
board's description (``targets/<board>/board.toml``): the bridge reports its
RAM, flash, CPU and clock.
"""

from __future__ import annotations

import argparse
import asyncio
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

from tinymlaas.edge.errors import InvalidInput, TinyMLaaSError
from tinymlaas.edge.link import ProcessLink, flasher_command
from tinymlaas.edge.lwm2m.agent import DeviceObject, FirmwareUpdate, SoftwareManagement, TinyMLObject
from tinymlaas.edge.lwm2m.client import LwM2MClient
from tinymlaas.edge.lwm2m.vocab import Dev, Tiny
from tinymlaas.edge.package import unpack
from tinymlaas.edge.signing import read_trust, unwrap
from tinymlaas.edge.uart import Banner, UartClient, quantization

log = logging.getLogger("tinymlaas.bridge")
_ELF_MAGIC = b"\x7fELF"
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
    """The MCU behind its flasher, and its flash folder; one UART conversation at a time."""

    def __init__(self, board: BoardFacts, flash: Path, flasher: str, *,
                 boot_timeout_s: float = 10.0, timeout_s: float = 30.0) -> None:
        self.board = board
        self.flash = flash
        self.flasher = flasher
        self.boot_timeout_s = boot_timeout_s
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        manifest = json.loads((flash / "manifest.json").read_text())
        self.image = flash / str(manifest["image"])
        self.link: ProcessLink | None = None
        self.banner = self._boot(self.image)
        self.info = self.client.info()
        self.version = self.banner.firmware_version
        #: The compiled module whose code and weights run now (known from the builder's
        #: manifest at first, from the SOTA package after one; unknown after a FOTA).
        self.module: dict[str, Any] = dict(manifest.get("module") or {})

    def _boot(self, image: Path) -> Banner:
        """Run the flasher on ``image`` and wait for the firmware's ready banner."""
        self.close()
        self.link = ProcessLink(flasher_command(self.flasher, image), what=f"flasher of {self.board.name}")
        self.client = UartClient(self.link, timeout=self.timeout_s)
        try:
            return self.client.wait_ready(self.boot_timeout_s)
        except BaseException:
            self.close()
            raise

    def tensors(self) -> dict[str, Any]:
        """Input/output specs as the MCU itself reports them (INFO), whatever it runs."""

        def spec(which: str) -> dict[str, Any]:
            scale, zp = quantization(self.info, which)
            n = int(self.info[f"{which}_bytes"])
            if scale == 0:  # a float tensor
                return {"name": which, "dtype": "float32", "shape": [1, n // 4]}
            return {"name": which, "dtype": "int8", "shape": [1, n], "scale": scale, "zero_point": zp}

        return {"inputs": [spec("input")], "outputs": [spec("output")]}

    def flash_image(self, elf: Path) -> None:
        """Flash ``elf`` and restart the MCU on it; if it does not come up, go back to the old image."""
        with self.lock:
            backup = self.image.with_name(self.image.name + ".prev")
            if elf != self.image:
                shutil.copy2(self.image, backup)
                shutil.copy2(elf, self.image)
            try:
                banner = self._boot(self.image)
                if banner.board != self.board.name:
                    raise ValueError(f"the image came up as board {banner.board!r}")
            except (TinyMLaaSError, ValueError) as exc:
                log.error("new image does not boot (%s); restoring the old one", exc)
                if backup.exists():
                    shutil.copy2(backup, self.image)
                self._boot(self.image)
                raise
            self.banner = banner
            self.info = self.client.info()
            self.version = banner.firmware_version
            log.info("MCU restarted: %s", banner.line)
            if elf != self.image:
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


async def serve(args: argparse.Namespace) -> int:
    board = BoardFacts.read(args.board_file)
    mcu = await asyncio.to_thread(Mcu, board, args.flash, args.flasher, boot_timeout_s=args.boot_timeout)
    print(f"BRIDGE MCU READY {mcu.banner.line}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    parts: Parts  # the objects tell it when the MCU runs something else

    class Firmware(BridgeFirmware):
        async def install(self, image: Path) -> None:
            await super().install(image)
            parts.changed()

    trust = read_trust(args.trust) if args.trust else None
    parts = Parts(mcu, args.endpoint, Firmware(mcu, trust),
                  BridgeModules(mcu, lambda: parts.changed(), trust), BridgeInference(mcu),
                  args.flash.parent / f"{args.flash.name}.download")
    await (_pull(args, parts, stop) if args.ota else _lwm2m(args, parts, stop))
    await asyncio.to_thread(mcu.close)
    return 0


async def _pull(args: argparse.Namespace, parts: Parts, stop: asyncio.Event) -> None:
    from tinymlaas.edge.pull import PullAgent

    parts.work.mkdir(parents=True, exist_ok=True)
    token = args.token_file.read_text().strip() if args.token_file else None
    agent = PullAgent(args.ota, args.endpoint, device=parts.device_values, firmware=parts.firmware,
                      modules=parts.modules, inference=parts.inference, workdir=parts.work, token=token,
                      wait_s=args.ota_wait)
    run = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(agent.connected.wait(), 30)
        print(f"OTA POLLING endpoint={args.endpoint}", flush=True)
    except TimeoutError:
        log.warning("no poll answered yet")
    await run


async def _lwm2m(args: argparse.Namespace, parts: Parts, stop: asyncio.Event) -> None:
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
    security = None
    if args.oscore is not None:
        from aiocoap.oscore import FilesystemSecurityContext

        security = FilesystemSecurityContext(str(args.oscore))
    client = LwM2MClient(args.endpoint, args.lwm2m, [device, fw, sw, tinyml],
                         lifetime=args.lifetime, security=security)
    await client.start()
    try:
        await asyncio.wait_for(client.registered.wait(), 30)
        print(f"LWM2M REGISTERED endpoint={args.endpoint} port={client.port}", flush=True)
    except TimeoutError:
        log.warning("not registered yet: %s", client.last_error)
    await stop.wait()
    await client.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board-file", type=Path, required=True, help="the MCU's board.toml")
    ap.add_argument("--flash", type=Path, required=True, help="firmware folder: manifest.json + ELF")
    ap.add_argument("--flasher", required=True, metavar="COMMAND",
                    help="flashes {image} and connects the MCU's UART to its stdin/stdout")
    ap.add_argument("--boot-timeout", type=float, default=10.0, help="wait this long for the banner, s")
    ap.add_argument("--endpoint", required=True)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--lwm2m", metavar="URI", help="register with this LwM2M server")
    how.add_argument("--ota", metavar="URL", help="poll this service (the http-pull orchestrator)")
    ap.add_argument("--lifetime", type=int, default=60, help="LwM2M registration lifetime, s")
    ap.add_argument("--oscore", type=Path, metavar="DIR", help="LwM2M: OSCORE security context")
    ap.add_argument("--token-file", type=Path, metavar="FILE", help="HTTP pull: the bearer token")
    ap.add_argument("--ota-wait", type=float, default=20.0, help="HTTP pull: long-poll wait, s")
    ap.add_argument("--trust", type=Path, metavar="FILE",
                    help="the service's public key: updates must be signed with its key")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    logging.getLogger("coap-server").setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(args))
    except TinyMLaaSError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

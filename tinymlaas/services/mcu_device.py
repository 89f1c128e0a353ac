"""An emulated MCU device: a board's firmware booted in an emulator, spoken to over its UART.

This is what the CLI's ``run``, the tests and the LwM2M bridge use: "flashing"
is stopping the emulator and booting the new image; inferences go over the
framed UART protocol (:mod:`tinymlaas.edge.uart`).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.config import EmulatorSettings, get_settings
from tinymlaas.edge.tensors import elements, named, pack, unpack
from tinymlaas.edge.tflm import dequantize, quantize
from tinymlaas.edge.uart import Banner, Inference, UartClient
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.models import Board, DeviceAttach, FirmwareManifest
from tinymlaas.plugins.base import Emulator, EmulatorSession
from tinymlaas.plugins.registry import emulator_plugin


def firmware_image(path: Path) -> Path:
    """The ELF to boot: ``path`` itself, or the image a firmware folder's manifest names."""
    if path.is_dir():
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise NotFound(f"{path} holds no firmware manifest.json")
        return path / FirmwareManifest.model_validate(json.loads(manifest.read_text())).image
    if not path.is_file():
        raise NotFound(f"no firmware image at {path}")
    return path


_ELF_MAGIC = b"\x7fELF"
_EM_ARM = 40


def check_image_board(image: Path, board: Board, boards: Iterable[str]) -> None:
    """Refuse, before booting, an image that is not an ARM ELF or names another of ``boards``
    than ``board`` (an image for another memory map would only fault in the emulator)."""
    head = image.read_bytes()
    if head[:4] != _ELF_MAGIC or int.from_bytes(head[18:20], "little") != _EM_ARM:
        raise InvalidInput(f"{image} is not an ARM ELF image, so not firmware for '{board.name}'")
    manifest = image.parent / "manifest.json"
    if manifest.is_file():
        built_for = FirmwareManifest.model_validate(json.loads(manifest.read_text())).board
        if built_for != board.name:
            raise InvalidInput(f"{image} was built for board '{built_for}', not '{board.name}'")
        return
    named = {b for b in boards if re.search(rb"(?<![\w.-])" + re.escape(b.encode()) + rb"\x00", head)}
    if board.name not in named and named:
        raise InvalidInput(f"{image} was built for board '{sorted(named)[0]}', not '{board.name}'")


def emulator_for(board: Board, name: str | None = None,
                 settings: EmulatorSettings | None = None) -> Emulator:
    """The named emulator, else the ``emulator.backend`` setting, else the first of the
    board's ``emulators`` that is installed."""
    name = name or (settings or get_settings().emulator).backend
    candidates = [name] if name else board.emulators
    reasons = []
    for cand in candidates:
        emu = emulator_plugin(cand)()
        why = emu.unavailable()
        if why is None and emu.supports(board):
            return emu
        reasons.append(f"{cand}: {why or 'does not model this board'}")
    if not candidates:
        reasons.append("its board.toml names no emulators")
    raise InvalidInput(f"no emulator can run board '{board.name}' ({'; '.join(reasons)})")


def _as_tensor(arr: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """``arr`` as values of the tensor's dtype: arrays of that dtype as they are, numbers
    quantized with the device's own scale (a quantized tensor) or converted (a float one)."""
    dtype = np.dtype(spec["dtype"])
    if arr.dtype == dtype:
        return arr
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInput(f"input of dtype {arr.dtype} for tensor {spec['name']!r} is not numeric")
    if spec.get("scale") is not None:
        return quantize(arr.astype(np.float64), spec["scale"], spec["zero_point"], dtype)
    if dtype.kind == "f":
        return arr.astype(dtype)
    raise InvalidInput(f"tensor {spec['name']!r} takes raw {dtype.name} values; the input is {arr.dtype}")


def input_tensors(arrays: list[np.ndarray], specs: dict[str, list[dict[str, Any]]]) -> list[bytes]:
    """Packed input tensors for the device, one per inference: one array per input tensor (in
    the model's order), each one tensor or one tensor per row (its first axis), every array with
    as many rows; anything else is refused rather than cut into tensors silently."""
    inputs = specs["inputs"]
    if len(arrays) != len(inputs):
        raise InvalidInput(f"the model takes {len(inputs)} input tensors "
                           f"({', '.join(s['name'] for s in inputs)}); {len(arrays)} were given")
    rows: list[list[np.ndarray]] = []
    for arr, spec in zip(arrays, inputs, strict=True):
        arr, size = np.asarray(arr), elements(spec)
        n = 1 if arr.size == size else (arr.shape[0] if arr.ndim >= 2 else 0)
        if arr.size == 0 or n * size != arr.size:
            shape = "x".join(map(str, arr.shape)) or "scalar"
            raise InvalidInput(f"tensor {spec['name']!r} takes {size} values per inference; the input "
                               f"of shape {shape} is neither one tensor nor one per row (N x {size})")
        flat = _as_tensor(arr, spec).reshape(n, size)
        rows.append(list(flat))
    if len({len(r) for r in rows}) > 1:
        raise InvalidInput(f"the inputs have different numbers of rows: {[len(r) for r in rows]}")
    return [pack(inputs, list(tensors)) for tensors in zip(*rows, strict=True)]


def output_values(result: Inference, specs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each output tensor of one inference: its raw values and its values dequantized with the
    device's own output scale (a float tensor's values are its raw ones)."""
    outs = []
    for spec, raw in zip(specs["outputs"], unpack(specs["outputs"], result.output), strict=True):
        values = (dequantize(raw, spec["scale"], spec["zero_point"]) if spec.get("scale") is not None
                  else raw.astype(np.float64))
        outs.append({"name": spec["name"], "output": raw.tolist(), "values": values.tolist()})
    return outs


class McuDevice:
    """One booted emulated board; ``with`` stops it. ``restart`` boots another image."""

    def __init__(self, board: Board, firmware: Path, *, emulator: str | None = None,
                 boot_timeout_s: float | None = None, timeout_s: float = 30.0) -> None:
        settings = get_settings().emulator
        self.board = board
        self.emulator = emulator_for(board, emulator, settings)
        self.boot_timeout_s = boot_timeout_s or settings.boot_timeout_s
        self.timeout_s = timeout_s
        self.session: EmulatorSession | None = None
        self.boot(firmware)

    def boot(self, firmware: Path) -> Banner:
        """Start the emulator on ``firmware`` and wait for the ready banner."""
        image = firmware_image(firmware)
        start = time.monotonic()
        self.session = self.emulator.start(image, self.board)
        try:
            self.client = UartClient(self.session, timeout=self.timeout_s)
            self.banner = self.client.wait_ready(self.boot_timeout_s)
        except BaseException:
            self.close()
            raise
        #: Seconds from starting the emulator to the ready banner.
        self.boot_seconds = time.monotonic() - start
        self.firmware = image
        return self.banner

    def restart(self, firmware: Path) -> Banner:
        """"Flash" a new image: stop the emulator and boot ``firmware``."""
        self.close()
        return self.boot(firmware)

    def info(self) -> dict[str, str]:
        return self.client.info()

    def tensors(self) -> dict[str, list[dict[str, Any]]]:
        """Every tensor as the firmware describes it, named as its build's module names them."""
        manifest = self.firmware.parent / "manifest.json"
        module = json.loads(manifest.read_text()).get("module") or {} if manifest.is_file() else {}
        return named(self.client.tensors(), module)

    def infer(self, tensor: bytes | np.ndarray) -> Inference:
        return self.client.infer(tensor)

    def close(self) -> None:
        if self.session is not None:
            self.session.stop()

    def __enter__(self) -> McuDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def emulate_flasher(board: Board | None, emulator: str | None = None) -> str:
    """The flasher command a bridge runs for an emulated board: ``tinymlaas emulate`` boots each
    image it is given and connects the board's UART to its stdin/stdout (``board`` None: the
    bridge fills in each of its boards as ``{board}``)."""
    return shlex.join([sys.executable, "-m", "tinymlaas.cli.main", "emulate", "--target",
                       board.name if board else "{board}", *(["--emulator", emulator] if emulator else []),
                       "{image}"])


@dataclass(frozen=True)
class BridgedBoard:
    """A board behind a bridge: how it joins (its own endpoint and credentials), what it is, and
    the firmware folder it boots."""

    attach: DeviceAttach
    board: Board
    flash: Path


class BridgeProcess:
    """The bridge (the gateway of the design documents) in front of emulated MCUs, as a child
    process: its flasher is ``tinymlaas emulate``, which boots each image it is given in the
    emulator; it joins the service over LwM2M or HTTP pull. One board joins as the bridge's
    endpoint; several (:meth:`fronting`) each join on their own, and the bridge on its own."""

    def __init__(self, board: Board, flash: Path, attach: DeviceAttach, log: Path, *,
                 targets_dir: Path, emulator: str | None = None, trial_s: float | None = None) -> None:
        """``trial_s``: how long a new image has to prove itself (the bridge's default otherwise)."""
        self._spawn([sys.executable, "-m", "tinymlaas.edge.bridge",
                     "--board-file", str(targets_dir / board.name / "board.toml"), "--flash", str(flash),
                     "--flasher", emulate_flasher(board, emulator), *attach.args(),
                     *(["--trial", str(trial_s)] if trial_s else [])], log)

    @classmethod
    def fronting(cls, boards: list[BridgedBoard], attach: DeviceAttach, log: Path, *, targets_dir: Path,
                 emulator: str | None = None) -> BridgeProcess:
        """One bridge for several boards; ``attach`` is how the bridge itself joins."""
        mcus = []
        for b in boards:
            spec = [b.attach.endpoint, str(targets_dir / b.board.name / "board.toml"), str(b.flash)]
            mcus += ["--mcu", ",".join(spec + ([str(b.attach.credentials)] if b.attach.credentials else []))]
        bridge = cls.__new__(cls)
        bridge._spawn([sys.executable, "-m", "tinymlaas.edge.bridge", "--flasher",
                       emulate_flasher(None, emulator), *attach.args(), *mcus], log)
        return bridge

    def _spawn(self, cmd: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> BridgeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Robot keywords for emulated boards, named after Renode's so suites read the same,
but driving any emulator backend of TinyMLaaS (QEMU here, Renode where installed).

Firmware comes from the real service path: the zoo model, the aot compiler and the
board's builder container.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from robot.api.deco import keyword, library
from robot.libraries.BuiltIn import BuiltIn

from tinymlaas.builders.container import DockerBuilder
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.edge.uart import UartClient
from tinymlaas.images import docker_client, ensure_base, ensure_image, image_sources
from tinymlaas.models import Board, ModuleManifest
from tinymlaas.plugins.base import Emulator, EmulatorSession
from tinymlaas.plugins.registry import plugins
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import emulator_for
from tinymlaas.targets import get_board, load_boards
from tinymlaas.zoo import get_recipe


@library(scope="SUITE", auto_keywords=False)
class EmulatorLibrary:
    """One emulated machine per suite; ``Reset Emulation`` stops it (use it as teardown)."""

    def __init__(self, emulator: str = "") -> None:
        self.settings = Settings()
        self.emulator_name = emulator or None
        self.board: Board | None = None
        self.firmware: Path | None = None
        self.session: EmulatorSession | None = None
        self.client: UartClient | None = None
        self.timeout = 10.0
        self._tmp = tempfile.TemporaryDirectory(prefix="tinymlaas-robot-")
        self._model: bytes | None = None
        self._module: ModuleManifest | None = None
        self._built: dict[tuple[str, str, str], tuple[str, bytes, ModuleManifest]] = {}
        self._counts: list[int] = []

    # -- firmware ------------------------------------------------------------------

    @keyword("Build Firmware")
    def build_firmware(self, model: str, board: str, version: str = "1.0.0") -> str:
        """Compile zoo ``model`` with aot and build it in ``board``'s builder container;
        returns the firmware folder."""
        if (model, board, version) in self._built:  # each board's firmware once per suite
            fw, self._model, self._module = self._built[(model, board, version)]
            return fw
        b = get_board(self.settings.targets_dir, board)
        client = docker_client()
        ensure_base(self.settings, client)
        for src in image_sources(self.settings):  # only this board's builder image
            if src.tag == b.builder.image:
                ensure_image(src, self.settings, client)
        self._model = get_recipe(model).load(self.settings.zoo_dir)
        work = Path(self._tmp.name) / f"{model}-{board}"
        self._module = compile_model(self._model, b, work / "module", compiler="aot", name=model)
        DockerBuilder().build(work / "module", b, work / "fw", version=version)
        self._built[(model, board, version)] = (str(work / "fw"), self._model, self._module)
        return str(work / "fw")

    @keyword("Boards Run By")
    def boards_run_by(self, emulator: str) -> list[str]:
        """The boards whose board.toml names ``emulator``."""
        return sorted(n for n, b in load_boards(self.settings.targets_dir).items()
                      if emulator in b.emulators)

    @keyword("Skip Unless Installed")
    def skip_unless_installed(self, emulator: str) -> None:
        """Skip the test, saying why, when ``emulator`` cannot run on this machine."""
        cls = plugins("emulators").get(emulator)
        if cls is None or not issubclass(cls, Emulator):
            raise AssertionError(f"no emulator plugin named {emulator!r}")
        why = cls.unavailable()
        if why:
            BuiltIn().skip(f"{why}: {emulator} has no package in the registries CI reaches")

    @keyword("Model Hash")
    def model_hash(self) -> str:
        assert self._module is not None, "no firmware built yet"
        return self._module.model_sha256

    # -- Renode-named machine control -----------------------------------------------

    @keyword("Create Machine")
    def create_machine(self, board: str, firmware: str) -> None:
        """Like Renode's ``mach create`` + ``sysbus LoadELF``: choose the board and its image."""
        self.board = get_board(self.settings.targets_dir, board)
        fw = Path(firmware)
        self.firmware = fw / "firmware.elf" if fw.is_dir() else fw

    @keyword("Create Terminal Tester")
    def create_terminal_tester(self, uart: str = "", timeout: float = 10.0) -> None:
        """Watch the board's UART (there is one per board); ``timeout`` is the default wait."""
        self.timeout = float(timeout)

    @keyword("Start Emulation")
    def start_emulation(self, emulator: str = "") -> None:
        """Boot the machine in ``emulator`` (default: the library's, else the board's first)."""
        if self.board is None or self.firmware is None:
            raise AssertionError("Create Machine first")
        emu = emulator_for(self.board, emulator or self.emulator_name)
        self.session = emu.start(self.firmware, self.board)
        self.client = UartClient(self.session, timeout=self.timeout)
        self._counts = []

    @keyword("Reset Emulation")
    def reset_emulation(self) -> None:
        if self.session is not None:
            self.session.stop()
        self.session = self.client = None

    @keyword("Wait For Line On Uart")
    def wait_for_line_on_uart(self, pattern: str, timeout: float | None = None,
                              treatAsRegex: bool = False) -> str:
        """The first UART line containing ``pattern`` (or matching it as a regex)."""
        session = self._session()
        wait = self.timeout if timeout is None else float(timeout)
        import time

        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {pattern!r} on the UART within {wait:g} s")
            try:
                line = session.read_line(left)
            except Exception as exc:
                raise AssertionError(f"waiting for {pattern!r}: {exc}") from exc
            if (re.search(pattern, line) if treatAsRegex else pattern in line):
                return line

    @keyword("Write Line To Uart")
    def write_line_to_uart(self, line: str) -> None:
        self._session().write(line.encode() + b"\n")

    # -- the inference protocol ------------------------------------------------------

    @keyword("Infer On Uart")
    def infer_on_uart(self, values: list[int]) -> tuple[list[int], int]:
        """Send one raw int8 input frame; returns the int8 outputs and the instruction count."""
        assert self.client is not None, "Start Emulation first"
        result = self.client.infer(np.asarray([int(v) for v in values], dtype=np.int8))
        self._counts.append(result.instructions)
        return [int(v) for v in result.values()], result.instructions

    @keyword("Instruction Counts")
    def instruction_counts(self) -> list[int]:
        """The instruction counts of the inferences since ``Start Emulation``."""
        return list(self._counts)

    @keyword("Quantized Hello World Input")
    def quantized_input(self, x: float) -> list[int]:
        assert self._module is not None, "no firmware built yet"
        t = self._module.inputs[0]
        assert t.scale is not None and t.zero_point is not None, "the input is not quantized"
        return [int(v) for v in quantize(np.array([[float(x)]]), t.scale, t.zero_point,
                                          np.dtype(np.int8)).ravel()]

    @keyword("TFLM Outputs")
    def tflm_outputs(self, values: list[int]) -> list[int]:
        """The real TFLM interpreter's int8 outputs for the same input: the oracle."""
        assert self._model is not None, "no firmware built yet"
        out = Tflm(self._model).invoke(np.asarray([int(v) for v in values], dtype=np.int8))
        return [int(v) for v in out.ravel()]

    def _session(self) -> EmulatorSession:
        if self.session is None:
            raise AssertionError("Start Emulation first")
        return self.session

"""Renode runs the firmware where it is installed, for boards whose platform it models.

A board opts in with ``renode_platform`` (a .repl shipped with Renode) and
``renode_uart`` (the peripheral the firmware's UART driver talks to) in its
``[emulator]`` table. The session is the same as QEMU's: the UART is a server
socket terminal on loopback, so the protocol client and the Robot keywords
work unchanged. Unlike QEMU's machines, Renode's platforms are not exactly
our boards (e.g. its stm32f103 has more memory than the STM32F100): the
firmware is still linked for the real board, so it fits both.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.emulators._process import SocketSession
from tinymlaas.errors import EmulatorError, InvalidInput, NotFound
from tinymlaas.models import Board
from tinymlaas.net import free_port
from tinymlaas.plugins.base import Emulator


class RenodeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary: str = Field("renode", description="the Renode executable")
    connect_timeout_s: float = Field(60.0, gt=0, description="Renode starts slowly (.NET)")


class RenodeEmulator(Emulator):
    """Generates a .resc for the board and runs it headless in Renode."""

    name = "renode"
    Options = RenodeOptions

    def supports(self, board: Board) -> bool:
        return {"renode_platform", "renode_uart"} <= board.emulator.keys()

    def script(self, firmware: Path, board: Board, uart_port: int) -> str:
        """The Renode script: machine, platform, the UART on a loopback socket, the ELF."""
        if not self.supports(board):
            raise InvalidInput(f"board '{board.name}' names no renode_platform/renode_uart")
        platform, uart = board.emulator["renode_platform"], board.emulator["renode_uart"]
        return "\n".join([
            f'mach create "{board.name}"',
            f"machine LoadPlatformDescription @{platform}",
            f'emulation CreateServerSocketTerminal {uart_port} "uart" false',
            f"connector Connect {uart} uart",
            f"sysbus LoadELF @{firmware}",
            "start",
            "",
        ])

    def start(self, firmware: Path, board: Board) -> SocketSession:
        assert isinstance(self.options, RenodeOptions)
        reason = self.unavailable()
        if reason:
            raise EmulatorError(reason)
        if not firmware.is_file():
            raise NotFound(f"no firmware image at {firmware}")
        workdir = Path(tempfile.mkdtemp(prefix="tinymlaas-renode-"))
        uart_port = free_port()
        resc = workdir / f"{board.name}.resc"
        resc.write_text(self.script(firmware.resolve(), board, uart_port))
        cmd = [self.options.binary, "--disable-xwt", "--hide-log", "--plain",
               "--port", str(free_port()), str(resc)]

        def connect() -> socket.socket:
            s = socket.create_connection(("127.0.0.1", uart_port), timeout=1)
            s.settimeout(None)  # the reader blocks; silence is not an end
            return s

        return SocketSession(board, cmd, connect, workdir, what=f"Renode {board.name}",
                             connect_timeout=self.options.connect_timeout_s)

"""QEMU (``qemu-system-arm``) runs the boards' firmware with their real memory maps.

The board's first UART is a Unix socket (``-chardev socket,...,server=on,wait=on``):
QEMU holds the CPU until we are connected, so not a byte of the banner is lost.
``-icount shift=N`` makes every instruction advance virtual time by 2^N ns, which
the firmware turns into instruction counts (see firmware/icount.h).
``-no-reboot`` turns the fault handler's reset request into QEMU's exit: a crash
ends the session instead of looping through boots.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinymlaas.emulators._process import SocketSession
from tinymlaas.errors import EmulatorError, InvalidInput, NotFound
from tinymlaas.models import Board
from tinymlaas.plugins.base import Emulator


class QemuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary: str = Field("qemu-system-arm", description="the QEMU executable")
    connect_timeout_s: float = Field(10.0, gt=0, description="wait this long for the UART socket")
    trace: Path | None = Field(
        None, description="write an instruction-by-instruction exec trace here (slow; "
        "-singlestep -d exec,nochain), the reference the SysTick counts are validated against")


class QemuBoard(BaseModel):
    """The part of a board's ``[emulator]`` table QEMU reads."""

    model_config = ConfigDict(extra="ignore")

    qemu_machine: str
    qemu_icount_shift: int = Field(10, ge=0, le=10)


def qemu_board(board: Board) -> QemuBoard:
    try:
        return QemuBoard.model_validate(board.emulator)
    except ValidationError as exc:
        raise InvalidInput(f"board '{board.name}' cannot run under QEMU: {exc}") from exc


class QemuEmulator(Emulator):
    """Boots the firmware ELF on the board's QEMU machine, UART on a Unix socket."""

    name = "qemu"
    Options = QemuOptions

    def supports(self, board: Board) -> bool:
        return self.name in board.emulators

    def command(self, firmware: Path, board: Board, uart_socket: Path) -> list[str]:
        assert isinstance(self.options, QemuOptions)
        qb = qemu_board(board)
        cmd = [
            self.options.binary, "-M", qb.qemu_machine, "-nodefaults", "-display", "none",
            "-monitor", "none", "-no-reboot",
            "-chardev", f"socket,id=uart,path={uart_socket},server=on,wait=on",
            "-serial", "chardev:uart",
            "-icount", f"shift={qb.qemu_icount_shift},align=off,sleep=on",
            "-kernel", str(firmware),
        ]
        if self.options.trace is not None:
            cmd += ["-singlestep", "-d", "exec,nochain", "-D", str(self.options.trace)]
        return cmd

    def start(self, firmware: Path, board: Board) -> SocketSession:
        assert isinstance(self.options, QemuOptions)
        if not self.supports(board):
            raise InvalidInput(f"board '{board.name}' does not name qemu in its emulators")
        if shutil.which(self.options.binary) is None:  # the configured one, not the default
            raise EmulatorError(f"{self.options.binary} is not on PATH")
        if not firmware.is_file():
            raise NotFound(f"no firmware image at {firmware}")
        workdir = Path(tempfile.mkdtemp(prefix="tinymlaas-qemu-"))
        sock_path = workdir / "uart.sock"

        def connect() -> socket.socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(sock_path))
            except OSError:
                s.close()
                raise
            return s

        return SocketSession(board, self.command(firmware.resolve(), board, sock_path), connect,
                             workdir, what=f"QEMU {qemu_board(board).qemu_machine}",
                             connect_timeout=self.options.connect_timeout_s)


def trace_counts(trace: Path, elf: Path, function: str = "model_invoke") -> list[int]:
    """Instructions from each entry of ``function`` to its return, counted in a
    ``QemuOptions(trace=...)`` single-step log: the reference for the SysTick counts."""
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,
                        check=True).stdout
    entry = next(int(ln.split()[0], 16) for ln in nm.splitlines()
                 if ln.endswith(f" {function}")) & ~1
    pcs = [int(m, 16) for m in re.findall(r"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/",
                                          trace.read_text())]
    counts = []
    for i, pc in enumerate(pcs):
        if pc == entry:
            ret = {pcs[i - 1] + 2, pcs[i - 1] + 4}  # after the calling blx
            j = next(j for j in range(i + 1, len(pcs)) if pcs[j] in ret)
            counts.append(j - i)
    return counts

"""Renode runs the firmware where it is installed, for boards whose platform it models.

A board opts in by naming ``renode`` in its ``emulators`` and giving, in its
``[emulator]`` table, ``renode_platform`` (a .repl shipped with Renode),
``renode_uart`` (the peripheral the firmware's UART driver talks to), and where
needed ``renode_cpu`` (the platform's name for its CPU) and ``renode_sysbus_init``
(the platform's sysbus init without its ``ApplySVD @https://...``, which would
download a file at every start: nothing leaves the machine).

The board's UART is a pty (``CreateUartPtyTerminal``): Renode binds its socket
terminals and its monitor port to every interface, a pty to none. Renode runs in
console mode (no monitor port; its stdin is a pipe held open, or it would quit)
and prints its log and its monitor's answers to stdout, which the session keeps
in a file. Renode does not exit when its script fails: it says so and waits. The
script's last line logs a marker; the session waits for the marker, a failed
command or Renode's exit, and turns the last two into an EmulatorError quoting
Renode's own lines.

Instructions per inference come from the emulated CPU itself, not from the
firmware's SysTick (Renode advances SysTick in steps, so the firmware's
calibration cannot resolve a few instructions). A hook on the firmware's
``icount_call`` (the one place it times an inference) hooks the entry of the
function it times and the return address, reads the CPU's
``ExecutedInstructions`` at both, and appends the difference to a file: a
single-step trace's figure (callee entry to return), without the UART protocol
and interrupt work that a monitor read around the whole exchange would count.
The session puts that figure into the inference reply in place of the
firmware's estimate, so every client sees the emulator's count.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinymlaas.edge.uart import Command, Frame
from tinymlaas.emulators._process import SocketSession
from tinymlaas.errors import EmulatorError, InvalidInput, NotFound
from tinymlaas.models import Board
from tinymlaas.plugins.base import Emulator

#: Logged by the script's last line: every command before it worked.
STARTED_MARKER = "tinymlaas: emulation started"
#: How Renode's monitor reports a failed command (the script stops there).
_FAILED_COMMAND = "There was an error executing command"
#: The symbol the firmware times inferences with (targets/_cortex-m/builder/firmware/icount.c).
ICOUNT_SYMBOL = "icount_call"
_INFER_REPLY = Command.INFER | Command.REPLY

#: Python that Renode runs at ``icount_call``'s entry, where r0 is the function it will
#: time. The first time, it hooks that function's entry; the entry hook's first run hooks
#: the return address (lr). Each entry-to-return difference of ExecutedInstructions is
#: appended to the counts file. The hooks share state through AppDomain data (each hook
#: runs in a Python scope of its own).
_HOOK_PY = """\
import System
d = System.AppDomain.CurrentDomain
if d.GetData('tinymlaas.timed') is None:
    d.SetData('tinymlaas.timed', True)
    def on_return(cpu, addr):
        start = d.GetData('tinymlaas.entry')
        if start is not None:
            d.SetData('tinymlaas.entry', None)
            System.IO.File.AppendAllText('{counts}', '%d\\n' % (cpu.ExecutedInstructions - start))
    def on_entry(cpu, addr):
        if d.GetData('tinymlaas.return') is None:
            d.SetData('tinymlaas.return', True)
            cpu.AddHook(cpu.GetRegisterUnsafe(14).RawValue & ~1, on_return)
        d.SetData('tinymlaas.entry', cpu.ExecutedInstructions)
    self.AddHook(self.GetRegisterUnsafe(0).RawValue & ~1, on_entry)
"""


class RenodeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary: str = Field("renode", description="the Renode executable")
    connect_timeout_s: float = Field(
        60.0, gt=0, description="wait this long for Renode to set the machine up (Mono "
        "starts slowly)")


class RenodeBoard(BaseModel):
    """The part of a board's ``[emulator]`` table Renode reads."""

    model_config = ConfigDict(extra="ignore")

    renode_platform: str = Field(pattern=r"^[\w./-]+\.repl$")
    renode_uart: str = Field(pattern=r"^[\w.]+$")
    renode_cpu: str = Field("sysbus.cpu", pattern=r"^[\w.]+$")
    renode_sysbus_init: list[str] | None = Field(None, min_length=1)


def renode_board(board: Board) -> RenodeBoard:
    try:
        return RenodeBoard.model_validate(board.emulator)
    except ValidationError as exc:
        raise InvalidInput(f"board '{board.name}' cannot run under Renode: {exc}") from exc


class PtyLink:
    """The slave side of the pty Renode holds the master of (already raw: Renode opens it
    with cfmakeraw's settings)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def recv(self, size: int) -> bytes:
        try:
            return os.read(self.fd, size)
        except OSError:
            return b""  # EIO: Renode closed the master

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RenodeSession(SocketSession):
    """A Renode process: its stdout log watched while the machine is set up, its UART on a
    pty, and the emulated CPU's instruction counts in the inference replies."""

    def __init__(self, board: Board, cmd: list[str], uart: Path, workdir: Path, *,
                 counts: Path, connect_timeout: float) -> None:
        self.counts_path = counts
        self._counts_used = 0
        super().__init__(board, cmd, lambda: PtyLink(uart), workdir, what=f"Renode {board.name}",
                         connect_timeout=connect_timeout, stdin_pipe=True)

    def _log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def _failure(self) -> str | None:
        lines = self._log_lines()
        for i, line in enumerate(lines):
            if _FAILED_COMMAND in line:
                # The monitor's report: the command, then its reason (the prompt may follow).
                reason = [ln.strip() for ln in lines[i + 1 : i + 3] if ln.strip()]
                return " ".join([line.strip(), *reason])[:1000]
        return None

    def _started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(STARTED_MARKER in ln for ln in self._log_lines()):
            failure = self._failure()
            if failure:
                raise EmulatorError(f"{self.what}: the Renode script failed: {failure}")
            if self.proc.poll() is not None:
                raise EmulatorError(f"{self.what} exited with code {self.proc.returncode} "
                                    f"while setting the machine up: {self.emulator_log()}")
            if time.monotonic() > deadline:
                raise EmulatorError(f"{self.what}: the machine was not set up within "
                                    f"{timeout:.0f} s; Renode's log: {self.emulator_log()}")
            time.sleep(0.05)

    def emulator_log(self) -> str:
        self._log.flush()
        return " | ".join(ln.strip() for ln in self._log_lines()[-8:] if ln.strip())[-1500:]

    def instruction_counts(self) -> list[int]:
        """Instructions of each timed call (an inference's ``model_invoke``) since boot, as
        the emulated CPU counted them."""
        try:
            return [int(v) for v in self.counts_path.read_text().split()]
        except OSError:
            return []

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        data = super().read_until(terminator, timeout)
        return self._with_emulator_count(data) if terminator == b"\x00" else data

    def _with_emulator_count(self, wire: bytes) -> bytes:
        """An inference reply with the emulated CPU's count in place of the firmware's.

        The hook wrote the count before the firmware sent its reply; a call that failed
        (an error reply) left a count no reply takes, so the newest count is the one."""
        try:
            frame = Frame.decode(wire)
        except ValueError:
            return wire
        if frame.cmd != _INFER_REPLY or len(frame.payload) < 4:
            return wire
        counts = self.instruction_counts()
        if len(counts) <= self._counts_used:
            raise EmulatorError(f"{self.what}: an inference reply came without the emulator's "
                                f"instruction count (is icount_call in the firmware?)")
        self._counts_used = len(counts)
        payload = struct.pack("<I", counts[-1]) + frame.payload[4:]
        return Frame(frame.cmd, frame.seq, payload).encode()


class RenodeEmulator(Emulator):
    """Generates a .resc for the board and runs it headless in Renode."""

    name = "renode"
    Options = RenodeOptions

    def supports(self, board: Board) -> bool:
        return self.name in board.emulators

    def script(self, firmware: Path, board: Board, uart: Path, counts: Path) -> str:
        """The Renode script: machine, platform, the UART on a pty, the ELF, the
        instruction-count hook, start, and the marker that all of it worked."""
        if not self.supports(board):
            raise InvalidInput(f"board '{board.name}' does not name renode in its emulators")
        rb = renode_board(board)
        if rb.renode_sysbus_init is None:
            platform = f"machine LoadPlatformDescription @{rb.renode_platform}"
        else:
            init = "".join(f"\n        {line}" for line in rb.renode_sysbus_init)
            platform = (f'machine LoadPlatformDescriptionFromString """\n'
                        f'using "{rb.renode_platform}"\n\nsysbus:\n    init:{init}\n"""')
        return "\n".join([
            f'mach create "{board.name}"',
            platform,
            f'emulation CreateUartPtyTerminal "uart" "{uart}" true',
            f"connector Connect {rb.renode_uart} uart",
            f"sysbus LoadELF @{firmware}",
            f'{rb.renode_cpu} AddHook `sysbus GetSymbolAddress "{ICOUNT_SYMBOL}"` """',
            _HOOK_PY.format(counts=counts) + '"""',
            "start",
            f'log "{STARTED_MARKER}"',
            "",
        ])

    def start(self, firmware: Path, board: Board) -> RenodeSession:
        assert isinstance(self.options, RenodeOptions)
        if not self.supports(board):
            raise InvalidInput(f"board '{board.name}' does not name renode in its emulators")
        if shutil.which(self.options.binary) is None:  # the configured one, not the default
            raise EmulatorError(f"{self.options.binary} is not on PATH")
        if not firmware.is_file():
            raise NotFound(f"no firmware image at {firmware}")
        workdir = Path(tempfile.mkdtemp(prefix="tinymlaas-renode-"))
        uart, counts = workdir / "uart", workdir / "icount.txt"
        resc = workdir / f"{board.name}.resc"
        resc.write_text(self.script(firmware.resolve(), board, uart, counts))
        cmd = [self.options.binary, "--disable-xwt", "--console", "--plain", str(resc)]
        return RenodeSession(board, cmd, uart, workdir, counts=counts,
                             connect_timeout=self.options.connect_timeout_s)

"""An emulator process whose board UART is a socket: what QEMU and Renode sessions share.

A reader thread moves every received byte into a buffer, so nothing the
firmware prints is lost between reads, and a read can notice that the
process died instead of waiting for bytes that will never come.

The emulator runs in a process group of its own and ``stop`` ends the whole
group: an emulator started through a launcher script (Renode's ``renode`` runs
``mono Renode.exe`` as its child) would otherwise outlive the session.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tinymlaas.edge.stream import UartBuffer, end_process_group
from tinymlaas.errors import EmulatorError, FirmwareCrashed
from tinymlaas.models import Board
from tinymlaas.plugins.base import EmulatorSession


class Link(Protocol):
    """The board's UART as the session reads and writes it (a socket has these methods)."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SocketSession(EmulatorSession):
    """A child process plus a connected stream (a socket, or a pty) to the board's UART."""

    def __init__(
        self,
        board: Board,
        cmd: list[str],
        connect: Callable[[], Link],
        workdir: Path,
        *,
        what: str,
        connect_timeout: float = 10.0,
        stdin_pipe: bool = False,
    ) -> None:
        self.board = board
        self.cmd = cmd
        self.what = what
        self.workdir = workdir
        self.log_path = workdir / "emulator.log"
        self.started_at = time.monotonic()
        self._uart = UartBuffer()
        self._stopped = False
        self._sock: Link | None = None
        self._reader: threading.Thread | None = None
        self._log = self.log_path.open("wb")
        # A console-mode emulator (Renode --console) quits when its stdin ends: keep a pipe
        # open for it until stop.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=workdir,
                                     start_new_session=True)
        try:
            self._started(connect_timeout)
            self._sock = self._connect(connect, connect_timeout)
        except BaseException:
            self.stop()
            raise
        self._reader = threading.Thread(target=self._read_loop, name=f"uart-{board.name}",
                                        daemon=True)
        self._reader.start()

    def _started(self, timeout: float) -> None:
        """Wait until the emulator has set the machine up; raise EmulatorError when it says it
        cannot. Nothing to wait for by default: the UART socket opening is the sign."""

    def _failure(self) -> str | None:
        """The emulator's own words when it has failed without exiting, else None."""
        return None

    def _connect(self, connect: Callable[[], Link], timeout: float) -> Link:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise EmulatorError(f"{self.what} exited with code {self.proc.returncode} "
                                    f"before its UART opened: {self.emulator_log()}")
            failure = self._failure()
            if failure:
                raise EmulatorError(f"{self.what} failed: {failure}")
            try:
                return connect()
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise EmulatorError(f"{self.what}: cannot connect to the UART within "
                                        f"{timeout:.0f} s ({exc})") from exc
                time.sleep(0.02)

    def _read_loop(self) -> None:
        assert self._sock is not None
        while True:
            try:
                chunk = self._sock.recv(4096)
            except OSError:
                chunk = b""
            self._uart.feed(chunk)
            if not chunk:
                return

    # -- EmulatorSession ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._sock is None or not self.running:
            raise self._stopped_error()
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._stopped_error() from exc

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        return self._uart.read_until(
            terminator, timeout, alive=lambda: self.proc.poll() is None, ended=self._stopped_error,
            timed_out=lambda: EmulatorError(f"{self.what}: no {terminator!r} on the UART within "
                                            f"{timeout:g} s; last output: {self.tail()!r}"))

    @property
    def running(self) -> bool:
        return not self._stopped and not self._uart.eof and self.proc.poll() is None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        end_process_group(self.proc)
        if self._reader is not None:
            # The emulator is gone, so its end of the UART is closed and the reader returns;
            # only then is the link closed (a reused descriptor must not be read).
            self._reader.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- diagnostics --------------------------------------------------------------

    def tail(self, n: int = 400) -> str:
        return self._uart.tail(n)

    @property
    def transcript(self) -> bytes:
        """Everything the board printed (the last 64 KB)."""
        return self._uart.transcript

    def emulator_log(self) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace").strip()[-400:]
        except OSError:
            return ""

    def _stopped_error(self) -> EmulatorError:
        if self._stopped:
            return EmulatorError(f"{self.what} was stopped")
        try:
            code: int | None = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        return FirmwareCrashed(
            f"the firmware on '{self.board.name}' stopped ({self.what} exited with code {code}); "
            f"last UART output: {self.tail().strip()!r}; emulator: {self.emulator_log()!r}",
            emulator_exit=code, uart=self.tail())

"""An emulator process whose board UART is a socket: what QEMU and Renode sessions share.

A reader thread moves every received byte into a buffer, so nothing the
firmware prints is lost between reads, and a read can notice that the
process died instead of waiting for bytes that will never come.

The emulator runs in a process group of its own and ``stop`` ends the whole
group: an emulator started through a launcher script (Renode's ``renode`` runs
``mono Renode.exe`` as its child) would otherwise outlive the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tinymlaas.errors import EmulatorError, FirmwareCrashed
from tinymlaas.models import Board
from tinymlaas.plugins.base import EmulatorSession

#: How much UART output a session keeps for error messages and transcripts.
TRANSCRIPT_BYTES = 64 * 1024


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
        self._buf = bytearray()
        self._transcript = bytearray()
        self._cond = threading.Condition()
        self._eof = False
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
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._transcript += chunk
                del self._transcript[:-TRANSCRIPT_BYTES]
                self._cond.notify_all()

    # -- EmulatorSession ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._sock is None or not self.running:
            raise self._stopped_error()
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._stopped_error() from exc

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                i = self._buf.find(terminator)
                if i >= 0:
                    out = bytes(self._buf[: i + len(terminator)])
                    del self._buf[: i + len(terminator)]
                    return out
                if self._eof or self.proc.poll() is not None:
                    # Let the reader drain what the board printed last (its fault report).
                    end = time.monotonic() + 0.5
                    while not self._eof and time.monotonic() < end:
                        self._cond.wait(0.05)
                    raise self._stopped_error()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EmulatorError(
                        f"{self.what}: no {terminator!r} on the UART within {timeout:g} s; "
                        f"last output: {self.tail()!r}")
                self._cond.wait(min(left, 0.05))

    @property
    def running(self) -> bool:
        return not self._stopped and not self._eof and self.proc.poll() is None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._end_group()
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

    def _end_group(self) -> None:
        """SIGTERM to the emulator's whole process group, SIGKILL to what is left of it."""
        pgid = self.proc.pid  # start_new_session: the child leads its own group
        if self.proc.returncode is None:
            _signal_group(pgid, signal.SIGTERM)
            # Wait for the leader without reaping it: while it is a zombie its group id
            # cannot be reused, so the SIGKILL below reaches only what it left behind.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _exited(pgid):
                time.sleep(0.02)
        # Children of a launcher may ignore SIGTERM, still be shutting down, or have
        # outlived a leader that exited by itself.
        _signal_group(pgid, signal.SIGKILL)
        self.proc.wait()

    # -- diagnostics --------------------------------------------------------------

    def tail(self, n: int = 400) -> str:
        return self._transcript[-n:].decode(errors="replace")

    @property
    def transcript(self) -> bytes:
        """Everything the board printed (the last 64 KB)."""
        with self._cond:
            return bytes(self._transcript)

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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already gone
        os.killpg(pgid, sig)


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped (a concurrent poll)

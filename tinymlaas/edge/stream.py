"""What every link to a board's UART needs, wherever the bytes come from (an emulator's
socket or pty, a flasher's stdout): a buffer a reader thread fills, so nothing the
firmware prints is lost between reads and a read notices when the other end is gone;
and ending a process with everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

#: How much of what the board printed is kept, for error messages and transcripts.
TRANSCRIPT_BYTES = 64 * 1024


class UartBuffer:
    """Bytes received from a board, read by terminator; thread-safe."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._transcript = bytearray()
        self._cond = threading.Condition()
        self.eof = False

    def feed(self, chunk: bytes) -> None:
        """Bytes from the reader thread; ``b""`` means the other end closed."""
        with self._cond:
            if not chunk:
                self.eof = True
            else:
                self._buf += chunk
                self._transcript += chunk
                del self._transcript[:-TRANSCRIPT_BYTES]
            self._cond.notify_all()

    def read_until(self, terminator: bytes, timeout: float, *, alive: Callable[[], bool],
                   ended: Callable[[], Exception], timed_out: Callable[[], Exception]) -> bytes:
        """Bytes up to and including ``terminator``; ``ended()`` once the other end is gone
        (after a moment to take what it printed last), ``timed_out()`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                i = self._buf.find(terminator)
                if i >= 0:
                    out = bytes(self._buf[: i + len(terminator)])
                    del self._buf[: i + len(terminator)]
                    return out
                if self.eof or not alive():
                    last = time.monotonic() + 0.5
                    while not self.eof and time.monotonic() < last:
                        self._cond.wait(0.05)
                    raise ended()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise timed_out()
                self._cond.wait(min(left, 0.05))

    def tail(self, n: int = 400) -> str:
        with self._cond:
            return self._transcript[-n:].decode(errors="replace")

    @property
    def transcript(self) -> bytes:
        with self._cond:
            return bytes(self._transcript)


def end_process_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM to a child's whole process group (it was started with ``start_new_session``),
    then SIGKILL to what is left: a launcher's children may ignore SIGTERM, still be shutting
    down, or have outlived a leader that exited by itself."""
    pgid = proc.pid
    if proc.returncode is None:
        _signal_group(pgid, signal.SIGTERM)
        # Wait for the leader without reaping it: while it is a zombie its group id cannot
        # be reused, so the SIGKILL below reaches only what it left behind.
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not _exited(pgid):
            time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already gone
        os.killpg(pgid, sig)


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped (a concurrent poll)

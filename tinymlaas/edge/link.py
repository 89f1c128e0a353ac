"""A byte link to an MCU through a flasher process: its stdin and stdout are the MCU's UART.

A bridge does not know how its MCU is programmed or reached: the one who
starts it names a *flasher*, a command that puts an image on the MCU and then
connects the MCU's UART to its own stdin/stdout (``tinymlaas emulate`` for an
emulated board; ``pyocd flash {image} && picocom ...`` style wrappers for a
real one). Restarting the flasher on a new image is "flashing".
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from pathlib import Path

from tinymlaas.edge.errors import EmulatorError, FirmwareCrashed
from tinymlaas.edge.stream import UartBuffer, end_process_group


def flasher_command(template: str, image: Path) -> list[str]:
    """The flasher's argv for one image: ``{image}`` in the template is the image's path."""
    argv = shlex.split(template)
    if not any("{image}" in a for a in argv):
        raise ValueError(f"the flasher command {template!r} does not name {{image}}")
    return [a.replace("{image}", str(image)) for a in argv]


class ProcessLink:
    """A running flasher: ``write``/``read_until`` speak to the MCU, ``stop`` ends it."""

    def __init__(self, argv: list[str], *, what: str = "flasher") -> None:
        self.what = what
        self._uart = UartBuffer()
        self._stderr = bytearray()
        self._stopped = False
        # Its own session: stopping the link ends the flasher and whatever it started.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"{what}-uart", daemon=True)
        self._reader.start()
        self._errors = threading.Thread(target=self._stderr_loop, name=f"{what}-log", daemon=True)
        self._errors.start()

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            self._uart.feed(chunk)
            if not chunk:
                return

    def _stderr_loop(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr += line
            del self._stderr[:-4096]

    def write(self, data: bytes) -> None:
        if self._stopped or self.proc.stdin is None or self.proc.poll() is not None:
            raise self._ended()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError as exc:
            raise self._ended() from exc

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        return self._uart.read_until(
            terminator, timeout, alive=lambda: True, ended=self._ended,
            timed_out=lambda: EmulatorError(f"{self.what}: no {terminator!r} from the MCU within "
                                            f"{timeout:g} s; last output: {self.tail()!r}"))

    @property
    def running(self) -> bool:
        return not self._stopped and not self._uart.eof and self.proc.poll() is None

    def tail(self, n: int = 400) -> str:
        return self._uart.tail(n)

    def _ended(self) -> EmulatorError:
        if self._stopped:
            return EmulatorError(f"{self.what} was stopped")
        try:
            code: int | None = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self._errors.join(timeout=1)
        said = self._stderr.decode(errors="replace").strip().splitlines()[-3:]
        return FirmwareCrashed(
            f"the MCU stopped ({self.what} exited with code {code}); last UART output: "
            f"{self.tail().strip()!r}; {self.what} said: {' | '.join(said)!r}",
            emulator_exit=code, uart=self.tail())

    def stop(self) -> None:
        """End the flasher and everything it started (its process group); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        end_process_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

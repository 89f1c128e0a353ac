"""The Renode session's process lifetime and fail-fast, with a stand-in launcher (no Renode
needed): like the real ``renode`` script, it starts its emulator as a child, which here
ignores SIGTERM; it reads the generated script and opens a pty where the script asks."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from tinymlaas.emulators.renode import STARTED_MARKER, RenodeEmulator, RenodeOptions
from tinymlaas.errors import EmulatorError
from tinymlaas.models import Board, ImageSpec

STAND_IN = """\
import os, pty, re, signal, subprocess, sys, time
script = open(sys.argv[-1]).read()
mode = os.environ["STAND_IN_MODE"]
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(os.environ["STAND_IN_PIDS"], "w").write(f"{{os.getpid()}} {{child.pid}}")
if mode == "exit":
    print("Could not start: no emulation core for this CPU", flush=True)
    sys.exit(3)
if mode == "script-error":
    print("There was an error executing command 'machine LoadPlatformDescription @nope.repl'")
    print("Could not find file 'nope.repl'.", flush=True)
    time.sleep(600)  # Renode waits at its prompt after a failed script
master, slave = pty.openpty()
os.symlink(os.ttyname(slave), re.search(r'CreateUartPtyTerminal "uart" "([^"]+)"', script)[1])
print("[INFO] Script: {marker}", flush=True)
os.write(master, b"TINYMLAAS READY board=b fw=1 model=0 proto=1\\n")
time.sleep(600)
"""


def _board() -> Board:
    return Board.model_validate(dict(
        name="b", description="", arch="armv7e-m", cpu="cortex-m4", family="cortex-m4",
        module_kind="c-source", compilers=["aot"], flash_bytes=1024, ram_bytes=1024,
        builder=ImageSpec(image="i", context="c"), emulators=["renode"],
        emulator={"renode_platform": "platforms/cpus/x.repl", "renode_uart": "sysbus.uart"}))


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RenodeEmulator, Path, Path]:
    launcher = tmp_path / "renode"
    launcher.write_text(f"#!{sys.executable}\n" + STAND_IN.format(marker=STARTED_MARKER))
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    pids = tmp_path / "pids"
    monkeypatch.setenv("STAND_IN_PIDS", str(pids))
    firmware = tmp_path / "firmware.elf"
    firmware.write_bytes(b"\x7fELF")
    emu = RenodeEmulator(RenodeOptions(binary=str(launcher), connect_timeout_s=20))
    return emu, firmware, pids


def _gone(*pids: int) -> bool:
    """All of ``pids`` have ended within a few seconds (a signal is delivered asynchronously)."""
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_stop_ends_the_launcher_and_the_emulator_it_started(
        stand_in: tuple[RenodeEmulator, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    emu, firmware, pids = stand_in
    monkeypatch.setenv("STAND_IN_MODE", "run")
    session = emu.start(firmware, _board())
    assert session.read_line(5).startswith("TINYMLAAS READY")
    launcher, child = (int(p) for p in pids.read_text().split())
    assert _alive(launcher) and _alive(child)
    session.stop()
    assert _gone(launcher, child), "a process of the session survived stop"
    assert not session.workdir.exists()


def test_a_failed_script_is_an_error_quoting_renode_within_seconds(
        stand_in: tuple[RenodeEmulator, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    emu, firmware, pids = stand_in
    monkeypatch.setenv("STAND_IN_MODE", "script-error")
    start = time.monotonic()
    with pytest.raises(EmulatorError, match=r"script failed: There was an error executing "
                       r"command 'machine LoadPlatformDescription @nope.repl' Could not find "
                       r"file 'nope.repl'\."):
        emu.start(firmware, _board())
    assert time.monotonic() - start < 5
    assert _gone(*(int(p) for p in pids.read_text().split()))


def test_an_early_exit_is_an_error_with_its_code_and_output(
        stand_in: tuple[RenodeEmulator, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    emu, firmware, pids = stand_in
    monkeypatch.setenv("STAND_IN_MODE", "exit")
    with pytest.raises(EmulatorError, match=r"exited with code 3 .*no emulation core"):
        emu.start(firmware, _board())
    _, child = (int(p) for p in pids.read_text().split())
    assert _gone(child), "the launcher's child outlived a failed start"


def test_the_script_puts_the_uart_on_a_pty_and_keeps_the_platform_offline() -> None:
    board = _board().model_copy(update={"emulator": {
        "renode_platform": "platforms/cpus/x.repl", "renode_uart": "sysbus.usart1",
        "renode_sysbus_init": ['Tag <0x0, 0x3> "A" 0x1']}})
    script = RenodeEmulator().script(Path("/fw/firmware.elf"), board, Path("/w/uart"),
                                     Path("/w/icount.txt"))
    assert 'machine LoadPlatformDescriptionFromString """\nusing "platforms/cpus/x.repl"\n\n' \
           'sysbus:\n    init:\n        Tag <0x0, 0x3> "A" 0x1\n"""' in script
    assert "ApplySVD" not in script and "Socket" not in script
    assert 'emulation CreateUartPtyTerminal "uart" "/w/uart" true' in script
    assert "connector Connect sysbus.usart1 uart" in script
    assert 'sysbus.cpu AddHook `sysbus GetSymbolAddress "icount_call"`' in script
    assert script.rstrip().endswith(f'start\nlog "{STARTED_MARKER}"')
    assert os.fspath("/w/icount.txt") in script

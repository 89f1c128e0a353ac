"""The Renode backend: its generated script everywhere; where Renode is installed, a real
boot on every board whose board.toml names renode, instruction counts from the emulated
CPU equal to QEMU's trace-validated ones, script errors within seconds, no leftovers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcu_helpers import TARGETS, EchoFirmware

from tinymlaas.edge.uart import UartClient
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.emulators.renode import RenodeEmulator, RenodeSession
from tinymlaas.errors import EmulatorError, InvalidInput
from tinymlaas.plugins.registry import plugins
from tinymlaas.services.mcu_device import McuDevice, emulator_for
from tinymlaas.targets import get_board, load_boards

BOARDS = load_boards(TARGETS)
RENODE_BOARDS = sorted(n for n, b in BOARDS.items() if "renode" in b.emulators)
#: Boards both emulators run: their counts are compared.
BOTH = sorted(n for n in RENODE_BOARDS if "qemu" in BOARDS[n].emulators)
#: Inputs of the stand-in module: an echo, then its spin loop of 256 * k iterations.
INPUTS = [b"\x01\x02\x03\x04", bytes([100, 3, 0, 0]), bytes([100, 10, 0, 0])]

renode_installed = pytest.mark.skipif(
    RenodeEmulator.unavailable() is not None,
    reason=f"{RenodeEmulator.unavailable()}: Renode has no package in the registries CI "
           "reaches; build it from source to run these")


def renode_pids() -> set[int]:
    """Live Renode processes (a zombie nobody reaped yet has ended)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"Renode.exe" in cmdline and state not in ("Z", "X"):
            pids.add(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def no_leftovers() -> Iterator[None]:
    before = renode_pids()
    yield
    deadline = time.monotonic() + 5
    while renode_pids() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert renode_pids() - before == set(), "Renode processes outlived their sessions"


def test_renode_is_a_registered_emulator() -> None:
    assert plugins("emulators")["renode"] is RenodeEmulator


def test_every_renode_board_has_a_valid_renode_table() -> None:
    from tinymlaas.emulators.renode import renode_board

    assert {"netduinoplus2", "stm32vldiscovery", "arduino-nano-33-ble-sense",
            "stm32f746g-disco", "itsybitsy-m4"} <= set(RENODE_BOARDS)
    for name in RENODE_BOARDS:
        assert renode_board(BOARDS[name]).renode_platform.startswith("platforms/")


def test_script_loads_the_platform_connects_the_uart_and_the_elf() -> None:
    board = get_board(TARGETS, "stm32vldiscovery")
    script = RenodeEmulator().script(Path("/fw/firmware.elf"), board, Path("/w/uart"),
                                     Path("/w/icount.txt")).splitlines()
    assert script[:9] == [
        'mach create "stm32vldiscovery"',
        'machine LoadPlatformDescriptionFromString """',
        'using "platforms/cpus/stm32f103.repl"',
        "",
        "sysbus:",
        "    init:",
        '        Tag <0x40021000, 0x40021003> "RCC_CR" 0x0A020083',
        '"""',
        'emulation CreateUartPtyTerminal "uart" "/w/uart" true',
    ]
    assert script[9:11] == ["connector Connect sysbus.usart1 uart",
                            "sysbus LoadELF @/fw/firmware.elf"]


def test_boards_renode_does_not_model_are_refused() -> None:
    for name in ("lm3s6965evb", "microbit", "mps2-an385"):
        board = get_board(TARGETS, name)
        assert not RenodeEmulator().supports(board)
        with pytest.raises(InvalidInput, match="does not name renode"):
            RenodeEmulator().script(Path("fw.elf"), board, Path("u"), Path("c"))
        with pytest.raises(InvalidInput, match=rf"no emulator can run board '{name}'.*renode"):
            emulator_for(board, "renode")


def test_the_emulator_is_the_named_one_else_the_setting_else_the_boards_first() -> None:
    from tinymlaas.config import EmulatorSettings

    board = get_board(TARGETS, "netduinoplus2")  # emulators = ["qemu", "renode"]
    assert emulator_for(board, settings=EmulatorSettings()).name == "qemu"
    assert emulator_for(board, "qemu", EmulatorSettings(backend="renode")).name == "qemu"
    if RenodeEmulator.unavailable() is None:
        assert emulator_for(board, settings=EmulatorSettings(backend="renode")).name == "renode"
    else:
        with pytest.raises(InvalidInput, match="renode: renode is not on PATH"):
            emulator_for(board, settings=EmulatorSettings(backend="renode"))
    nano = get_board(TARGETS, "arduino-nano-33-ble-sense")  # Renode only
    with pytest.raises(InvalidInput, match="qemu: does not model this board"):
        emulator_for(nano, settings=EmulatorSettings(backend="qemu"))


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("name", RENODE_BOARDS)
@pytest.mark.renode
@renode_installed
def test_firmware_boots_and_infers_under_renode(echo_firmware: EchoFirmware, name: str) -> None:
    board, elf, _fw = echo_firmware(name)
    with McuDevice(board, elf, emulator="renode") as device:
        assert device.banner.board == name
        result = device.infer(b"\x01\x02\x03\x04")
        assert result.output == b"\x02\x04\x06\x08" and result.instructions > 0
        assert isinstance(device.session, RenodeSession)
        assert device.session.instruction_counts() == [result.instructions]


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("name", RENODE_BOARDS)
@pytest.mark.renode
@renode_installed
def test_instruction_count_of_a_loop_of_known_length(echo_firmware: EchoFirmware, name: str) -> None:
    """The emulated CPU's count: 2 instructions per iteration, 256 iterations per step."""
    board, elf, _fw = echo_firmware(name)
    with RenodeEmulator().start(elf, board) as session:
        client = UartClient(session, timeout=10)
        client.wait_ready(10)
        base = client.infer(bytes([100, 0, 0, 0])).instructions
        errors = {k: client.infer(bytes([100, k, 0, 0])).instructions - base - 512 * k
                  for k in (1, 7, 50)}
    assert errors == dict.fromkeys(errors, 0)


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("name", BOTH)
@pytest.mark.qemu
@pytest.mark.renode
@renode_installed
def test_counts_equal_qemus_trace_validated_counts(echo_firmware: EchoFirmware, name: str) -> None:
    board, elf, _fw = echo_firmware(name)
    counts = {}
    for emulator in (QemuEmulator(), RenodeEmulator()):
        with emulator.start(elf, board) as session:
            client = UartClient(session, timeout=10)
            client.wait_ready(10)
            counts[emulator.name] = [client.infer(x).instructions for x in INPUTS]
    assert counts["renode"] == counts["qemu"]


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.renode
@renode_installed
def test_a_missing_platform_fails_within_seconds_quoting_renode(echo_firmware: EchoFirmware) -> None:
    board, elf, _fw = echo_firmware("netduinoplus2")
    broken = board.model_copy(update={"emulator": {**board.emulator, "renode_sysbus_init": None,
                                                   "renode_platform": "platforms/cpus/nrf51.repl"}})
    start = time.monotonic()
    with pytest.raises(EmulatorError, match=r"script failed: There was an error executing "
                       r"command 'machine LoadPlatformDescription @platforms/cpus/nrf51.repl' "
                       r"Could not find file 'platforms/cpus/nrf51.repl'"):
        RenodeEmulator().start(elf, broken)
    assert time.monotonic() - start < 15  # Mono's start-up is most of it


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.renode
@renode_installed
def test_a_bad_peripheral_name_fails_quoting_renode(echo_firmware: EchoFirmware) -> None:
    board, elf, _fw = echo_firmware("stm32vldiscovery")
    broken = board.model_copy(update={"emulator": {**board.emulator,
                                                   "renode_uart": "sysbus.usart9"}})
    with pytest.raises(EmulatorError, match=r"command 'connector Connect sysbus.usart9 uart'"):
        RenodeEmulator().start(elf, broken)

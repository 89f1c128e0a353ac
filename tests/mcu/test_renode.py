"""The Renode backend: its generated script everywhere, a real boot where Renode is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcu_helpers import TARGETS, EchoFirmware

from tinymlaas.emulators.renode import RenodeEmulator
from tinymlaas.errors import InvalidInput
from tinymlaas.plugins.registry import plugins
from tinymlaas.services.mcu_device import McuDevice, emulator_for
from tinymlaas.targets import get_board, load_boards

RENODE_BOARDS = sorted(n for n, b in load_boards(TARGETS).items() if RenodeEmulator().supports(b))


def test_renode_is_a_registered_emulator() -> None:
    assert plugins("emulators")["renode"] is RenodeEmulator


def test_script_loads_the_platform_connects_the_uart_and_the_elf() -> None:
    board = get_board(TARGETS, "netduinoplus2")
    script = RenodeEmulator().script(Path("/fw/firmware.elf"), board, 4567).splitlines()
    assert script == [
        'mach create "netduinoplus2"',
        "machine LoadPlatformDescription @platforms/cpus/stm32f4.repl",
        'emulation CreateServerSocketTerminal 4567 "uart" false',
        "connector Connect sysbus.usart1 uart",
        "sysbus LoadELF @/fw/firmware.elf",
        "start",
    ]


def test_boards_renode_does_not_model_are_refused() -> None:
    board = get_board(TARGETS, "lm3s6965evb")
    assert not RenodeEmulator().supports(board)
    with pytest.raises(InvalidInput, match="renode_platform"):
        RenodeEmulator().script(Path("fw.elf"), board, 1)
    with pytest.raises(InvalidInput, match=r"no emulator can run board 'lm3s6965evb'.*renode"):
        emulator_for(board, "renode")


@pytest.mark.renode
@pytest.mark.skipif(RenodeEmulator.unavailable() is not None,
                    reason=RenodeEmulator.unavailable() or "")
@pytest.mark.parametrize("name", RENODE_BOARDS)
def test_firmware_boots_and_infers_under_renode(echo_firmware: EchoFirmware, name: str) -> None:
    board, elf, _ = echo_firmware(name)
    with McuDevice(board, elf, emulator="renode", boot_timeout_s=60) as device:
        assert device.banner.board == name
        result = device.infer(b"\x01\x02\x03\x04")
        assert result.output == b"\x02\x04\x06\x08" and result.instructions > 0

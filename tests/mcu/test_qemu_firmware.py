"""The firmware under real QEMU, with the stand-in module: protocol robustness,
crash detection, and the instruction counter validated two ways."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from mcu_helpers import EchoFirmware, write_echo_module

from tinymlaas.edge.uart import (
    Command,
    DeviceError,
    ErrorCode,
    Frame,
    UartClient,
    cobs_encode,
    crc16,
)
from tinymlaas.emulators.qemu import QemuEmulator, QemuOptions, trace_counts
from tinymlaas.errors import FirmwareCrashed
from tinymlaas.plugins.base import EmulatorSession

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(QemuEmulator.unavailable() is not None,
                       reason=QemuEmulator.unavailable() or ""),
]


@pytest.fixture
def lm3s(echo_firmware: EchoFirmware) -> Iterator[tuple[EmulatorSession, UartClient]]:
    board, elf, _ = echo_firmware("lm3s6965evb")
    with QemuEmulator().start(elf, board) as session:
        client = UartClient(session, timeout=5)
        client.wait_ready(5)
        yield session, client


def error_of(client: UartClient, wire: bytes) -> ErrorCode:
    client.link.write(wire)
    reply = Frame.decode(client.link.read_until(b"\x00", 5))
    assert reply.cmd == Command.ERROR
    return ErrorCode(reply.payload[0])


def test_bad_frames_get_error_frames_never_a_hang(
        lm3s: tuple[EmulatorSession, UartClient]) -> None:
    session, client = lm3s
    body = struct.pack("<BBH", Command.INFER, 9, 4) + b"\x01\x02\x03\x04"
    assert error_of(client, cobs_encode(body + b"\x00\x00") + b"\x00") == ErrorCode.BAD_CRC
    short = body[:-1]
    assert error_of(client, cobs_encode(short + struct.pack("<H", crc16(short))) + b"\x00") \
        == ErrorCode.BAD_LENGTH
    assert error_of(client, b"\x05\x01\x00") == ErrorCode.BAD_FRAME
    assert error_of(client, b"\x07" * 2000 + b"\x00") == ErrorCode.TOO_LONG
    with pytest.raises(DeviceError, match="UNKNOWN_CMD"):
        client.request(0x42)
    with pytest.raises(DeviceError, match="BAD_LENGTH"):
        client.request(Command.INFER, b"\x01")
    with pytest.raises(DeviceError, match="INVOKE"):
        client.infer(b"\x80\x00\x00\x00")
    with pytest.raises(DeviceError, match="UNSUPPORTED"):
        client.model_write(0, b"\x09")
    # half a frame, then the resync byte: answered as malformed, and the device is in step
    session.write(Frame(Command.INFER, 1, b"\x01\x02\x03\x04").encode()[:5])
    assert error_of(client, b"\x00") == ErrorCode.BAD_FRAME
    assert client.infer(b"\x01\x02\x03\xfa").output == b"\x02\x04\x06\xfe"


def test_the_firmware_describes_each_tensor(lm3s: tuple[EmulatorSession, UartClient]) -> None:
    """INFO counts the tensors; TENSOR k says each one's dtype, shape, quantization and place."""
    _, client = lm3s
    info = client.info()
    assert (info["proto"], info["inputs"], info["outputs"]) == ("2", "1", "1")
    assert client.tensors() == {
        "inputs": [{"name": "input0", "dtype": "int8", "shape": [1, 4], "offset": 0, "bytes": 4,
                    "scale": 0.5, "zero_point": -3}],
        "outputs": [{"name": "output0", "dtype": "int8", "shape": [1, 4], "offset": 0, "bytes": 4,
                     "scale": 0.25, "zero_point": 0}]}
    with pytest.raises(DeviceError, match="OUT_OF_RANGE"):
        client.request(Command.TENSOR, b"\x02")
    with pytest.raises(DeviceError, match="BAD_LENGTH"):
        client.request(Command.TENSOR, b"")


@pytest.mark.parametrize("name", ["microbit", "lm3s6965evb"])
def test_a_fault_ends_the_session_with_the_fault_report(echo_firmware: EchoFirmware,
                                                        name: str) -> None:
    board, elf, _ = echo_firmware(name)
    with QemuEmulator().start(elf, board) as session:
        client = UartClient(session, timeout=5)
        client.wait_ready(5)
        with pytest.raises(FirmwareCrashed, match=r"HARDFAULT exception=0x00000003 pc=0x"):
            client.infer(b"\x7f\x00\x00\x00")
        assert not session.running


def spin_count(client: UartClient, k: int) -> int:
    return client.infer(bytes([100, k, 0, 0])).instructions


@pytest.mark.parametrize("name", ["microbit", "mps2-an385", "netduinoplus2", "stm32vldiscovery"])
def test_instruction_count_of_a_loop_of_known_length(echo_firmware: EchoFirmware,
                                                     name: str) -> None:
    """2 instructions per iteration, 256 iterations per step: exact, also across the
    SysTick wraps that 36 runs of up to 130k instructions are sure to include."""
    board, elf, _ = echo_firmware(name)
    with QemuEmulator().start(elf, board) as session:
        client = UartClient(session, timeout=10)
        client.wait_ready(5)
        base = spin_count(client, 0)
        errors = {k: spin_count(client, k) - base - 512 * k for k in range(1, 256, 7)}
    assert errors == dict.fromkeys(errors, 0)


@pytest.mark.parametrize("name", ["mps2-an385", "microbit"])
def test_instruction_count_equals_the_single_step_trace(echo_firmware: EchoFirmware,
                                                        tmp_path: Path, name: str) -> None:
    board, elf, _ = echo_firmware(name)
    trace = tmp_path / "trace.log"
    inputs = [b"\x01\x02\x03\x04", bytes([100, 3, 0, 0])]
    with QemuEmulator(QemuOptions(trace=trace)).start(elf, board) as session:
        client = UartClient(session, timeout=30)
        client.wait_ready(30)
        counted = [client.infer(x).instructions for x in inputs]
    assert trace_counts(trace, elf) == counted


def test_model_update_build_lets_the_uart_rewrite_model_data(
        cortex_m_builder: ModuleType, tmp_path: Path) -> None:
    from tinymlaas.targets import get_board

    board = get_board(Path(cortex_m_builder.HERE).parents[1], "microbit")
    module_dir = tmp_path / "module"
    write_echo_module(module_dir)
    out = tmp_path / "fw"
    cortex_m_builder.build(module_dir / "model.tflite", board, out, "1.0.0",
                           cortex_m_builder.Options(model_update=True))
    with QemuEmulator().start(out / "firmware.elf", board) as session:
        client = UartClient(session, timeout=5)
        client.wait_ready(5)
        info = client.info()
        assert info["model_update"] == "1" and int(info["model_region_bytes"]) >= 4
        assert int(info["model_region"], 16) >= 0x2000_0000  # in RAM
        assert client.infer(b"\x00\x00\x00\x00").output == b"\x01\x02\x03\x04"
        client.model_write(0, b"\x0a\x0b\x0c\x0d")
        assert client.infer(b"\x00\x00\x00\x00").output == b"\x0a\x0b\x0c\x0d"
        with pytest.raises(DeviceError, match="OUT_OF_RANGE"):
            client.model_write(int(info["model_region_bytes"]), b"\x01")

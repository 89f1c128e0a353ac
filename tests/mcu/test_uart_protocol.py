"""The framed protocol's codec and client, against an in-memory device."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinymlaas.edge.uart import (
    Command,
    DeviceError,
    ErrorCode,
    Frame,
    UartClient,
    cobs_decode,
    cobs_encode,
    crc16,
)
from tinymlaas.errors import DeviceUnreachable, InvalidInput


@given(st.binary(max_size=1200))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("n", [253, 254, 255, 508, 509])
def test_cobs_long_runs_and_trailing_zero(n: int) -> None:
    for data in (b"\x01" * n, b"\x01" * n + b"\x00", b"\x00" + b"\x02" * n):
        assert cobs_decode(cobs_encode(data)) == data


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the catalogue check value


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600))
def test_frame_round_trip(cmd: int, seq: int, payload: bytes) -> None:
    wire = Frame(cmd, seq, payload).encode()
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    assert Frame.decode(wire) == Frame(cmd, seq, payload)


def test_frame_rejects_corruption() -> None:
    body = struct.pack("<BBH", 2, 7, 4) + b"abcd"
    bad_crc = struct.pack("<H", crc16(body) ^ 0x0100)
    with pytest.raises(ValueError, match="CRC"):
        Frame.decode(cobs_encode(body + bad_crc) + b"\x00")
    with pytest.raises(ValueError, match="length field"):
        Frame.decode(cobs_encode(body[:-1] + struct.pack("<H", crc16(body[:-1]))))
    with pytest.raises(ValueError, match="shorter"):
        Frame.decode(cobs_encode(b"\x01\x02") + b"\x00")


class FakeDevice:
    """Replies like the firmware: INFO, INFER (+1 per byte), ERROR for the rest."""

    def __init__(self) -> None:
        self.out = bytearray(b"boot noise\nTINYMLAAS READY board=b fw=2.0 model=abc proto=1\n")

    def write(self, data: bytes) -> None:
        for wire in data.split(b"\x00")[:-1]:
            if not wire:
                continue
            req = Frame.decode(wire)
            if req.cmd == Command.INFO:
                reply = Frame(req.cmd | 0x80, req.seq, b"input_bytes=2\nboard=b\n")
            elif req.cmd == Command.INFER:
                self.out += Frame(0x82, (req.seq - 1) & 0xFF, b"stale").encode()
                reply = Frame(0x82, req.seq,
                              struct.pack("<I", 99) + bytes((b + 1) & 0xFF for b in req.payload))
            else:
                reply = Frame(Command.ERROR, req.seq, bytes([ErrorCode.UNKNOWN_CMD]) + b"nope")
            self.out += reply.encode()

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        i = self.out.find(terminator)
        if i < 0:
            raise DeviceUnreachable("nothing more")
        chunk = bytes(self.out[: i + len(terminator)])
        del self.out[: i + len(terminator)]
        return chunk


def test_client_banner_info_infer_and_errors() -> None:
    client = UartClient(FakeDevice())
    banner = client.wait_ready(1)
    assert (banner.board, banner.firmware_version, banner.model_sha256) == ("b", "2.0", "abc")
    assert client.info()["input_bytes"] == "2"
    result = client.infer(b"\x01\xff")
    assert result.output == b"\x02\x00" and result.instructions == 99  # stale reply skipped
    assert list(result.values()) == [2, 0]
    with pytest.raises(InvalidInput, match="2 input bytes"):
        client.infer(b"\x01")
    with pytest.raises(DeviceError, match="UNKNOWN_CMD: nope") as exc:
        client.request(0x33)
    assert exc.value.error == ErrorCode.UNKNOWN_CMD


def test_a_protocol_1_device_has_one_input_and_one_output_from_info() -> None:
    """Firmware older than TENSOR: the client describes its tensors from INFO alone."""
    dev = FakeDevice()
    client = UartClient(dev)
    client.wait_ready(1)
    client._info = {"input_bytes": "2", "output_bytes": "8", "input_scale_bits": "0x3f000000",
                    "input_zero_point": "-1", "output_scale_bits": "0x00000000", "output_zero_point": "0"}
    assert client.tensors() == {
        "inputs": [{"name": "input", "dtype": "int8", "shape": [1, 2], "scale": 0.5, "zero_point": -1,
                    "offset": 0, "bytes": 2}],
        "outputs": [{"name": "output", "dtype": "float32", "shape": [1, 2], "offset": 0, "bytes": 8}]}

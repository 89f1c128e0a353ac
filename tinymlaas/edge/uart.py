"""The framed UART protocol of the Cortex-M firmware, and a client for it.

Wire format (``targets/_cortex-m/builder/firmware/proto.h`` is the other half)::

    wire  := COBS(frame) 0x00          a 0x00 always ends a frame, so resync is free
    frame := cmd:u8 seq:u8 len:u16le payload[len] crc:u16le
    crc   := CRC-16/CCITT-FALSE over cmd..payload

A reply carries ``cmd | 0x80`` and the request's ``seq``; a bad request gets an
ERROR frame (``code:u8`` + text). After reset the firmware prints one text line,
``TINYMLAAS READY board=.. fw=.. model=.. proto=1``, then speaks only frames.

The client works over anything with ``write(bytes)`` and ``read_until(term,
timeout)``: an emulator session, or a serial port wrapped the same way.
"""

from __future__ import annotations

import binascii
import enum
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinymlaas.edge.errors import DeviceUnreachable, InvalidInput
from tinymlaas.edge.tensors import TFLITE_TYPES

READY = "TINYMLAAS READY"
#: 2 added TENSOR (several inputs and outputs); a version-1 device has one of each.
PROTO_VERSION = 2
PROTO_VERSIONS = (1, 2)
MAX_MODEL_CHUNK = 256
#: Largest INFO reply payload the firmware builds.
INFO_MAX = 512
HEADER, TRAILER = 4, 2


class Command(enum.IntEnum):
    INFO = 0x01
    INFER = 0x02
    TENSOR = 0x03
    MODEL_WRITE = 0x10
    ERROR = 0x7F
    REPLY = 0x80


class ErrorCode(enum.IntEnum):
    BAD_FRAME = 1
    BAD_CRC = 2
    BAD_LENGTH = 3
    TOO_LONG = 4
    UNKNOWN_CMD = 5
    INVOKE = 6
    UNSUPPORTED = 7
    OUT_OF_RANGE = 8


class DeviceError(DeviceUnreachable):
    """The device answered with an ERROR frame."""

    code = "device_error"

    def __init__(self, message: str, error: ErrorCode | int, **details: object) -> None:
        super().__init__(message, device_error=int(error), **details)
        self.error = error


class ByteLink(Protocol):
    def write(self, data: bytes) -> None: ...

    def read_until(self, terminator: bytes, timeout: float) -> bytes: ...


def frame_buffer_bytes(input_bytes: int, output_bytes: int) -> int:
    """RAM of the firmware's RX and TX frame buffers for a model (app.c sizes them so).

    RX holds the largest request (an input tensor or a model-write chunk with its
    offset) in COBS form; TX the largest reply (instruction count + output, or INFO).
    """
    rx = HEADER + max(input_bytes, 4 + MAX_MODEL_CHUNK) + TRAILER
    rx += rx // 254 + 2
    tx = HEADER + max(4 + output_bytes, INFO_MAX) + TRAILER
    return rx + tx


# -- codec ----------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as the firmware computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while True:
        j = i
        while j < len(data) and data[j] != 0 and j - i < 254:
            j += 1
        out.append(j - i + 1)
        out += data[i:j]
        if j >= len(data):
            return bytes(out)
        i = j + 1 if j - i < 254 else j


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("malformed COBS block")
        out += data[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes = b""

    def encode(self) -> bytes:
        """The frame as it goes on the wire, delimiter included."""
        body = struct.pack("<BBH", self.cmd, self.seq, len(self.payload)) + self.payload
        return cobs_encode(body + struct.pack("<H", crc16(body))) + b"\x00"

    @classmethod
    def decode(cls, wire: bytes) -> Frame:
        """Parse one wire frame (with or without its 0x00); ValueError says what is wrong."""
        raw = cobs_decode(wire.rstrip(b"\x00"))
        if len(raw) < 6:
            raise ValueError(f"frame of {len(raw)} bytes is shorter than a header")
        cmd, seq, length = struct.unpack_from("<BBH", raw)
        if length != len(raw) - 6:
            raise ValueError(f"length field {length} but {len(raw) - 6} payload bytes")
        (crc,) = struct.unpack_from("<H", raw, len(raw) - 2)
        if crc != crc16(raw[:-2]):
            raise ValueError("CRC mismatch")
        return cls(cmd, seq, raw[4:-2])


def quantization(info: dict[str, str], which: str) -> tuple[float, int]:
    """A tensor's (scale, zero point) as the firmware's INFO reports them (scale as float bits)."""
    bits = int(info[f"{which}_scale_bits"], 16)
    return struct.unpack("<f", struct.pack("<I", bits))[0], int(info[f"{which}_zero_point"])


def _info_spec(info: dict[str, str], which: str) -> dict[str, Any]:
    """The one input or output of a protocol-1 device, from INFO (a flat int8 or float tensor)."""
    scale, zp = quantization(info, which)
    n = int(info[f"{which}_bytes"])
    if scale == 0:
        return {"name": which, "dtype": "float32", "shape": [1, n // 4], "offset": 0, "bytes": n}
    return {"name": which, "dtype": "int8", "shape": [1, n], "scale": scale, "zero_point": zp,
            "offset": 0, "bytes": n}


# -- client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Banner:
    board: str
    firmware_version: str
    model_sha256: str
    proto: int
    line: str

    @classmethod
    def parse(cls, line: str) -> Banner:
        fields = dict(kv.split("=", 1) for kv in line[len(READY):].split() if "=" in kv)
        try:
            return cls(fields["board"], fields["fw"], fields["model"], int(fields["proto"]), line)
        except (KeyError, ValueError) as exc:
            raise DeviceUnreachable(f"malformed ready banner: {line!r}") from exc


@dataclass(frozen=True)
class Inference:
    output: bytes
    instructions: int

    def values(self, dtype: str = "int8") -> np.ndarray:
        return np.frombuffer(self.output, dtype=np.dtype(dtype))


class UartClient:
    """Speaks the firmware's framed protocol over a byte link (one request at a time)."""

    def __init__(self, link: ByteLink, timeout: float = 10.0) -> None:
        self.link = link
        self.timeout = timeout
        self._seq = 0
        self.banner: Banner | None = None
        self._info: dict[str, str] | None = None

    def wait_ready(self, timeout: float = 10.0) -> Banner:
        """Read text lines until the ready banner (lines before it are boot noise)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceUnreachable(f"no '{READY}' banner within {timeout:g} s")
            line = self.link.read_until(b"\n", left).decode(errors="replace").strip()
            if line.startswith(READY):
                self.banner = Banner.parse(line)
                if self.banner.proto not in PROTO_VERSIONS:
                    raise DeviceUnreachable(f"device speaks protocol {self.banner.proto}, this "
                                            f"client {' and '.join(map(str, PROTO_VERSIONS))}")
                return self.banner

    def request(self, cmd: Command | int, payload: bytes = b"",
                timeout: float | None = None) -> Frame:
        """Send one request and return its reply; ERROR replies raise DeviceError."""
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        self.link.write(Frame(int(cmd), seq, payload).encode())
        return self.read_reply(seq, timeout)

    def read_reply(self, seq: int, timeout: float | None = None) -> Frame:
        """The next frame with this ``seq``; stale replies to abandoned requests are skipped."""
        while True:
            wire = self.link.read_until(b"\x00", self.timeout if timeout is None else timeout)
            if wire == b"\x00":
                continue
            try:
                frame = Frame.decode(wire)
            except ValueError as exc:
                raise DeviceUnreachable(f"garbled reply from the device: {exc}") from exc
            if frame.seq != seq:
                continue
            if frame.cmd == Command.ERROR:
                raise self._error(frame)
            return frame

    @staticmethod
    def _error(frame: Frame) -> DeviceError:
        code = frame.payload[0] if frame.payload else 0
        text = frame.payload[1:].decode(errors="replace")
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = str(code)
        return DeviceError(f"device refused the request: {name}: {text}", code)

    def info(self) -> dict[str, str]:
        """The device's self-description (board, model hash, tensor sizes, calibration...)."""
        frame = self.request(Command.INFO)
        text = frame.payload.decode(errors="replace")
        self._info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return self._info

    def tensors(self) -> dict[str, list[dict[str, Any]]]:
        """Every input and output tensor as the device describes it: name, dtype, shape,
        quantization (none for a float tensor) and its place in the packed INFER payloads."""
        info = self._info or self.info()
        if "inputs" not in info:  # protocol 1: one input, one output, from INFO
            return {"inputs": [_info_spec(info, "input")], "outputs": [_info_spec(info, "output")]}
        n_in, n_out = int(info["inputs"]), int(info["outputs"])
        specs: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
        for k in range(n_in + n_out):
            payload = self.request(Command.TENSOR, bytes([k])).payload
            _, is_output, dtype, rank, nbytes, offset, scale, zp = struct.unpack_from("<BBBBIIfi", payload)
            which = "outputs" if is_output else "inputs"
            spec: dict[str, Any] = {
                "name": f"{which[:-1]}{len(specs[which])}",
                "dtype": TFLITE_TYPES.get(dtype, f"type{dtype}"),
                "shape": list(struct.unpack_from(f"<{rank}i", payload, 20)),
                "offset": offset, "bytes": nbytes}
            if scale != 0.0:
                spec |= {"scale": scale, "zero_point": zp}
            specs[which].append(spec)
        return specs

    def infer(self, tensor: bytes | np.ndarray) -> Inference:
        """One inference on the packed input bytes (every input tensor in its place); returns the
        packed output bytes and the instruction count."""
        data = tensor.tobytes() if isinstance(tensor, np.ndarray) else bytes(tensor)
        info = self._info or self.info()
        want = int(info["input_bytes"])
        if len(data) != want:
            raise InvalidInput(f"the model takes {want} input bytes, got {len(data)}")
        frame = self.request(Command.INFER, data)
        (instructions,) = struct.unpack_from("<I", frame.payload)
        return Inference(output=frame.payload[4:], instructions=instructions)

    def model_write(self, offset: int, data: bytes) -> None:
        """Overwrite model-region bytes (firmware built with ``--model-update`` only)."""
        for start in range(0, len(data), MAX_MODEL_CHUNK):
            chunk = data[start : start + MAX_MODEL_CHUNK]
            self.request(Command.MODEL_WRITE, struct.pack("<I", offset + start) + chunk)

    def resync(self) -> None:
        """End any half-sent frame on the device (an empty frame is ignored by it)."""
        self.link.write(b"\x00")

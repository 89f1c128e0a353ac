"""Reading models: metadata is right and bad bytes give one clear error."""

from __future__ import annotations

import hashlib

import pytest

from tinymlaas import tflite
from tinymlaas.errors import InvalidInput


def test_hello_world_metadata(hello_world: bytes) -> None:
    info = tflite.inspect(hello_world)
    assert info.sha256 == hashlib.sha256(hello_world).hexdigest()
    assert info.ops == ["FULLY_CONNECTED"]
    assert info.operators == 3
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.shape, inp.dtype, out.shape, out.dtype) == ([1, 1], "int8", [1, 1], "int8")
    assert inp.scale and out.scale and inp.zero_point is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00" * 3, "TFL3"),
        (b"hello, this is not a model at all", "TFL3"),
    ],
)
def test_refuses_non_models(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tflite.inspect(data)


@pytest.mark.parametrize("cut", [8, 40, 96, 300])
def test_truncated_model_is_corrupt(hello_world: bytes, cut: int) -> None:
    with pytest.raises(InvalidInput, match="corrupt"):
        tflite.inspect(hello_world[:cut])


def test_op_and_dtype_names() -> None:
    assert tflite.op_name(9) == "FULLY_CONNECTED"
    assert tflite.dtype_name(9) == "int8"
    assert tflite.op_name(100000).startswith("UNKNOWN")


@pytest.mark.parametrize("tail", [b"\0" * 64, b"garbage!" * 40, "glued"])
def test_trailing_bytes_after_the_model_are_refused(hello_world: bytes, tail: bytes | str) -> None:
    extra = hello_world if tail == "glued" else tail  # a second model appended counts too
    assert isinstance(extra, bytes)
    with pytest.raises(InvalidInput, match=f"has {len(extra):,} bytes after the end of the TFLite") as e:
        tflite.inspect(hello_world + extra)
    assert e.value.details["model_end"] == len(hello_world)


def test_a_whole_model_has_no_trailing_bytes(hello_world: bytes) -> None:
    model = tflite.parse(hello_world)
    tflite.check_end(hello_world, model)  # nothing raised: its last bytes are read
    assert not tflite._reads_within(hello_world, model, len(hello_world) - tflite.END_SLACK)

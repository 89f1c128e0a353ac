"""The packed form of several tensors, as devices carry a model's inputs and outputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinymlaas.edge.tensors import laid_out, named, pack, packed_bytes, unpack
from tinymlaas.errors import InvalidInput

DTYPES = ["int8", "int16", "int32", "float32", "uint8"]


def test_each_tensor_starts_at_the_next_multiple_of_its_element_size() -> None:
    specs = [{"name": "a", "dtype": "int8", "shape": [1, 3]},
             {"name": "b", "dtype": "float32", "shape": [2]},
             {"name": "c", "dtype": "int16", "shape": [1, 1]},
             {"name": "d", "dtype": "int8", "shape": [5]}]
    assert [(s["offset"], s["bytes"]) for s in laid_out(specs)] == [(0, 3), (4, 8), (12, 2), (14, 5)]
    assert packed_bytes(specs) == 19
    assert packed_bytes([]) == 0


@given(st.lists(st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(1, 4), min_size=1, max_size=3)),
                min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_pack_and_unpack_round_trip(tensors: list[tuple[str, list[int]]], seed: int) -> None:
    specs = [{"name": f"t{k}", "dtype": d, "shape": shape} for k, (d, shape) in enumerate(tensors)]
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-100, 100, shape).astype(d) for d, shape in tensors]
    raw = pack(specs, arrays)
    assert len(raw) == packed_bytes(specs)
    for spec, want, got in zip(laid_out(specs), arrays, unpack(specs, raw), strict=True):
        assert got.tobytes() == want.tobytes()
        assert raw[spec["offset"]:spec["offset"] + spec["bytes"]] == want.tobytes()


def test_one_tensor_is_its_own_bytes() -> None:
    x = np.arange(-3, 3, dtype=np.int8)
    assert pack([{"name": "x", "dtype": "int8", "shape": [1, 6]}], [x]) == x.tobytes()


def test_wrong_counts_and_sizes_are_refused_by_name() -> None:
    specs = [{"name": "a", "dtype": "int8", "shape": [2]}, {"name": "b", "dtype": "int8", "shape": [3]}]
    with pytest.raises(InvalidInput, match="takes 2 input tensors, not 1"):
        pack(specs, [np.zeros(2)])
    with pytest.raises(InvalidInput, match="tensor 'b' takes 3 values, not 4"):
        pack(specs, [np.zeros(2), np.zeros(4)])
    with pytest.raises(InvalidInput, match="dtype 'complex64'"):
        laid_out([{"name": "z", "dtype": "complex64", "shape": [1]}])
    with pytest.raises(ValueError, match="4 bytes do not hold the 2 tensors"):
        unpack(specs, bytes(4))


def test_a_devices_tensors_take_the_modules_names_only_where_they_match() -> None:
    device = {"inputs": [{"name": "input0", "dtype": "int8", "shape": [1, 2]}],
              "outputs": [{"name": "output0", "dtype": "int8", "shape": [1, 3]}]}
    module = {"inputs": [{"name": "x", "shape": [1, 2]}], "outputs": [{"name": "y", "shape": [1, 4]}]}
    got = named(device, module)
    assert [got["inputs"][0]["name"], got["outputs"][0]["name"]] == ["x", "output0"]
    assert device["inputs"][0]["name"] == "input0"  # the device's own description is left alone
    assert named(device, {}) == device

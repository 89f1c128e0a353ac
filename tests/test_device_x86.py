"""The x86 firmware app, run in-process against the real TFLM."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from tinymlaas.edge import x86
from tinymlaas.edge.tensors import pack
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.services.x86_device import DeviceClient


def _image(model: bytes, path: Path) -> Path:
    import zipfile

    from tinymlaas import tflite

    info = tflite.inspect(model)
    manifest = {
        "board": "x86-tflm", "version": "9.9.9", "model_sha256": info.sha256, "arena_bytes": 8192,
        "inputs": [t.model_dump() for t in info.inputs],
        "outputs": [t.model_dump() for t in info.outputs],
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(x86.MODEL_MEMBER, model)
        zf.writestr(x86.MANIFEST_MEMBER, json.dumps(manifest))
    return path


@pytest.fixture
def image(hello_world: bytes, tmp_path: Path) -> Path:
    return _image(hello_world, tmp_path / "firmware.pyz")


def test_several_inputs_and_outputs(sensor_fusion: bytes, tmp_path: Path) -> None:
    """Each input by its own quantization, each output dequantized by its own; the packed bytes
    LwM2M carries hold every tensor in its place."""
    rt = x86.Runtime(x86.FirmwareImage.open(_image(sensor_fusion, tmp_path / "fw.pyz")))
    ins, outs = rt.model.inputs, rt.model.outputs
    assert [(s["offset"], s["bytes"]) for s in ins] == [(0, 8), (8, 3)]
    oracle = Tflm(sensor_fusion, inputs=2, outputs=2)
    motion, context = np.linspace(-2, 2, 8), np.array([30.0, 14.0, 0.5])
    reply = rt.infer({"inputs": [{"values": motion.tolist()}, {"values": context.tolist()}]})
    xs = [quantize(v, s["scale"], s["zero_point"], np.int8)
          for v, s in zip((motion, context), ins, strict=True)]
    want = oracle.invoke_all(xs)
    assert [o["output"] for o in reply["outputs"]] == [w.ravel().tolist() for w in want]
    assert [o["name"] for o in reply["outputs"]] == [s["name"] for s in outs]
    for o, s in zip(reply["outputs"], outs, strict=True):
        assert o["values"] == [(v - s["zero_point"]) * s["scale"] for v in o["output"]]
    assert reply["output"] == reply["outputs"][0]["output"]
    raw, _ = rt.infer_bytes(pack(ins, xs))
    assert raw == pack(outs, want) and len(raw) == 4
    with pytest.raises(ValueError, match="takes 2 input tensors: send 'inputs'"):
        rt.infer({"values": motion.tolist()})
    with pytest.raises(ValueError, match="takes 2 input tensors, not 1"):
        rt.infer({"inputs": [{"values": motion.tolist()}]})
    with pytest.raises(ValueError, match="'serving_default_context:0' has 8 elements"):
        rt.infer({"inputs": [{"values": motion.tolist()}, {"values": motion.tolist()}]})
    with pytest.raises(ValueError, match="input of 8 bytes; the model takes 11"):
        rt.infer_bytes(bytes(8))


def test_runtime_matches_tflm(image: Path, hello_world: bytes) -> None:
    rt = x86.Runtime(x86.FirmwareImage.open(image))
    oracle = Tflm(hello_world)
    for q in (-128, -5, 0, 77, 127):
        assert rt.infer({"input": [q]})["output"] == oracle.invoke([[q]]).ravel().tolist()
    assert rt.info()["inferences"] == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'input'"),
        ({"input": [1, 2]}, "takes 1"),
        ({"input": [1000]}, "must be int8 integers"),
        ({"inputs": [1]}, "list of objects"),
    ],
)
def test_runtime_refuses_bad_requests(image: Path, body: dict, message: str) -> None:
    rt = x86.Runtime(x86.FirmwareImage.open(image))
    with pytest.raises(ValueError, match=message):
        rt.infer(body)


def test_http_server_answers_and_rejects(image: Path) -> None:
    from http.server import ThreadingHTTPServer

    from tinymlaas.errors import DeviceUnreachable

    rt = x86.Runtime(x86.FirmwareImage.open(image))
    server = ThreadingHTTPServer(("127.0.0.1", 0), x86.make_handler(rt))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dev = DeviceClient(server.server_address[1])
        assert dev.info()["version"] == "9.9.9"
        reply = dev.infer([1.0])
        assert len(reply["output"]) == 1 and abs(reply["values"][0] - 0.84) < 0.2
        with pytest.raises(DeviceUnreachable, match="takes 1"):
            dev.infer([1.0, 2.0])
    finally:
        server.shutdown()
        server.server_close()

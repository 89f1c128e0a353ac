"""The x86 firmware app, run in-process against the real TFLM."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tinymlaas.edge import x86
from tinymlaas.edge.tflm import Tflm
from tinymlaas.services.x86_device import DeviceClient


@pytest.fixture
def image(hello_world: bytes, tmp_path: Path) -> Path:
    import zipfile

    from tinymlaas import tflite

    info = tflite.inspect(hello_world)
    manifest = {
        "board": "x86-tflm", "version": "9.9.9", "model_sha256": info.sha256, "arena_bytes": 4096,
        "inputs": [t.model_dump() for t in info.inputs],
        "outputs": [t.model_dump() for t in info.outputs],
    }
    path = tmp_path / "firmware.pyz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(x86.MODEL_MEMBER, hello_world)
        zf.writestr(x86.MANIFEST_MEMBER, json.dumps(manifest))
    return path


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
        ({"input": [1000]}, "fit int8"),
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

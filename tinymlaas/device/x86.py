"""The x86 device firmware: TFLM interpreter + model, serving inferences.

This module is packed (with :mod:`tinymlaas.tflm`) into ``firmware.pyz``, the
OS image the x86 builder writes; the device container boots it. It needs only
the standard library, numpy and the ``tflite_micro`` wheel.

HTTP on loopback:
    GET  /info   -> board, firmware version, model hash, tensors, inference count
    POST /infer  {"input": [int, ...]} (raw tensor) or {"values": [float, ...]}
                 -> {"output": [...], "values": [...], "latency_us": n}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.tflm import Tflm, dequantize, quantize

MODEL_MEMBER = "firmware/model.tflite"
MANIFEST_MEMBER = "firmware/manifest.json"


@dataclass
class FirmwareImage:
    manifest: dict[str, Any]
    model: bytes

    @classmethod
    def open(cls, path: Path) -> FirmwareImage:
        with zipfile.ZipFile(path) as zf:
            return cls(json.loads(zf.read(MANIFEST_MEMBER)), zf.read(MODEL_MEMBER))


@dataclass
class Runtime:
    """The model in TFLM behind a lock (the HTTP server is threaded)."""

    image: FirmwareImage
    inferences: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tflm = Tflm(self.image.model, self.image.manifest["arena_bytes"])
        self.inp = self.image.manifest["inputs"][0]
        self.out = self.image.manifest["outputs"][0]

    def info(self) -> dict[str, Any]:
        m = self.image.manifest
        return {
            "board": m["board"],
            "version": m["version"],
            "model_sha256": m["model_sha256"],
            "arena_bytes": m["arena_bytes"],
            "inputs": m["inputs"],
            "outputs": m["outputs"],
            "inferences": self.inferences,
        }

    def infer(self, request: dict[str, Any]) -> dict[str, Any]:
        dtype = self.tflm.input["dtype"]
        n = int(np.prod(self.inp["shape"]))
        if "input" in request:
            raw = np.asarray(request["input"], dtype=np.int64).ravel()
            info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
            if info is not None and (raw.min(initial=0) < info.min or raw.max(initial=0) > info.max):
                raise ValueError(f"input values must fit {np.dtype(dtype).name}")
            tensor = raw.astype(dtype)
        elif "values" in request:
            vals = np.asarray(request["values"], dtype=np.float64).ravel()
            tensor = (
                quantize(vals, self.inp["scale"], self.inp["zero_point"], dtype)
                if self.inp.get("scale") is not None else vals.astype(dtype)
            )
        else:
            raise ValueError("body must have 'input' (raw tensor) or 'values' (floats)")
        if tensor.size != n:
            raise ValueError(f"input has {tensor.size} elements; the model takes {n}")
        with self._lock:
            t0 = time.perf_counter_ns()
            out = self.tflm.invoke(tensor)
            latency_us = (time.perf_counter_ns() - t0) // 1000
            self.inferences += 1
        values = (
            dequantize(out, self.out["scale"], self.out["zero_point"])
            if self.out.get("scale") is not None else out.astype(np.float64)
        )
        return {"output": out.ravel().tolist(), "values": values.ravel().tolist(),
                "latency_us": int(latency_us)}


def make_handler(runtime: Runtime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/info":
                self._reply(200, runtime.info())
            else:
                self._reply(404, {"error": f"no resource {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/infer":
                self._reply(404, {"error": f"no resource {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                self._reply(200, runtime.infer(body))
            except (ValueError, TypeError) as exc:
                self._reply(400, {"error": str(exc)})

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the device log is for state changes, not requests."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=Path(sys.argv[0]))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--self-test", action="store_true", help="one inference, then exit")
    args = ap.parse_args(argv)

    image = FirmwareImage.open(args.image)
    runtime = Runtime(image)
    m = image.manifest
    if args.self_test:
        zeros = [0] * int(np.prod(runtime.inp["shape"]))
        out = runtime.infer({"input": zeros})
        print(json.dumps({"self_test": "ok", "output": out["output"]}))
        return 0
    server = ThreadingHTTPServer((args.host, args.port), make_handler(runtime))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    print(
        f"TinyMLaaS board={m['board']} firmware={m['version']} model={m['model_sha256'][:12]} "
        f"READY http://{host}:{port}",
        flush=True,
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

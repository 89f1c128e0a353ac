"""The x86 device firmware: TFLM interpreter + model, serving inferences.

This module is packed (with :mod:`tinymlaas.edge.tflm`) into ``firmware.pyz``, the
OS image the x86 builder writes; the device container boots it. It needs only
the standard library, numpy and the ``tflite_micro`` wheel.

With ``--lwm2m URI`` it also runs an LwM2M client, with ``--ota URL`` the HTTP pull agent
(:mod:`tinymlaas.edge.x86_agent`):
registration, capabilities, FOTA (exit code 75 asks the boot ROM to reboot into
the new image) and SOTA (the model is swapped between two inferences).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.edge.tflm import Tflm, dequantize, quantize

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
class Model:
    """The model being served: its interpreter and tensor specs."""

    tflm: Tflm
    sha256: str
    arena_bytes: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    name: str = ""

    @classmethod
    def load(cls, model: bytes, spec: dict[str, Any]) -> Model:
        return cls(Tflm(model, spec["arena_bytes"]), spec["model_sha256"], spec["arena_bytes"],
                   spec["inputs"], spec["outputs"], spec.get("name", ""))


@dataclass
class Runtime:
    """The model in TFLM behind a lock (the HTTP server is threaded).

    ``swap`` replaces the model between two inferences (SOTA): requests in
    flight finish on the old model, the next one runs on the new one.
    """

    image: FirmwareImage
    inferences: int = 0
    listeners: list[Callable[[bytes, bytes, int], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        m = self.image.manifest
        self.model = Model.load(self.image.model, {**m, "name": m.get("module", {}).get("name", "")})

    @property
    def inp(self) -> dict[str, Any]:
        return self.model.inputs[0]

    @property
    def out(self) -> dict[str, Any]:
        return self.model.outputs[0]

    @property
    def tflm(self) -> Tflm:
        return self.model.tflm

    def swap(self, model: Model) -> Model:
        """Serve ``model`` from the next inference on; returns the one it replaced."""
        with self._lock:
            old, self.model = self.model, model
        return old

    def info(self) -> dict[str, Any]:
        m = self.image.manifest
        return {
            "board": m["board"],
            "version": m["version"],
            "model_sha256": self.model.sha256,
            "arena_bytes": self.model.arena_bytes,
            "inputs": self.model.inputs,
            "outputs": self.model.outputs,
            "inferences": self.inferences,
        }

    def infer(self, request: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
        with self._lock:
            model = self.model
            tensor = _tensor(model, request)
            t0 = time.perf_counter_ns()
            out = model.tflm.invoke(tensor)
            latency_us = (time.perf_counter_ns() - t0) // 1000
            self.inferences += 1
        for listener in self.listeners if notify else ():
            listener(tensor.tobytes(), out.tobytes(), int(latency_us))
        spec = model.outputs[0]
        values = (
            dequantize(out, spec["scale"], spec["zero_point"])
            if spec.get("scale") is not None else out.astype(np.float64)
        )
        return {"output": out.ravel().tolist(), "values": values.ravel().tolist(),
                "latency_us": int(latency_us), "model_sha256": model.sha256}

    def self_test(self) -> dict[str, Any]:
        """One inference on zeros: the image runs its model (a health check, not counted)."""
        with self._lock:
            zeros = [0] * int(np.prod(self.model.inputs[0]["shape"]))
        return self.infer({"input": zeros}, notify=False)

    def infer_bytes(self, raw: bytes) -> tuple[bytes, int]:
        """A raw input tensor (bytes, as LwM2M carries it) -> raw output and latency."""
        with self._lock:
            dtype = np.dtype(self.model.tflm.input["dtype"])
        if len(raw) % dtype.itemsize:
            raise ValueError(f"input of {len(raw)} bytes is not a whole number of {dtype.name}")
        reply = self.infer({"input": np.frombuffer(raw, dtype=dtype).tolist()}, notify=False)
        out = np.asarray(reply["output"], dtype=self.model.tflm.output["dtype"])
        return out.tobytes(), reply["latency_us"]


def _tensor(model: Model, request: dict[str, Any]) -> np.ndarray:
    dtype = model.tflm.input["dtype"]
    inp = model.inputs[0]
    n = int(np.prod(inp["shape"]))
    if "input" in request:
        raw = np.asarray(request["input"], dtype=np.int64).ravel()
        info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
        if info is not None and (raw.min(initial=0) < info.min or raw.max(initial=0) > info.max):
            raise ValueError(f"input values must fit {np.dtype(dtype).name}")
        tensor = raw.astype(dtype)
    elif "values" in request:
        vals = np.asarray(request["values"], dtype=np.float64).ravel()
        tensor = (
            quantize(vals, inp["scale"], inp["zero_point"], dtype)
            if inp.get("scale") is not None else vals.astype(dtype)
        )
    else:
        raise ValueError("body must have 'input' (raw tensor) or 'values' (floats)")
    if tensor.size != n:
        raise ValueError(f"input has {tensor.size} elements; the model takes {n}")
    return tensor


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
    lw = ap.add_argument_group("LwM2M (device management, FOTA, SOTA)")
    lw.add_argument("--lwm2m", metavar="URI", help="register with this server, e.g. coap://127.0.0.1:5683")
    lw.add_argument("--endpoint", help="endpoint client name (default: the host name)")
    lw.add_argument("--lifetime", type=int, default=60, help="registration lifetime, s")
    lw.add_argument("--oscore", type=Path, metavar="DIR",
                    help="OSCORE security context directory (credentials from the service)")
    ota = ap.add_argument_group("HTTP pull (the http-pull orchestrator: FOTA, SOTA)")
    ota.add_argument("--ota", metavar="URL", help="poll this service, e.g. http://127.0.0.1:8000")
    ota.add_argument("--token-file", type=Path, metavar="FILE", help="the device's bearer token")
    ota.add_argument("--ota-wait", type=float, default=20.0, help="long-poll wait, s")
    ap.add_argument("--trust", type=Path, metavar="FILE",
                    help="the service's public key: updates must be signed with its key")
    args = ap.parse_args(argv)
    if args.lwm2m and args.ota:
        ap.error("--lwm2m and --ota are two ways to be managed: choose one")

    image = FirmwareImage.open(args.image)
    runtime = Runtime(image)
    m = image.manifest
    if args.self_test:
        out = runtime.self_test()
        print(json.dumps({"self_test": "ok", "output": out["output"]}))
        return 0
    agent = None
    if args.lwm2m or args.ota:  # imported only here: the builder's self-test has no aiocoap
        from tinymlaas.edge.x86_agent import Agent

        agent = Agent(runtime, args)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(runtime))
    host, port = server.server_address[:2]
    assert isinstance(host, str)  # an IPv4 server's address
    print(
        f"TinyMLaaS board={m['board']} firmware={m['version']} model={runtime.model.sha256[:12]} "
        f"READY http://{host}:{port}",
        flush=True,
    )
    if agent is None:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever()
        server.server_close()
        return 0
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    try:
        return agent.run()
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())

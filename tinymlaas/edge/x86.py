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
    POST /infer  {"input": [int, ...]} (raw tensor) or {"values": [float, ...]} (a one-input
                 model), or {"inputs": [{"input": [...]} | {"values": [...]}, ...]} (one per input)
                 -> {"output": [...], "values": [...] (the first output),
                     "outputs": [{"name", "output", "values"}, ...], "latency_us": n}
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

from tinymlaas.edge.errors import InvalidInput
from tinymlaas.edge.tensors import elements, laid_out, pack, packed_bytes, tensor_from, unpack
from tinymlaas.edge.tflm import Tflm, dequantize

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
        """The model in TFLM; its specs get each tensor's place in the packed form."""
        ins, outs = laid_out(spec["inputs"]), laid_out(spec["outputs"])
        return cls(Tflm(model, spec["arena_bytes"], inputs=len(ins), outputs=len(outs)),
                   spec["model_sha256"], spec["arena_bytes"], ins, outs, spec.get("name", ""))


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

    def _run(self, model: Model, tensors: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
        """One inference (the lock held): every output, and the latency in µs."""
        t0 = time.perf_counter_ns()
        outs = model.tflm.invoke_all(tensors)
        self.inferences += 1
        return outs, (time.perf_counter_ns() - t0) // 1000

    def infer(self, request: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
        """One inference on a request body (see the module's docstring)."""
        with self._lock:
            model = self.model
            tensors = _tensors(model, request)
            outs, latency_us = self._run(model, tensors)
        for listener in self.listeners if notify else ():
            listener(pack(model.inputs, tensors), pack(model.outputs, outs), latency_us)
        outputs = []
        for spec, out in zip(model.outputs, outs, strict=True):
            values = (dequantize(out, spec["scale"], spec["zero_point"])
                      if spec.get("scale") is not None else out.astype(np.float64))
            outputs.append({"name": spec["name"], "output": out.ravel().tolist(),
                            "values": values.ravel().tolist()})
        return {"output": outputs[0]["output"], "values": outputs[0]["values"], "outputs": outputs,
                "latency_us": latency_us, "model_sha256": model.sha256}

    def self_test(self) -> dict[str, Any]:
        """One inference on zeros: the image runs its model (a health check, not published)."""
        with self._lock:
            zeros = [{"input": [0] * elements(spec)} for spec in self.model.inputs]
        return self.infer({"inputs": zeros}, notify=False)

    def infer_bytes(self, raw: bytes) -> tuple[bytes, int]:
        """Packed input tensors (bytes, as LwM2M carries them) -> packed outputs and latency, all
        by the one model that served them (a SOTA swap may come between two inferences)."""
        with self._lock:
            model = self.model
            if len(raw) != packed_bytes(model.inputs):
                raise ValueError(f"input of {len(raw)} bytes; the model takes {packed_bytes(model.inputs)} "
                                 f"({', '.join(s['name'] for s in model.inputs)})")
            outs, latency_us = self._run(model, unpack(model.inputs, raw))
        return pack(model.outputs, outs), latency_us


def _tensor(spec: dict[str, Any], request: dict[str, Any]) -> np.ndarray:
    """One input tensor from ``{"input": raw values}`` or ``{"values": floats to quantize}``."""
    if "input" not in request and "values" not in request:
        raise ValueError("each input needs 'input' (raw tensor) or 'values' (floats)")
    try:
        tensor = tensor_from(spec, values=None if "input" in request else request["values"],
                             raw=request.get("input"))
    except InvalidInput as exc:  # this device answers 400 with the words
        raise ValueError(exc.message) from None
    if tensor.size != elements(spec):
        raise ValueError(f"input {spec['name']!r} has {tensor.size} elements; the model takes "
                         f"{elements(spec)}")
    return tensor


def _tensors(model: Model, request: dict[str, Any]) -> list[np.ndarray]:
    """Every input tensor: ``{"inputs": [one object per input]}``, or for a one-input model its
    object alone."""
    if "inputs" in request:
        given = request["inputs"]
        if not isinstance(given, list) or not all(isinstance(g, dict) for g in given):
            raise ValueError("'inputs' must be a list of objects, one per input tensor")
        if len(given) != len(model.inputs):
            raise ValueError(f"the model takes {len(model.inputs)} input tensors, not {len(given)}")
        return [_tensor(spec, g) for spec, g in zip(model.inputs, given, strict=True)]
    if "input" not in request and "values" not in request:
        raise ValueError("body must have 'input' (raw tensor), 'values' (floats) or 'inputs'")
    if len(model.inputs) != 1:
        raise ValueError(f"the model takes {len(model.inputs)} input tensors: send 'inputs'")
    return [_tensor(model.inputs[0], request)]


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
    lw.add_argument("--psk", type=Path, metavar="FILE",
                    help="DTLS pre-shared key file, psk.json (credentials from the service; coaps:// URI)")
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

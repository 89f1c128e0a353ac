"""x86-tflm: build, boot and inference figures of the whole loop, real containers.

Measures, for hello_world int8: compile time, builder-container time, device
boot-to-READY time, and inference latency (HTTP round trip on loopback and the
device's own TFLM invoke time) over many requests.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import bar_plot, percentile, report

from tinymlaas.builders.container import DockerBuilder
from tinymlaas.config import Settings
from tinymlaas.images import ensure_all
from tinymlaas.services.compile import compile_model
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

REQUESTS = 500


def run(json_path: Path | None, plots: Path) -> None:
    settings = Settings()
    ensure_all(settings)
    board = get_board(settings.targets_dir, "x86-tflm")
    model = get_recipe("hello_world").load(settings.zoo_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        module = compile_model(model, board, work / "module")
        t1 = time.perf_counter()
        fw = DockerBuilder().build(work / "module", board, work / "fw")
        t2 = time.perf_counter()
        with X86Device(board, work / "fw") as dev:
            t3 = time.perf_counter()
            rtt, on_device = [], []
            for i in range(REQUESTS):
                s = time.perf_counter()
                reply = dev.device.infer_raw([i % 256 - 128])
                rtt.append((time.perf_counter() - s) * 1e6)
                on_device.append(reply["latency_us"])
    rows = [
        {"metric": "compile (TFLM probe, arena search)", "value": round(t1 - t0, 2), "unit": "s"},
        {"metric": "build in builder container", "value": round(t2 - t1, 2), "unit": "s"},
        {"metric": "device boot to READY", "value": round(t3 - t2, 2), "unit": "s"},
        {"metric": "OS image size", "value": fw.sizes["flash"], "unit": "B"},
        {"metric": "TFLM arena (smallest that runs)", "value": module.memory.arena_bytes, "unit": "B"},
        {"metric": "inference round trip p50", "value": round(percentile(rtt, 50)), "unit": "µs"},
        {"metric": "inference round trip p99", "value": round(percentile(rtt, 99)), "unit": "µs"},
        {"metric": "TFLM invoke on device p50", "value": round(percentile(on_device, 50)), "unit": "µs"},
        {"metric": "TFLM invoke on device p99", "value": round(percentile(on_device, 99)), "unit": "µs"},
    ]
    report("x86-tflm hello_world loop", rows, json_path=json_path, extra={"requests": REQUESTS})
    bar_plot(plots / "x86_latency.png", f"x86-tflm hello_world, {REQUESTS} requests",
             ["p50", "p99"], {"HTTP round trip": [percentile(rtt, 50), percentile(rtt, 99)],
                              "TFLM invoke": [percentile(on_device, 50), percentile(on_device, 99)]}, "µs")

"""LwM2M server at scale: registrations/s, read latency, notification latency, memory, FOTA.

The server (``tinymlaas.lwm2m.server``, plain CoAP over UDP on loopback) runs in
its own process, so its memory is its own; N light simulated devices (one
socket each, see ``_lwm2m_sim.py``) run in this process. For N = 100, 1,000 and
10,000: the registration rate, p50/p99 latency of Read /3/0 on up to 1,000
devices one at a time, the throughput (and p99) with 50 reads in flight,
p50/p99 latency of Observe notifications (up to 1,000 observed devices; the
value is a timestamp), and server memory per 1,000
registered devices. Then FOTA of the hello_world x86 firmware (built with the
local builder) to 100 devices at once: real HTTP downloads with SHA-256 checks,
Update, re-registration.

Targets: 10,000 registered devices on one 2-core machine; p99 read latency
< 50 ms at 1,000 devices; notify p99 < 50 ms at 10,000 devices; FOTA to 100
devices in < 60 s. Each row records the machine's load average around it (the
machine is shared); ``benchmarks/readme.py`` writes the README's table from the JSON.

    python benchmarks/run.py lwm2m [--json var/bench.json]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import bar_plot, hello_world_firmware, percentile, report, rss_kib

HERE = Path(__file__).parent
TITLE = "LwM2M server: simulated devices over UDP loopback"
SIZES = (100, 1_000, 10_000)
FOTA_DEVICES = 100
SAMPLE = 1_000


# -- the server process ---------------------------------------------------------------

class _Files(BaseHTTPRequestHandler):
    """Serves packages by the hash at the end of the path, with Range (as the API does)."""

    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        data = self.files.get(self.path.split("?")[0].rsplit("/", 1)[-1])
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args: object) -> None:
        """Quiet."""


async def _serve(n: int, fota_image: str | None) -> dict[str, Any]:
    from tinymlaas.config import LwM2MSettings
    from tinymlaas.lwm2m.deploy import Updater
    from tinymlaas.lwm2m.server import LwM2MServer

    base_rss = rss_kib()
    srv = LwM2MServer(LwM2MSettings(port=0, request_timeout_s=30, download_timeout_s=60, update_timeout_s=60))
    await srv.start()
    first_reg: list[float] = []
    srv.registry.listeners.append(lambda ev, reg: first_reg.append(time.perf_counter())
                                  if ev == "registered" else None)
    print(f"PORT {srv.port}", flush=True)
    await srv.registry.wait_for(lambda: len(srv.registry.by_id) >= n, 600)
    reg_s = first_reg[-1] - first_reg[0] if len(first_reg) > 1 else 0.0
    rss = rss_kib()
    eps = sorted(srv.registry.devices)[:SAMPLE]
    # Reads, one at a time (latency), then 50 in flight (throughput, latency under load).
    lat: list[float] = []
    for ep in eps:
        t0 = time.perf_counter()
        await srv.read(ep, "/3/0")
        lat.append((time.perf_counter() - t0) * 1000)
    loaded: list[float] = []
    sem = asyncio.Semaphore(50)

    async def read(ep: str) -> None:
        async with sem:
            t0 = time.perf_counter()
            await srv.read(ep, "/3/0")
            loaded.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(read(ep) for ep in eps))
    read_s = time.perf_counter() - t0
    # Observations: the devices bump a timestamp when they see an observer.
    observations = await asyncio.gather(*(srv.observe(ep, "/33100/0/11") for ep in eps))
    print("OBSERVING", flush=True)
    notify: list[float] = []
    deadline = time.monotonic() + 60

    def got_all() -> bool:
        return all(o.notifications >= 3 for o in observations)

    while not got_all() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for o in observations:
        stamp = o.value.get((33100, 0, 11))
        if o.notifications >= 3 and isinstance(stamp, int) and stamp > 0:
            notify.append(o.received_ns / 1e6 - stamp / 1e6)
        o.cancel()
    out: dict[str, Any] = {
        "devices": len(srv.registry.by_id), "registration_s": reg_s,
        "server_rss_kib": rss, "server_base_rss_kib": base_rss,
        "read_p50_ms": percentile(lat, 50), "read_p99_ms": percentile(lat, 99), "reads": len(lat),
        "loaded_p99_ms": percentile(loaded, 99), "reads_per_s": len(loaded) / read_s,
        "notify_p50_ms": percentile(notify, 50), "notify_p99_ms": percentile(notify, 99),
        "notifications": len(notify),
    }
    if fota_image:
        data = Path(fota_image).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        _Files.files = {sha: data}
        http = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{http.server_address[1]}"
        updater = Updater(srv, lambda ep, s: f"{base}/devices/{ep}/packages/{s}")
        targets = sorted(srv.registry.devices)[:FOTA_DEVICES]
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(updater.fota(ep, sha) for ep in targets),
                                        return_exceptions=True)
        out["fota_s"] = time.perf_counter() - t0
        out["fota_ok"] = sum(1 for o in outcomes if not isinstance(o, BaseException) and o.succeeded)
        out["fota_devices"] = len(targets)
        failures: dict[str, int] = {}
        for o in outcomes:
            why = repr(o)[:120] if isinstance(o, BaseException) else ("" if o.succeeded else o.detail)
            if why:
                failures[why] = failures.get(why, 0) + 1
        out["fota_failures"] = failures
        out["fota_image_bytes"] = len(data)
        http.shutdown()
    await srv.stop()
    return out


def _server_main() -> None:
    n = int(sys.argv[2])
    fota = sys.argv[3] if len(sys.argv) > 3 else None
    result = asyncio.run(_serve(n, fota))
    print("RESULT " + json.dumps(result), flush=True)


# -- the device side (this process) ------------------------------------------------------

async def _run_size(n: int, fota_image: Path | None, work: Path) -> dict[str, Any]:
    from _lwm2m_sim import close_devices, start_devices

    args = [sys.executable, str(Path(__file__).resolve()), "--serve", str(n)]
    if fota_image is not None:
        args.append(str(fota_image))
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                env={**os.environ, "PYTHONPATH": str(HERE)})
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    port = int(line.split()[1])
    devices, client_s = await start_devices(n, ("127.0.0.1", port), work)
    line = (await proc.stdout.readline()).decode()
    assert line.startswith("OBSERVING"), line
    for d in devices:
        if (33100, 0, 11) in d.observers:
            d.bump()
    await asyncio.sleep(0.5)
    for d in devices:  # a second round: latency measured on a warm path
        if (33100, 0, 11) in d.observers:
            d.bump()
    result: dict[str, Any] = {}
    while True:
        line = (await proc.stdout.readline()).decode()
        if not line:
            break
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    await proc.wait()
    close_devices(devices)
    result["client_registration_s"] = client_s
    result["reregistered"] = sum(1 for d in devices if d.registrations > 1)
    return result


def run(json_path: Path | None = None, plots: Path | None = None,
        sizes: tuple[int, ...] = SIZES) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lwm2m-") as tmp:
        work = Path(tmp)
        image = hello_world_firmware(work)
        for n in sizes:
            load_before = os.getloadavg()[0]
            r = asyncio.run(_run_size(n, image if n == FOTA_DEVICES else None, work))
            load_after = os.getloadavg()[0]
            per_k = (r["server_rss_kib"] - r["server_base_rss_kib"]) / r["devices"] * 1000 / 1024
            row = {
                "devices": r["devices"],
                "registrations/s": r["devices"] / max(r["client_registration_s"], 1e-9),
                "read p50 ms": r["read_p50_ms"], "read p99 ms": r["read_p99_ms"],
                "reads/s (50 in flight)": r["reads_per_s"], "p99 ms (50 in flight)": r["loaded_p99_ms"],
                "notify p50 ms": r["notify_p50_ms"], "notify p99 ms": r["notify_p99_ms"],
                "server MiB": r["server_rss_kib"] / 1024, "MiB per 1k devices": per_k,
                # The machine is shared: the 1-minute load average around the run.
                "load before": load_before, "load after": load_after,
            }
            if "fota_s" in r:
                row["FOTA s"] = r["fota_s"]
                row["FOTA ok"] = f"{r['fota_ok']}/{r['fota_devices']}"
            rows.append(row)
            if r.get("fota_failures"):
                print("FOTA failures:", r["fota_failures"])
    by_n = {r["devices"]: r for r in rows}
    targets = {
        "10k registered": max(by_n) >= 10_000,
        "p99 read < 50 ms @1k": 1000 in by_n and by_n[1000]["read p99 ms"] < 50,
        "FOTA 100 < 60 s": any(r.get("FOTA s", 1e9) < 60 and r.get("FOTA ok") == "100/100" for r in rows),
    }
    targets["notify p99 < 50 ms @10k"] = 10_000 in by_n and by_n[10_000]["notify p99 ms"] < 50
    report(TITLE, rows, json_path=json_path,
           extra={"targets": targets, "cpus": os.cpu_count(),
                  "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    print("targets:", ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    if plots is not None:
        labels = [f"{r['devices']:,}" for r in rows]
        bar_plot(plots / "lwm2m_latency.png", "LwM2M read/notify latency by fleet size", labels,
                 {"read p50": [r["read p50 ms"] for r in rows], "read p99": [r["read p99 ms"] for r in rows],
                  "notify p99": [r["notify p99 ms"] for r in rows]}, "ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _server_main()
    else:  # python benchmarks/bench_lwm2m.py [SIZE ...]: a quick look at some sizes
        sys.path.insert(0, str(HERE))
        run(sizes=tuple(int(a) for a in sys.argv[1:]) or SIZES)

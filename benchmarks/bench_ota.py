"""HTTP pull orchestrator at scale: check-ins, inference round trips and FOTA through the API.

The whole service (``tinymlaas serve --orchestrator http-pull``, its own database
file) runs in its own process, so its memory is its own; N light simulated
devices (one long poll each, over one httpx pool) run in this process. For
N = 100 and 1,000: how fast the fleet checks in, p50/p99 of an inference through
the API (``POST /devices/{ep}/infer``: the command wakes the device's held poll,
the result comes back on its next one) one at a time and with 20 in flight, and
server memory per 1,000 polling devices. With 100 devices: FOTA of the hello_world
x86 firmware to all of them through the API (100 deployment jobs at once: real
downloads with grants and SHA-256 checks).

    python benchmarks/run.py ota [--json var/bench.json]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from _common import bar_plot, hello_world_firmware, percentile, report, rss_kib

HERE = Path(__file__).parent
SIZES = (100, 1_000)
FOTA_DEVICES = 100
SAMPLE = 300
TENSORS = {"inputs": [{"name": "x", "shape": [1, 1], "dtype": "int8", "scale": 0.024, "zero_point": -128}],
           "outputs": [{"name": "y", "shape": [1, 1], "dtype": "int8", "scale": 0.0085, "zero_point": 4}]}


class Conn:
    """One keep-alive HTTP/1.1 connection, as a device has: far lighter than a pooled client,
    so a thousand of them measure the service, not the simulator."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                              f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            return status, await self.reader.readexactly(length)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.close()
            raise ConnectionError(f"{method} {target} failed") from None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class SimDevice:
    """Echoes inferences, takes firmware in place (download + SHA-256), reports on the next poll."""

    def __init__(self, port: int, endpoint: str) -> None:
        self.conn = Conn("127.0.0.1", port)
        self.path = f"/ota/{endpoint}/poll"
        self.status: dict[str, Any] = {
            "manufacturer": "bench", "model": "sim", "serial": endpoint, "firmware_version": "1.0.0",
            "board": "sim", "ram_bytes": 65536, "tensors": TENSORS, "fota": True}
        self.results: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.count = 0

    async def run(self) -> None:
        try:
            while True:
                body = json.dumps({"status": self.status, "results": self.results, "wait_s": 20}).encode()
                try:
                    code, reply = await self.conn.request("POST", self.path, body)
                except ConnectionError:
                    await asyncio.sleep(0.5)
                    continue
                self.results = []
                for cmd in json.loads(reply)["commands"] if code == 200 else []:
                    if cmd["id"] not in self.seen:
                        self.seen.add(cmd["id"])
                        self.results.append(await self._do(cmd))
        finally:
            self.conn.close()

    async def _do(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["op"] == "infer":
            self.count += 1
            return {"id": cmd["id"], "ok": True, "inference": {
                "count": self.count, "input": cmd["input"], "output": cmd["input"], "latency_us": 1}}
        url = urllib.parse.urlsplit(cmd["url"])
        download = Conn(url.hostname or "127.0.0.1", url.port or 80)
        try:
            code, data = await download.request("GET", f"{url.path}?{url.query}")
        finally:
            download.close()
        if code != 200 or hashlib.sha256(data).hexdigest() != cmd["sha256"]:
            return {"id": cmd["id"], "ok": False, "code": 5, "detail": f"HTTP {code} or SHA-256 mismatch"}
        self.status = {**self.status, "firmware_version": "2.0.0"}
        return {"id": cmd["id"], "ok": True, "code": 1, "states": ["downloaded", "updating", "idle"]}


def _start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TINYMLAAS_DATA_DIR": str(data_dir), "TINYMLAAS_HTTP_PULL__POLL_WAIT_S": "20",
           "TINYMLAAS_LWM2M__PORT": "0"}
    return subprocess.Popen([sys.executable, "-m", "tinymlaas.cli.main", "serve", "--port", str(port),
                             "--orchestrator", "http-pull"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("timed out")


async def _infer(api: httpx.AsyncClient, ep: str) -> float:
    t0 = time.perf_counter()
    r = await api.post(f"/devices/{ep}/infer", json={"input": [7]})
    assert r.status_code == 200 and r.json()["output"] == [7], r.text
    return (time.perf_counter() - t0) * 1000


async def _run_size(n: int, image: Path | None, work: Path) -> dict[str, Any]:
    from tinymlaas.net import free_port
    from tinymlaas.store import ArtifactStore

    data = work / f"service-{n}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_service(data, port)
    out: dict[str, Any] = {"devices": n}
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=httpx.Limits(max_connections=200)) as api:
        await _wait(lambda: api.get("/health"), 60)
        base_rss = rss_kib(proc.pid)
        devices = [SimDevice(port, f"sim-{i}") for i in range(n)]
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(d.run()) for d in devices]

        async def all_in() -> bool:
            return sum(d["online"] for d in (await api.get("/devices")).json()) == n

        await _wait(all_in, 120)
        out["checkin_s"] = time.perf_counter() - t0
        sample = [f"sim-{i}" for i in range(0, n, max(n // SAMPLE, 1))][:SAMPLE]
        serial = [await _infer(api, ep) for ep in sample]
        out["p50_ms"], out["p99_ms"] = percentile(serial, 50), percentile(serial, 99)
        sem = asyncio.Semaphore(20)

        async def one(ep: str) -> float:
            async with sem:
                return await _infer(api, ep)

        t1 = time.perf_counter()
        loaded = await asyncio.gather(*(one(ep) for ep in sample))
        out["per_s_loaded"] = len(sample) / (time.perf_counter() - t1)
        out["p99_loaded_ms"] = percentile(list(loaded), 99)
        out["rss_kib"], out["base_rss_kib"] = rss_kib(proc.pid), base_rss
        if image is not None:
            sha = ArtifactStore(data / "artifacts").put_file(image)
            t2 = time.perf_counter()
            deps = [(await api.post(f"/devices/sim-{i}/firmware", json={"artifact": sha})
                     ).json()["deployment"]["id"] for i in range(FOTA_DEVICES)]

            async def finished() -> bool:
                ended = [(await api.get(f"/deployments/{i}")).json() for i in deps]
                out["fota_ok"] = sum(1 for e in ended if e["succeeded"])
                return all(e["succeeded"] is not None for e in ended)

            await _wait(finished, 120)
            out["fota_s"] = time.perf_counter() - t2
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    proc.terminate()
    proc.wait(30)
    return out


def run(json_path: Path | None = None, plots: Path | None = None,
        sizes: tuple[int, ...] = SIZES) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ota-") as tmp:
        work = Path(tmp)
        image = hello_world_firmware(work)
        for n in sizes:
            r = asyncio.run(_run_size(n, image if n == FOTA_DEVICES else None, work))
            row = {
                "devices": n, "check-ins/s": n / r["checkin_s"],
                "infer p50 ms": r["p50_ms"], "infer p99 ms": r["p99_ms"],
                "infers/s (20 in flight)": r["per_s_loaded"], "p99 ms (20 in flight)": r["p99_loaded_ms"],
                "service MiB": r["rss_kib"] / 1024,
                "MiB per 1k devices": (r["rss_kib"] - r["base_rss_kib"]) / n * 1000 / 1024,
            }
            if "fota_s" in r:
                row["FOTA s"], row["FOTA ok"] = r["fota_s"], f"{r['fota_ok']}/{FOTA_DEVICES}"
            rows.append(row)
    report("HTTP pull orchestrator: simulated devices long-polling the API", rows, json_path=json_path)
    if plots is not None:
        labels = [f"{r['devices']:,}" for r in rows]
        bar_plot(plots / "ota_latency.png", "Inference through the API over HTTP pull, by fleet size",
                 labels, {"p50": [r["infer p50 ms"] for r in rows], "p99": [r["infer p99 ms"] for r in rows],
                          "p99, 20 in flight": [r["p99 ms (20 in flight)"] for r in rows]}, "ms")


if __name__ == "__main__":  # python benchmarks/bench_ota.py [SIZE ...]
    sys.path.insert(0, str(HERE))
    run(sizes=tuple(int(a) for a in sys.argv[1:]) or SIZES)

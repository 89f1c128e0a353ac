"""A service with a fleet behind it, for the web app's benchmark and its screenshots.

``tinymlaas serve`` runs in its own process (its own data directory, LwM2M without device
security, its telemetry read every device within seconds of its start and then once a minute, as by
default); N light simulated LwM2M devices (``_lwm2m_sim``) run on
an event loop in a thread of this process, with boards, firmware, latency, instruction counts
and inference counters of their own (a share of them with a short lifetime, so they go
offline). A hello_world model, a local build and FOTA updates of a few devices give the other
pages something to show.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _lwm2m_sim import SimDevice, close_devices, start_devices

from tinymlaas.config import Settings
from tinymlaas.net import free_port
from tinymlaas.targets import load_boards

BOARDS = {"x86-tflm": (40, None), "mps2-an385": (2_600, 1_735), "lm3s6965evb": (3_100, 2_112),
          "netduinoplus2": (900, 1_735), "stm32vldiscovery": (2_900, 2_112)}
FIRMWARE = ("1.0.0", "1.1.0", "1.1.0", "2.0.0")


class Fleet:
    def __init__(self, n: int, work: Path, *, offline_share: float = 0.05, seed: int = 7,
                 telemetry_s: float = 60) -> None:
        self.n, self.work, self.rng = n, work, random.Random(seed)
        self.port, self.coap = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TINYMLAAS_DATA_DIR": str(work / "service"),
               "TINYMLAAS_LWM2M__PORT": str(self.coap), "TINYMLAAS_TELEMETRY_INTERVAL_S": str(telemetry_s)}
        exe = Path(sys.executable).with_name("tinymlaas")
        self.log = (work / "service.log").open("w")
        self.proc = subprocess.Popen([str(exe), "serve", "--port", str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(lambda: httpx.get(f"{self.url}/health").status_code == 200, 60, "the service")
        admin = json.loads((work / "service" / "initial-admin.json").read_text())
        self.password, self.token = admin["password"], admin["token"]
        self.api = httpx.Client(base_url=self.url, timeout=120,
                                headers={"Authorization": f"Bearer {self.token}"})
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        short = int(n * offline_share)
        self.devices: list[SimDevice] = self._run(self._start(n - short, short))
        self._wait(lambda: self.online() >= n - short, 60, "the devices registering")

    def online(self) -> int:
        """Devices online now (the registry's count: its list is paged)."""
        r = self.api.get("/devices", params={"online": True, "limit": 1})
        return int(r.headers["X-Total-Count"])

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not come up within {timeout} s")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _start(self, n: int, short: int) -> list[SimDevice]:
        server = ("127.0.0.1", self.coap)
        devices, _ = await start_devices(n, server, self.work, prefix="field")
        if short:
            gone, _ = await start_devices(short, server, self.work, prefix="gone", lifetime=3)
            devices += gone
        names = list(BOARDS)
        cpus = {name: b.cpu for name, b in load_boards(Settings().targets_dir).items()}
        for i, d in enumerate(devices):
            board = names[i % len(names)]
            latency, instructions = BOARDS[board]
            d.values.update({(3, 0, 3): self.rng.choice(FIRMWARE), (33100, 0, 16): board,
                             (33100, 0, 2): cpus[board],  # what a build for the board checks
                             (33100, 0, 7): "hello_world", (33100, 0, 5): "tflite-micro",
                             (33100, 0, 11): self.rng.randint(0, 500),
                             (33100, 0, 12): int(latency * self.rng.uniform(0.8, 1.3))})
            if instructions:
                d.values[(33100, 0, 13)] = instructions + self.rng.randint(0, 40)
        return devices

    def infer(self, rounds: int = 1) -> None:
        """Devices run inferences (their counters grow): the next ticks count them per hour."""
        def bump() -> None:
            for d in self.devices:
                d.values[(33100, 0, 11)] = int(d.values.get((33100, 0, 11), 0)) + self.rng.randint(0, 20)

        for _ in range(rounds):
            self.loop.call_soon_threadsafe(bump)

    def ticked(self, after: str | None = None, timeout: float = 120) -> str:
        """Wait for a telemetry tick later than ``after`` that read the devices; its time."""
        seen: dict[str, Any] = {}

        def check() -> bool:
            seen.update(self.api.get("/telemetry/fleet").json())
            return bool(seen["sampled_at"]) and seen["sampled_at"] != after and bool(seen["firmware"])

        self._wait(check, timeout, "a telemetry tick")
        return str(seen["sampled_at"])

    def job(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.api.get(f"/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
        raise RuntimeError(f"job {job_id} did not finish")

    def content(self, fota: int = 5) -> None:
        """A model, a build (local builder) and FOTA of ``fota`` devices to it."""
        self.job(self.api.post("/models/train", json={"recipe": "hello_world"}).json()["id"])
        reply = self.api.post("/builds", json={"model": "hello_world", "target": "x86-tflm",
                                               "builder": "local", "version": "2.0.0"}).json()
        self.job(reply["job"]["id"])
        x86 = [d for d in self.devices if d.values.get((33100, 0, 16)) == "x86-tflm"]
        for d in x86[:fota]:  # the build is for x86-tflm: the others' boards refuse it
            r = self.api.post(f"/devices/{d.endpoint}/firmware", json={"build": reply["build"]["id"]})
            self.job(r.json()["job"]["id"])

    def close(self) -> None:
        self.loop.call_soon_threadsafe(close_devices, self.devices)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.api.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

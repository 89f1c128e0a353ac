"""Rollouts and the device registry at scale, through the whole service.

The service (``tinymlaas serve``, LwM2M, its own database file) runs in its own
process; 2,000 light simulated LwM2M devices (``_lwm2m_sim.py``: one UDP socket
each, real Object 5 with HTTP downloads and SHA-256 checks, a "reboot" into the
new version) run in this process, reporting board x86-tflm. The database holds
another 10,000 pre-registered devices (tags, boards) for the listing.

1. A firmware rollout of the hello_world x86 OS image (a real build, local
   builder) to a group of 1,000 devices in 4 waves (1, 10 %, 40 %, rest),
   through ``POST /rollouts``: seconds to "succeeded", and per wave.
2. The same to another 1,000 devices of which 10 % (seeded) fail the package's
   integrity check: it must pause in the first wave whose failed share crosses the
   5 % error threshold, and no later wave may start.
3. ``GET /devices`` with a filter (a tag and a board, a page of 100) over the
   12,000 registered devices, 300 times: p50 / p99.

Targets: (1) < 60 s; (2) paused in the first wave over 5 %, no later wave started;
(3) p99 < 100 ms.

    python benchmarks/run.py rollouts [--json var/bench.json]
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import bar_plot, percentile, report
from _lwm2m_sim import SimDevice, close_devices, start_devices

HERE = Path(__file__).parent
FLEET = 1_000
LISTED = 10_000
FAILING = 0.10
WAVES = ["1", "10%", "40%", "rest"]
ERROR_THRESHOLD = 0.05
LIST_SAMPLES = 300
SEED = 7
BOARDS = ["x86-tflm", "lm3s6965evb", "netduinoplus2", "mps2-an385"]


class BoardSim(SimDevice):
    """A simulated x86-tflm device; ``failing`` ones refuse the package (integrity check failure)."""

    failing = False

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.values.update({(33100, 0, 2): "x86-64", (33100, 0, 5): "tflite-micro",
                            (33100, 0, 16): "x86-tflm"})

    async def _download(self, uri: str) -> None:
        if not self.failing:
            await super()._download(uri)
            return
        await asyncio.sleep(0.05)
        self._set((5, 0, 5), 5)  # integrity check failure: the device keeps its firmware
        self._set((5, 0, 3), 0)


def _populate(db_url: str, artifacts: Path) -> None:
    """Pre-register the listed devices and both fleets (setup, straight into the store)."""
    from tinymlaas.fleet.models import DeviceSpec
    from tinymlaas.store import Store

    store = Store(db_url, artifacts)
    try:
        store.devices.add_many([DeviceSpec(endpoint=f"listed-{i:05d}", board=BOARDS[i % 4],
                                           tags=[f"zone-{i % 20}", f"line-{i % 7}"],
                                           location=f"hall {i % 3}") for i in range(LISTED)])
        for fleet in ("a", "b"):
            store.devices.add_many([DeviceSpec(endpoint=f"{fleet}-{i:05d}", board="x86-tflm",
                                               tags=[f"fleet-{fleet}"]) for i in range(FLEET)])
    finally:
        store.close()


def _service(data: Path, port: int, lwm2m_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TINYMLAAS_DATA_DIR": str(data), "TINYMLAAS_LWM2M__PORT": str(lwm2m_port),
           "TINYMLAAS_LWM2M__ACK_TIMEOUT_S": "1.0"}
    log = (data / "service.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tinymlaas.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = await check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


async def _total(api: httpx.AsyncClient, **params: Any) -> int:
    r = await api.get("/devices", params={**params, "limit": 1})
    return int(r.headers["x-total-count"])


async def _build(api: httpx.AsyncClient) -> str:
    """hello_world registered and built for x86-tflm (version 2.0.0, the local builder)."""
    from tinymlaas.config import Settings
    from tinymlaas.zoo import get_recipe

    model = get_recipe("hello_world").load(Settings().zoo_dir)
    r = await api.post("/models", files={"file": ("hello_world.tflite", model)}, data={"name": "hello_world"})
    assert r.status_code == 201, r.text
    r = await api.post("/builds", json={"model": "hello_world", "target": "x86-tflm", "builder": "local",
                                        "version": "2.0.0"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]["id"]

    async def built() -> bool:
        state = (await api.get(f"/jobs/{job}")).json()
        if state["state"] == "failed":
            raise RuntimeError(f"the build failed: {state['error']}")
        return bool(state["state"] == "succeeded")

    await _until(built, 300, "the build")
    return str(r.json()["build"]["id"])


async def _rollout(api: httpx.AsyncClient, group: str, build: str) -> dict[str, Any]:
    """Start a rollout and follow it to its end or a pause; seconds in all and per wave."""
    t0 = time.perf_counter()
    r = await api.post("/rollouts", json={"group": group, "builds": [build], "waves": WAVES,
                                          "error_threshold": ERROR_THRESHOLD, "success_threshold": 0.9})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    wave_done: dict[int, float] = {}
    while True:
        now = (await api.get(f"/rollouts/{rid}")).json()
        for w in now["waves"]:
            if w["state"] == "done" and w["index"] not in wave_done:
                wave_done[w["index"]] = time.perf_counter() - t0
        if now["state"] != "running":  # it ended, or paused: the wave it is in ends here
            wave_done.setdefault(now["current_wave"], time.perf_counter() - t0)
            break
        await asyncio.sleep(0.1)
    now["seconds"] = time.perf_counter() - t0
    now["wave_seconds"] = [wave_done.get(i) for i in range(len(now["waves"]))]
    now["targets"] = (await api.get(f"/rollouts/{rid}/devices", params={"limit": 10_000})).json()
    return dict(now)


async def _list(api: httpx.AsyncClient) -> tuple[list[float], int]:
    times, shown = [], 0
    for i in range(LIST_SAMPLES):
        zone = i % 20  # the listed devices of a zone share a board (see _populate)
        t0 = time.perf_counter()
        query = {"tags": f"zone-{zone}", "board": BOARDS[zone % 4], "limit": 100}
        r = await api.get("/devices", params=query)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200 and len(r.json()) == 100, r.text
        shown = int(r.headers["x-total-count"])
    return times, shown


async def _run(work: Path) -> dict[str, Any]:
    from tinymlaas.net import free_port
    from tinymlaas.services.accounts import initial_admin_token

    data = work / "service"
    data.mkdir()
    _populate(f"sqlite:///{data / 'tinymlaas.sqlite3'}", data / "artifacts")
    port, lwm2m_port = free_port(), free_port()
    proc = _service(data, port, lwm2m_port)
    out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as api:
            await _until(lambda: api.get("/health"), 60, "the service starting")
            api.headers["Authorization"] = f"Bearer {initial_admin_token(data)}"
            build = await _build(api)
            rng = random.Random(SEED)
            failing = set(rng.sample(range(FLEET), int(FLEET * FAILING)))
            devices, reg_s = [], {}
            for fleet in ("a", "b"):
                sims, reg_s[fleet] = await start_devices(FLEET, ("127.0.0.1", lwm2m_port), work,
                                                         prefix=fleet, lifetime=600, kind=BoardSim)
                devices += sims
                if fleet == "b":
                    for i in failing:
                        sims[i].failing = True  # type: ignore[attr-defined]
            out["registration_s"] = sum(reg_s.values())
            for fleet in ("a", "b"):  # online, and what they run known (the registry read them)
                async def known(f: str = fleet) -> bool:
                    return await _total(api, tags=f"fleet-{f}", firmware="1.0.0", online=True) == FLEET

                await _until(known, 120, f"fleet {fleet} in the registry")
                await api.post("/groups", json={"name": f"fleet-{fleet}", "tags": [f"fleet-{fleet}"]})
            out["ok"] = await _rollout(api, "fleet-a", build)
            out["faulty"] = await _rollout(api, "fleet-b", build)
            out["failing"] = sorted(failing)
            times, shown = await _list(api)
            out["list_p50_ms"], out["list_p99_ms"], out["list_matches"] = (percentile(times, 50),
                                                                            percentile(times, 99), shown)
            out["registered"] = await _total(api, kind="device")
            close_devices(devices)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def _expected_pause(rollout: dict[str, Any], failing: set[int]) -> int | None:
    """The first wave whose failed share is over the threshold (devices go to waves by endpoint)."""
    start = 0
    for w in rollout["waves"]:
        members = range(start, start + w["size"])
        if sum(1 for i in members if i in failing) / w["size"] > ERROR_THRESHOLD:
            return int(w["index"])
        start += w["size"]
    return None


def run(json_path: Path | None = None, plots: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
        r = asyncio.run(_run(Path(tmp)))
    ok, faulty = r["ok"], r["faulty"]
    expected = _expected_pause(faulty, set(r["failing"]))
    paused_wave = faulty["current_wave"]
    later_started = [t["endpoint"] for t in faulty["targets"]
                     if t["wave"] > paused_wave and t["state"] != "pending"]
    rows = [
        {"what": f"rollout to {FLEET:,} devices, waves {'/'.join(str(w['size']) for w in ok['waves'])}",
         "result": f"{ok['state']}: {ok['reason']}", "seconds": ok["seconds"],
         "per wave (s, cumulative)": ", ".join(f"{s:.1f}" for s in ok["wave_seconds"] if s is not None),
         "target": "< 60 s", "met": ok["state"] == "succeeded" and ok["seconds"] < 60},
        {"what": f"same, {FAILING:.0%} of devices failing, error threshold {ERROR_THRESHOLD:.0%}",
         "result": f"{faulty['state']} in wave {paused_wave + 1}: {faulty['reason']}",
         "seconds": faulty["seconds"],
         "per wave (s, cumulative)": ", ".join(f"{s:.1f}" for s in faulty["wave_seconds"] if s is not None),
         "target": f"paused in wave {expected + 1 if expected is not None else '-'}, no later wave",
         "met": faulty["state"] == "paused" and paused_wave == expected and not later_started},
        {"what": f"GET /devices?tags=zone-N&board=B&limit=100 over {r['registered']:,} devices "
                 f"({r['list_matches']} match each)",
         "result": f"p50 {r['list_p50_ms']:.1f} ms", "seconds": r["list_p99_ms"] / 1000,
         "per wave (s, cumulative)": "", "target": "p99 < 100 ms", "met": r["list_p99_ms"] < 100},
    ]
    report("Rollouts and the device registry through the service (simulated LwM2M devices)", rows,
           json_path=json_path, extra={"registration_s": r["registration_s"], "list_p99_ms": r["list_p99_ms"],
                                       "later_wave_started": later_started})
    if plots is not None:
        bar_plot(plots / "rollouts.png", f"Rollout to {FLEET:,} simulated devices: time to each wave's end "
                 "(or the pause)",
                 [f"wave {i + 1} ({w['size']})" for i, w in enumerate(ok["waves"])],
                 {"all succeed": [s or 0.0 for s in ok["wave_seconds"]],
                  f"{FAILING:.0%} failing": [s or 0.0 for s in faulty["wave_seconds"]]}, "s since the start")


if __name__ == "__main__":  # python benchmarks/bench_rollouts.py
    sys.path.insert(0, str(HERE))
    run()

"""Builds on Dramatiq workers: x86-tflm builds per hour with 1 and 2 ``tinymlaas worker``
processes, and how long a killed worker's build waits before it is sent again.

One service instance (in this process) and the workers share a SQLite file and a data directory
(PostgreSQL is what several machines share; the throughput is the builders'); Redis is Debian's
``redis-server`` on a loopback port, started and stopped here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import bar_plot, report

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import ClusterSettings, Settings
from tinymlaas.images import ensure_all
from tinymlaas.net import free_port
from tinymlaas.zoo import get_recipe

BUILDS = 6
LEASE_S = 6.0
TINYMLAAS = str(Path(sys.executable).parent / "tinymlaas")


def _redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def _round(tmp: Path, workers: int, broker: str, kill: bool = False) -> dict[str, float]:
    base = Settings()
    data = tmp / f"w{workers}{'k' if kill else ''}"
    db = f"sqlite:///{data / 'tinymlaas.sqlite3'}"
    settings = base.model_copy(update={
        "data_dir": data, "database_url": db, "zoo_dir": base.zoo_dir,
        "lwm2m": base.lwm2m.model_copy(update={"port": 0}),
        "cluster": ClusterSettings(broker_url=broker, lease_s=LEASE_S)})
    env = {**os.environ, "TINYMLAAS_DATA_DIR": str(data), "TINYMLAAS_DATABASE_URL": db,
           "TINYMLAAS_ZOO_DIR": str(base.zoo_dir), "TINYMLAAS_CLUSTER__BROKER_URL": broker,
           "TINYMLAAS_CLUSTER__LEASE_S": str(LEASE_S)}
    with BackgroundServer(settings) as server:  # the schema first, then the workers
        logs = [(data / f"w{i}.log").open("wb") for i in range(workers)]
        procs = {f"w{i}": subprocess.Popen([TINYMLAAS, "worker", "--name", f"w{i}"], env=env, stdout=logs[i],
                                           stderr=subprocess.STDOUT) for i in range(workers)}
        try:
            return _measure(server, procs, kill)
        except AssertionError:
            for i in range(workers):
                print((data / f"w{i}.log").read_text()[-3000:])
            raise
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(timeout=120)


def _measure(server: BackgroundServer, procs: dict[str, subprocess.Popen[bytes]], kill: bool
             ) -> dict[str, float]:
    base = Settings()
    api: httpx.Client = server.client()
    tflite = get_recipe("hello_world").load(base.zoo_dir)
    model = api.post("/models", files={"file": ("m.tflite", tflite)}, data={"name": "hello_world"}
                     ).json()["id"]
    time.sleep(3)  # the workers connect
    t0 = time.monotonic()
    n = 1 if kill else BUILDS
    jobs = [api.post("/builds", json={"model": model, "target": "x86-tflm", "version": f"1.0.{i}"}
                     ).json()["job"]["id"] for i in range(n)]
    out: dict[str, float] = {}
    if kill:
        while api.get(f"/jobs/{jobs[0]}").json()["state"] != "running":
            time.sleep(0.05)
        time.sleep(1.0)
        procs[_owner(server.settings, jobs[0])].kill()
        killed = time.monotonic()
        while "retrying" not in api.get(f"/jobs/{jobs[0]}").json()["step"] and \
                api.get(f"/jobs/{jobs[0]}").json()["state"] == "running":
            time.sleep(0.05)
        out["retried after (s)"] = time.monotonic() - killed
    for job in jobs:
        while api.get(f"/jobs/{job}").json()["state"] not in ("succeeded", "failed"):
            time.sleep(0.2)
        done = api.get(f"/jobs/{job}").json()
        assert done["state"] == "succeeded", done
    out["seconds"] = time.monotonic() - t0
    out["builds/hour"] = n * 3600 / out["seconds"]
    return out


def _owner(settings: Settings, job_id: str) -> str:
    from sqlalchemy import select

    from tinymlaas.store import Store
    from tinymlaas.store.workers import JobLeaseRow

    store = Store(settings.db_url, settings.artifacts_dir)
    with store.read() as db:
        owner = db.scalars(select(JobLeaseRow.owner).where(JobLeaseRow.job_id == job_id)).one()
    store.close()
    assert owner is not None
    return owner


def run(json_path: Path | None, plots: Path) -> None:
    ensure_all(Settings())
    redis, broker = _redis()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one, two = _round(Path(tmp), 1, broker), _round(Path(tmp), 2, broker)
            dead = _round(Path(tmp), 2, broker, kill=True)
    finally:
        redis.terminate()
        redis.wait()
    rows = [{"workers": 1, "builds": BUILDS, "seconds": one["seconds"], "builds/hour": one["builds/hour"]},
            {"workers": 2, "builds": BUILDS, "seconds": two["seconds"], "builds/hour": two["builds/hour"]}]
    report(f"x86-tflm builds on Dramatiq workers ({os.cpu_count()} cores)", rows, json_path=json_path,
           extra={"speed-up": two["builds/hour"] / one["builds/hour"],
                  "killed worker's build sent again after (s)": dead["retried after (s)"],
                  "lease (s)": LEASE_S})
    print(f"speed-up 2 vs 1 worker: {two['builds/hour'] / one['builds/hour']:.2f}x; a killed worker's build "
          f"was sent again after {dead['retried after (s)']:.1f} s (lease {LEASE_S:.0f} s)")
    bar_plot(plots / "distributed-builds.png", "x86-tflm builds per hour", ["1 worker", "2 workers"],
             {"builds/hour": [one["builds/hour"], two["builds/hour"]]}, "builds per hour")

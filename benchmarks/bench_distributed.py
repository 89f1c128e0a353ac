"""Beyond one machine: x86-tflm builds per hour with 1 and 2 ``tinymlaas worker`` processes (and
how long a killed worker's build waits before it is sent again), then registered devices and
``GET /devices/{ep}`` read p99 with 1 and 2 service instances.

Builds: one service instance (in this process) and the workers share a SQLite file and a data
directory (the throughput is the builders'); Redis is Debian's ``redis-server`` on a loopback
port, started and stopped here. Instances: each in its own process (``--instance``), sharing a
PostgreSQL started here (Debian's binaries, a throwaway cluster) and a data directory; light
simulated LwM2M devices (``_lwm2m_sim``) in this process, split evenly over the instances; every
read is asked of the first instance, so with two half of them are routed to the other.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import bar_plot, percentile, report

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import ClusterSettings, Settings
from tinymlaas.images import ensure_all
from tinymlaas.net import free_port
from tinymlaas.services.accounts import initial_admin_token
from tinymlaas.zoo import get_recipe

BUILDS = 6
LEASE_S = 6.0
TINYMLAAS = str(Path(sys.executable).parent / "tinymlaas")
DEVICES = 1_000
READS = 300


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
    _builds(json_path, plots)
    _instances(json_path, plots)


def _builds(json_path: Path | None, plots: Path) -> None:
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


# -- several instances on one PostgreSQL ---------------------------------------------------

@contextmanager
def _postgres(root: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a loopback port (run as ``postgres`` when we are root)."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    assert initdb, "PostgreSQL is not installed (ci/setup.sh installs Debian's postgresql)"
    bindir = initdb[-1].parent
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root.mkdir(parents=True)
    if owner:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", free_port()
    subprocess.run([*owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run([*owner, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)


def _database(server: str, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


def _instance_main() -> None:
    """``--instance NAME PORT DATABASE DATA``: one service instance until stdin closes."""
    name, port, db, data = sys.argv[2], int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
    base = Settings()
    settings = base.model_copy(update={
        "data_dir": data, "database_url": db, "zoo_dir": base.zoo_dir,
        "lwm2m": base.lwm2m.model_copy(update={"port": 0}),
        "cluster": ClusterSettings(instance=name, api_url=f"http://127.0.0.1:{port}")})
    with BackgroundServer(settings, port=port) as server:
        print("LWM2M " + server.client().get("/orchestrator").json()["uri"], flush=True)
        sys.stdin.read()


async def _instances_round(server: str, instances: int, tmp: Path) -> dict[str, Any]:
    from _lwm2m_sim import close_devices, start_devices

    data = tmp / f"i{instances}"
    db = _database(server, f"bench_i{instances}")
    procs, lwm2m, apis = [], [], []
    try:
        for i in range(instances):  # one after the other: the first creates the schema
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--instance", f"api-{i}", str(port), db,
                str(data), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
            procs.append(proc)
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            assert line.startswith("LWM2M coap://"), line
            host, udp = line.split("//")[1].strip().rsplit(":", 1)
            lwm2m.append((host.strip("[]"), int(udp)))
            apis.append(f"http://127.0.0.1:{port}")
        share = DEVICES // instances
        started = await asyncio.gather(*(start_devices(share, lwm2m[i], tmp / "dev", prefix=f"i{i}")
                                         for i in range(instances)))
        devices = [d for ds, _ in started for d in ds]
        reg_s = max(s for _, s in started)
        token = initial_admin_token(data)
        async with httpx.AsyncClient(base_url=apis[0], timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as api:
            deadline = time.monotonic() + 60  # the registry records what it saw in batches
            recorded = 0
            while recorded < len(devices) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                reply = await api.get("/devices", params={"online": "true", "limit": 1})
                recorded = int(reply.headers["X-Total-Count"])
            sample = random.Random(18).sample(devices, READS)
            lat = []
            for dev in sample:  # one at a time: the latency a person or a script sees
                t0 = time.perf_counter()
                reply = await api.get(f"/devices/{dev.endpoint}")
                lat.append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200 and reply.json()["device"]["online"], reply.text
        close_devices(devices)
        routed = sum(1 for d in sample if not d.endpoint.startswith("i0-"))
        return {"instances": instances, "devices": len(devices), "recorded online": recorded,
                "registrations/s": len(devices) / reg_s, "reads": READS, "routed": routed,
                "read p50 ms": percentile(lat, 50), "read p99 ms": percentile(lat, 99)}
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 60)


def _instances(json_path: Path | None, plots: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-instances-") as tmp:
        os.chmod(tmp, 0o711)  # the postgres user reaches its cluster inside
        with _postgres(Path(tmp) / "pg") as pg:
            rows = [asyncio.run(_instances_round(pg, n, Path(tmp))) for n in (1, 2)]
    load = os.getloadavg()[0]
    report(f"{DEVICES} simulated LwM2M devices on 1 and 2 instances on PostgreSQL ({os.cpu_count()} cores)",
           rows, json_path=json_path, extra={"cores": os.cpu_count(), "load (1 min)": load})
    print(f"load average (1 min) at the end: {load:.1f}")
    bar_plot(plots / "distributed-instances.png", f"{DEVICES} LwM2M devices: GET /devices/{{ep}} via one API",
             ["1 instance", "2 instances"], {"read p50": [r["read p50 ms"] for r in rows],
                                             "read p99": [r["read p99 ms"] for r in rows]}, "ms")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--instance":
        _instance_main()
    else:  # python benchmarks/bench_distributed.py [instances]: only the instances' part
        sys.path.insert(0, str(Path(__file__).parent))
        if sys.argv[1:] == ["instances"]:
            _instances(None, Path("var/plots"))
        else:
            run(None, Path("var/plots"))

"""Fixtures for every test tree: the databases the store runs on.

``database_url`` gives a fresh, empty database: a SQLite file, and, for tests
marked ``postgres``, a new database on a PostgreSQL server this test session
starts itself (Debian's ``postgresql`` binaries, a cluster under ``var/``, a
loopback port, stopped at the end).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tinymlaas.config import REPO_ROOT
from tinymlaas.net import free_port

PG_BIN = Path("/usr/lib/postgresql")


def _pg_bin() -> Path | None:
    found = sorted(PG_BIN.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the package's user."""
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; yields its base URL (no database)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (ci/setup.sh installs Debian's postgresql)")
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    root = REPO_ROOT / "var" / f"postgres-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if owner:
        shutil.chown(root, owner, owner)
    data, port = root / "data", free_port()
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                              "--no-sync", "-E", "UTF8"], owner), check=True, capture_output=True)
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"),
             "-w", "start"]
    subprocess.run(_as_owner(start, owner), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                                 owner), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    import sqlalchemy

    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database, once per kind: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'tinymlaas.sqlite3'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database", choices=("sqlite", "postgres"), default="sqlite",
                     help="the database the services of the acceptance scenarios run on")


@pytest.fixture(scope="session")
def service_databases(request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """Fresh databases for the services the scenarios start, of the kind ``--database`` chooses:
    ``new(data_dir)`` is a SQLite file in the service's data directory or a PostgreSQL database."""
    if request.config.getoption("--database") == "postgres":
        server = request.getfixturevalue("postgres_server")
        return lambda _: new_postgres_database(server)
    return lambda data_dir: f"sqlite:///{data_dir / 'tinymlaas.sqlite3'}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis (Debian's ``redis-server``) on a loopback port, nothing on disk; the
    broker of distributed jobs."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (ci/setup.sh installs Debian's redis-server)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError("redis-server exited at start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)

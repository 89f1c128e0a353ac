"""The operator's CLI against a running service (real HTTP, simulated LwM2M devices): where the
URL and token come from (options, environment, a mode-600 client file), tables and --json, a
rollout followed to its end, and every refusal as one line with the family's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _fleet import Fleet, make_build

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.net import free_port
from tinymlaas.store import Store

pytestmark = pytest.mark.lwm2m


class Service:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        settings = Settings(data_dir=tmp / "service", lwm2m={"port": 0}, devices={"flush_s": 0.05})
        self.server = BackgroundServer(settings)
        self.store = Store(settings.db_url, settings.artifacts_dir)
        with self.server.client() as api:
            self.lwm2m_uri = api.get("/orchestrator").json()["uri"]
        token = self.server.admin_token
        self.env = {**os.environ, "TINYMLAAS_URL": self.server.url, "TINYMLAAS_TOKEN": token,
                    "TINYMLAAS_CLIENT_FILE": str(tmp / "client.toml")}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tinymlaas.cli.main", *args], capture_output=True,
                              text=True, timeout=120, check=False, env=env or self.env)

    def json(self, *args: str) -> Any:
        r = self.cli(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    yield s
    s.store.close()
    s.server.stop()


def one_line(r: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    assert words in r.stderr, r.stderr


@pytest.mark.slow
def test_devices_groups_and_a_followed_rollout(service: Service, hello_world: bytes, tmp_path: Path) -> None:
    for ep in ("cam-1", "cam-2", "cam-3"):
        r = service.cli("devices", "add", ep, "--board", "x86-tflm", "--tag", "hall", "--location", "door")
        assert r.returncode == 0 and f"registered '{ep}' (expected)" in r.stdout, r.stderr
    listed = service.json("devices", "list")  # nobody is online yet
    assert [(d["endpoint"], d["state"], d["online"]) for d in listed] == [
        ("cam-1", "expected", False), ("cam-2", "expected", False), ("cam-3", "expected", False)]
    with Fleet(service.lwm2m_uri, tmp_path / "devices", hello_world) as fleet:
        for ep in ("cam-1", "cam-2", "cam-3"):
            fleet.add(ep)
        _until(lambda: len(service.json("devices", "list", "--online", "--firmware", "1.0.0")) == 3)
        table = service.cli("devices", "list", "--tag", "hall")
        assert "3 of 3 device(s)" in table.stdout and "cam-2" in table.stdout
        assert service.cli("groups", "create", "hall", "--tag", "hall").returncode == 0
        assert [d["endpoint"] for d in service.json("groups", "show", "hall")] == ["cam-1", "cam-2", "cam-3"]
        build = make_build(service.store, hello_world, "2.0.0")
        r = service.cli("rollouts", "create", "--group", "hall", "--build", build.id, "--waves", "1,rest",
                        "--follow")
        assert r.returncode == 0 and "succeeded: every device updated" in r.stdout, r.stderr
        assert {fleet.version(ep) for ep in ("cam-1", "cam-2", "cam-3")} == {"2.0.0"}
        (rollout,) = service.json("rollouts", "list")
        assert rollout["state"] == "succeeded" and rollout["devices"] == 3
        shown = service.cli("rollouts", "show", rollout["id"], "--devices")
        assert "cam-3" in shown.stdout and "succeeded" in shown.stdout
        deps = service.json("deployments", "list", "--endpoint", "cam-2")
        assert deps[0]["build_id"] == build.id and deps[0]["succeeded"]
        job = service.json("jobs", "list")[0]
        assert (job["id"], job["kind"], job["state"]) == (rollout["job_id"], "rollout", "succeeded")
        history = service.json("devices", "history", "cam-1")
        assert history[0]["kind"] == "updated" and history[0]["detail"] == f"to build {build.id}"


def _until(check: Any, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_where_the_url_and_token_come_from(service: Service, tmp_path: Path) -> None:
    bare = {k: v for k, v in service.env.items() if k not in ("TINYMLAAS_URL", "TINYMLAAS_TOKEN")}
    nobody = f"http://127.0.0.1:{free_port()}"
    one_line(service.cli("devices", "list", env={**bare, "TINYMLAAS_URL": nobody}), 12,
             f"no TinyMLaaS service answers at {nobody}")
    r = service.cli("service", "--url", service.server.url, "--token", service.server.admin_token, "login",
                    env=bare)
    assert r.returncode == 0 and "signed in as admin (admin)" in r.stdout, r.stderr
    client_file = tmp_path / "client.toml"
    assert oct(client_file.stat().st_mode & 0o777) == "0o600"
    assert service.cli("devices", "list", env=bare).returncode == 0  # from the client file
    client_file.chmod(0o644)
    one_line(service.cli("devices", "list", env=bare), 2, "chmod 600")
    client_file.chmod(0o600)
    one_line(service.cli("devices", "--token", "tmls_forged", "list", env=bare), 11, "unknown or revoked")
    port = free_port()
    one_line(service.cli("jobs", "--url", f"http://127.0.0.1:{port}", "list"), 12, f"127.0.0.1:{port}")


def test_refusals_are_one_line_with_the_familys_exit_code(service: Service) -> None:
    one_line(service.cli("devices", "show", "ghost"), 3, "no device 'ghost' is registered")
    one_line(service.cli("devices", "add", "bad name"), 2, "endpoint")
    service.cli("devices", "add", "cam-1")
    one_line(service.cli("devices", "add", "cam-1"), 4, "'cam-1' is already registered")
    one_line(service.cli("groups", "create", "g"), 2, "give a query ('tags' and/or 'board') or an explicit")
    one_line(service.cli("rollouts", "create", "--group", "nope", "--build", "b"), 3, "no group 'nope'")
    one_line(service.cli("rollouts", "pause", "nope"), 3, "no rollout 'nope'")
    one_line(service.cli("devices", "approve", "cam-1"), 4, "not waiting for approval")
    one_line(service.cli("toolchains", "add", "t", "--board", "x86-tflm"), 2, "give --image or --archive")
    one_line(service.cli("devices", "list", "--state", "sleeping"), 2, "state")

"""The API served by uvicorn in a background thread of this process.

For callers that need the real HTTP service next to their own work: the
lifecycle dry-run, benchmarks and the acceptance tests; and the service in its own
process, for those that must crash it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings
from tinymlaas.errors import TinyMLaaSError
from tinymlaas.net import free_port, free_udp_port
from tinymlaas.services.accounts import initial_admin_token
from tinymlaas.web.sse import SHUTDOWN_GRACE_S


class BackgroundServer:
    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 20.0) -> None:
        port = port or free_port(host)
        self.settings = settings
        self.port = port
        self.url = f"http://{host}:{port}"
        app = create_app(settings, announce_admin=False)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning",
                                                    timeout_graceful_shutdown=SHUTDOWN_GRACE_S))
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise TinyMLaaSError(f"the API did not start on {self.url}")
            time.sleep(0.05)

    @property
    def admin_token(self) -> str:
        """The token of the first admin, which a new service makes (its data directory keeps it)."""
        return initial_admin_token(self.settings.data_dir)

    def client(self, timeout: float = 60.0) -> httpx.Client:
        """An HTTP client of this service, calling as its first admin."""
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.admin_token}"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess:
    """The service (``tinymlaas serve``) in its own process, so it can die as a crash would
    (SIGKILL: no shutdown, no draining of jobs) and start again on the same ports and data,
    where its devices find it again. Its log is ``data_dir/service.log``."""

    def __init__(self, data_dir: Path, *, orchestrator: str = "lwm2m", database_url: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.orchestrator = orchestrator
        self.port = free_port()
        self.lwm2m_port = free_udp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TINYMLAAS_DATA_DIR": str(data_dir),
                    "TINYMLAAS_LWM2M__PORT": str(self.lwm2m_port), **(env or {})}
        if database_url is not None:
            self.env["TINYMLAAS_DATABASE_URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "service.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tinymlaas.cli.main", "serve", "--port", str(self.port),
                 "--orchestrator", self.orchestrator], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TinyMLaaSError(f"the service exited ({self.process.returncode}) while starting; "
                                     f"see {self.data_dir / 'service.log'}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TinyMLaaSError(f"the service did not answer on {self.url} within {timeout_s:.0f} s")

    def kill(self) -> None:
        """A crash: the process dies at once, whatever it was doing."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, timeout: float = 60.0) -> httpx.Client:
        """An HTTP client of this service, calling as its first admin."""
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {initial_admin_token(self.data_dir)}"})

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The API served by uvicorn in a background thread of this process.

For callers that need the real HTTP service next to their own work: the
lifecycle dry-run, benchmarks and the acceptance tests.
"""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from tinymlaas.api.main import create_app
from tinymlaas.config import Settings
from tinymlaas.errors import TinyMLaaSError
from tinymlaas.net import free_port
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

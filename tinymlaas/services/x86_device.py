"""An x86 device: the board's device image booting an OS image, on the host network.

The container gets the firmware folder as its read-only ``/flash`` and serves
on 127.0.0.1 (``--network host``); nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tinymlaas.config import get_settings
from tinymlaas.errors import BuildFailed, DeviceUnreachable
from tinymlaas.images import current_image, docker_client
from tinymlaas.models import Board, DeviceAttach
from tinymlaas.net import free_port


class DeviceClient:
    """Talks to a booted x86 device's inference endpoint."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.base = f"http://{host}:{port}"
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply: dict[str, Any] = json.loads(resp.read())
                return reply
        except urllib.error.HTTPError as exc:
            raise DeviceUnreachable(f"device refused {path}: {exc.read().decode()}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise DeviceUnreachable(f"device at {self.base} does not answer: {exc}") from exc

    def info(self) -> dict[str, Any]:
        return self._call("/info")

    def infer_raw(self, tensor: list[int]) -> dict[str, Any]:
        return self._call("/infer", {"input": tensor})

    def infer(self, values: list[float]) -> dict[str, Any]:
        return self._call("/infer", {"values": values})


class X86Device:
    """A device container started and stopped by the service (``with`` closes it).

    With ``attach`` it is also managed by the service (LwM2M or HTTP pull); its flash
    is then writable (FOTA replaces the image on it) and its credentials (OSCORE
    context or token) are mounted at /credentials.
    """

    def __init__(self, board: Board, firmware_dir: Path, boot_timeout_s: float = 30.0, *,
                 attach: DeviceAttach | None = None, trial_s: float | None = None,
                 soak_s: float | None = None) -> None:
        if board.device is None:
            raise BuildFailed(f"board '{board.name}' has no device image")

        self.client = docker_client()
        image = current_image(get_settings(), board.device.image, self.client)
        self.port = free_port()
        args = ["--port", str(self.port)]
        volumes = {str(firmware_dir.resolve()): {"bind": "/flash", "mode": "rw" if attach else "ro"}}
        if attach is not None:
            args += attach.args("/credentials")
            if attach.credentials is not None:
                volumes[str(attach.credentials.resolve())] = {"bind": "/credentials", "mode": "rw"}
        self.container = self.client.containers.run(
            image,
            args,
            volumes=volumes,
            network_mode="host",
            init=True,
            # A new image's trial: how long it has to be healthy, and how long it must then keep
            # running, before the boot ROM confirms it (defaults: the ROM's own, 60 s and 10 s).
            environment={k: str(v) for k, v in (("TINYMLAAS_TRIAL_S", trial_s), ("TINYMLAAS_SOAK_S", soak_s))
                         if v is not None},
            labels={"org.tinymlaas.role": "device", "org.tinymlaas.board": board.name},
            detach=True,
        )
        try:
            self.banner = self._wait_ready(boot_timeout_s)
        except BaseException:
            self.close()
            raise
        self.device = DeviceClient(self.port)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.logs()
            for line in logs.splitlines():
                if " READY " in line:
                    return line
            self.container.reload()
            if self.container.status == "exited":
                raise DeviceUnreachable(f"device exited while booting: {logs.strip()[-300:]}")
            time.sleep(0.1)
        raise DeviceUnreachable(f"device did not print READY within {timeout:.0f} s")

    def logs(self) -> str:
        raw: bytes = self.container.logs()
        return raw.decode(errors="replace")

    def close(self) -> None:
        # Already gone is fine: closing must not mask the error that led here.
        with contextlib.suppress(Exception):
            self.container.remove(force=True)

    def __enter__(self) -> X86Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

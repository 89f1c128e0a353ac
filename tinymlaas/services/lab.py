"""A service to look at after the demo: the API and the web app on a known port, with the demo's
devices joined and running, until it is stopped.

A fresh service (its own data directory, LwM2M with OSCORE) trains hello_world and its float
variant, builds firmware 1.0.0 for each board and the float model for the first one (so there is
something to deploy), boots each board's device (an x86 container, or the bridge in front of an
emulated MCU) with its credentials and waits until it joined. While it runs, every device runs an
inference every few seconds through the service, so the dashboard's figures move.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.errors import InvalidInput, TinyMLaaSError
from tinymlaas.models import JoinInfo
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.services.accounts import INITIAL_ADMIN

# The dry-run's way of calling the service, joining a device and booting a board's device.
from tinymlaas.services.lifecycle import _Api, _device, _Joiner
from tinymlaas.targets import get_board

#: Seconds between two inferences on each device.
INFER_EVERY_S = 5.0


@dataclass
class Lab:
    url: str
    user: str
    password: str
    devices: list[str] = field(default_factory=list)


def check_port(host: str, port: int) -> None:
    """Refuse a port something else listens on, before any work."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            raise InvalidInput(f"port {port} on {host} is taken: give another with --port") from None


def _infer_loop(api: _Api, endpoints: list[str], stop: threading.Event) -> None:
    """x from 0 to 2 pi and round again on every device (the service quantizes it for the model)."""
    x = 0.0
    while not stop.wait(INFER_EVERY_S):
        x = (x + 0.7) % (2 * math.pi)
        for ep in endpoints:
            with contextlib.suppress(TinyMLaaSError):  # a device being updated does not answer now
                api.call("POST", f"/devices/{ep}/infer", json={"values": [x]})


@contextlib.contextmanager
def lab(settings: Settings, work: Path, boards: list[str], *, host: str = "127.0.0.1", port: int = 8000,
        progress: Progress = no_progress) -> Iterator[Lab]:
    """The service with the boards' devices joined; everything stops when the block ends."""
    targets = [get_board(settings.targets_dir, b) for b in boards]
    check_port(host, port)
    service_settings = settings.model_copy(update={
        "data_dir": work / "service", "database_url": None, "orchestrator": "lwm2m",
        "telemetry_interval_s": 15.0,
        "lwm2m": settings.lwm2m.model_copy(update={"port": 0, "security": "oscore"})})
    with BackgroundServer(service_settings, host=host, port=port) as server, \
            server.client(timeout=300) as http, contextlib.ExitStack() as devices:
        api = _Api(http)
        join = _Joiner(server.url, JoinInfo.model_validate(api.call("GET", "/orchestrator")), work)
        progress("training hello_world and its float variant", 0.05)
        for recipe in ("hello_world", "hello_world_float"):
            api.job(api.call("POST", "/models/train", json={"recipe": recipe})["id"])
        plan = [(b.name, "hello_world", "1.0.0") for b in targets]
        plan.append((targets[0].name, "hello_world_float", "1.0.1"))
        builds = {}
        for i, (target, model, version) in enumerate(plan):
            progress(f"building {model} {version} for {target}", 0.1 + 0.6 * i / len(plan))
            reply = api.call("POST", "/builds", json={"model": model, "target": target, "version": version})
            api.job(reply["job"]["id"])
            builds[(target, model)] = api.call("GET", f"/builds/{reply['build']['id']}")
        names = []
        for board in targets:
            ep = f"demo-{board.name}"
            progress(f"booting {ep}", 0.75)
            flash = work / ep / "flash"
            flash.mkdir(parents=True)
            for name, sha in builds[(board.name, "hello_world")]["firmware"]["artifacts"].items():
                (flash / name).write_bytes(http.get(f"/artifacts/{sha}").content)
            attach = join.attach(ep, api.call("POST", f"/devices/{ep}/credentials", json={"replace": True}))
            devices.enter_context(_device(board, attach, flash, settings.targets_dir))
            api.online(ep)
            api.call("PATCH", f"/devices/{ep}", json={"name": f"the demo's {board.name}", "tags": ["demo"]})
            names.append(ep)
        stop = threading.Event()
        loop = threading.Thread(target=_infer_loop, args=(api, names, stop),
                                name="lab-inferences", daemon=True)
        loop.start()
        admin = json.loads((service_settings.data_dir / INITIAL_ADMIN).read_text())
        progress("ready", 1.0)
        try:
            yield Lab(url=f"{server.url}/", user=admin["user"], password=admin["password"], devices=names)
        finally:
            stop.set()
            loop.join(timeout=30)

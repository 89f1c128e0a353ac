"""One bridge process fronting two emulated MCUs (real QEMU, the echo firmware from the real
toolchain) against the live service, over LwM2M with OSCORE and over HTTP pull with tokens: each
board joins on its own endpoint with its own credentials, the bridge lists them and their health,
a board whose emulator dies is down then restarted, and removing the bridge decommissions its
boards."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from _fleet import wait_until
from mcu_helpers import EchoFirmware

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.models import DeviceAttach, DeviceCredentials, JoinInfo
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.services.mcu_device import BridgedBoard, BridgeProcess

pytestmark = [pytest.mark.lwm2m, pytest.mark.qemu, pytest.mark.slow]
BOARD = "lm3s6965evb"




def children(pid: int) -> list[tuple[int, str]]:
    """The processes ``pid`` started, with their command lines (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry.name), cmd))
    return found


@pytest.mark.parametrize("protocol", ["lwm2m", "http-pull"])
def test_one_bridge_fronts_two_boards(echo_firmware: EchoFirmware, tmp_path: Path, protocol: str) -> None:
    if QemuEmulator.unavailable():
        pytest.skip("needs qemu-system-arm")
    board, image, _ = echo_firmware(BOARD)
    settings = Settings(data_dir=tmp_path / "service", orchestrator=protocol,
                        lwm2m={"port": 0, "security": "oscore"}, http_pull={"security": "token"})
    with BackgroundServer(settings) as server, server.client() as api:
        join = JoinInfo.model_validate(api.get("/orchestrator").json())

        def attach(endpoint: str, credentials: dict[str, Any]) -> DeviceAttach:
            """How a device joins with its credentials (OSCORE, or a token), as the orchestrator says."""
            return orchestrator_plugin(protocol).attach(
                join, api_url=server.url, endpoint=endpoint, folder=tmp_path / endpoint,
                credentials=DeviceCredentials.model_validate(credentials))

        made = api.post("/bridges", json={"endpoint": "bridge-1", "location": "rack 3"})
        assert made.status_code == 201, made.text
        bridge_attach = attach("bridge-1", made.json()["credentials"])
        boards = []
        for ep in ("mcu-a", "mcu-b"):
            reply = api.post("/devices", json={"endpoint": ep, "board": BOARD, "tags": ["rack-3"]})
            assert reply.status_code == 201, reply.text
            flash = tmp_path / ep / "flash"
            shutil.copytree(image.parent, flash)
            boards.append(BridgedBoard(attach(ep, reply.json()["credentials"]), board, flash))
        bridge = BridgeProcess.fronting(boards, bridge_attach, tmp_path / "bridge.log",
                                        targets_dir=settings.targets_dir, emulator="qemu")
        try:
            def listed() -> dict[str, Any] | None:
                b = api.get("/bridges/bridge-1").json()
                devs = b["devices"]
                ok = b["online"] and len(devs) == 2 and all(  # what a board is: read after it joins
                    d["online"] and d["health"] == "running" and d["reported"] for d in devs)
                return dict(b) if ok else None

            try:
                found = wait_until(listed, 60, "the bridge and its two boards joining")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; bridge log: {bridge.logs()[-3000:]}") from None
            assert [(d["endpoint"], d["secure"], d["reported"]["board"]) for d in found["devices"]] == [
                ("mcu-a", True, BOARD), ("mcu-b", True, BOARD)]
            assert found["location"] == "rack 3"
            reply = api.post("/devices/mcu-b/infer", json={"input": [1, 2, 3, 4]})
            assert reply.status_code == 200 and reply.json()["instructions"] > 0, reply.text

            # mcu-a's emulator dies: it is down, then the bridge restarts it; mcu-b keeps serving.
            (flasher,) = [pid for pid, cmd in children(bridge.proc.pid) if str(tmp_path / "mcu-a") in cmd]
            os.killpg(flasher, signal.SIGKILL)  # the flasher runs in its own process group
            wait_until(lambda: "mcu-a: down: its flasher exited with code" in bridge.logs()
                 and bridge.logs().count("MCU restarted: TINYMLAAS READY") == 1, 30, "mcu-a restarted")
            wait_until(lambda: api.get("/devices/mcu-a").json()["device"]["health"] == "running", 30,
                 "the service hearing mcu-a is running again")
            assert api.post("/devices/mcu-a/infer", json={"input": [1, 2, 3, 4]}).status_code == 200

            removed = api.delete("/bridges/bridge-1").json()
            assert [(d["endpoint"], d["state"]) for d in removed["devices"]] == [
                ("mcu-a", "decommissioned"), ("mcu-b", "decommissioned")]
            assert api.get("/bridges").json() == [] and api.get("/devices").json() == []
            gone = api.post("/devices/mcu-b/infer", json={"input": [1, 2, 3, 4]})
            assert gone.status_code in (404, 504), gone.text  # forgotten by the orchestrator, or offline
        finally:
            bridge.stop()

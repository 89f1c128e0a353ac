"""``tinymlaas lab``: the service a newcomer opens after the demo, with the demo's devices in it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tinymlaas.config import Settings
from tinymlaas.net import free_port
from tinymlaas.services.lab import lab


def test_a_taken_port_is_refused_in_one_line_before_any_work() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run([str(Path(sys.executable).with_name("tinymlaas")), "lab", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is taken: give another with --port"]


@pytest.mark.docker
@pytest.mark.x86
@pytest.mark.slow
def test_the_lab_shows_its_running_device_in_the_web_app(tmp_path: Path) -> None:
    from tinymlaas.images import ensure_all

    settings = Settings()
    ensure_all(settings)
    with lab(settings, tmp_path, ["x86-tflm"], port=free_port()) as running, \
            httpx.Client(base_url=running.url, timeout=30) as browser:
        assert running.devices == ["demo-x86-tflm"]
        r = browser.post("/ui/login", data={"name": running.user, "password": running.password})
        assert r.status_code == 303
        page = browser.get("/ui/operator/devices").text
        assert "demo-x86-tflm</a><td><span class=\"state state-succeeded\">online" in page
        assert "hello_world_float:1 for x86-tflm" in browser.get("/ui/operator/devices/demo-x86-tflm").text
        deadline = time.monotonic() + 30  # the lab's inferences arrive
        while not browser.get("/devices/demo-x86-tflm").json()["capabilities"]["inference_count"]:
            assert time.monotonic() < deadline, "no inference ran on the lab's device"
            time.sleep(1)

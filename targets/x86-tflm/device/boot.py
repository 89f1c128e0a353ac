#!/usr/bin/env python3
"""Boot ROM of the x86 device: boots the OS image on /flash, reboots on request, and rolls a
new image back unless it proves itself.

The firmware installs a new image by keeping the old one (``firmware.pyz.prev``),
writing the new one, marking it on trial (``fota.json``, state "trial") and asking
for a reboot (exit REBOOT). An image on trial must show it is healthy (state
"healthy": it re-joined its service and answered a test inference) within
``TINYMLAAS_TRIAL_S`` seconds and then keep running for ``TINYMLAAS_SOAK_S`` more
(counted from then, so a slow start does not shorten it); then the ROM confirms it
(state "confirmed") and the image reports the update done. If it exits first, at any
time and with any code, or is not healthy in time (it hangs, or runs without its
agent), the ROM stops it, puts the previous image back, marks the update
"rolled-back" with the reason and boots the previous image, which then reports the
failed update. A confirmed image is the device's image from then on; if it stops with an
error later, the ROM restarts it, as a watchdog would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FLASH = Path(os.environ.get("TINYMLAAS_FLASH", "/flash"))
IMAGE = FLASH / "firmware.pyz"
PREVIOUS = FLASH / "firmware.pyz.prev"
MARKER = FLASH / "fota.json"
REBOOT = 75
TRIAL_S = float(os.environ.get("TINYMLAAS_TRIAL_S", "60"))
SOAK_S = float(os.environ.get("TINYMLAAS_SOAK_S", "10"))
RESTART_S = 1.0


def marker() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(MARKER.read_text())
        return data
    except (OSError, ValueError):
        return {}


def write_marker(data: dict[str, Any]) -> None:
    tmp = MARKER.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, MARKER)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_trial() -> bool:
    """The image to boot was just installed and has not confirmed itself yet."""
    m = marker()
    return m.get("state") in ("trial", "healthy") and IMAGE.is_file() and m.get("to_sha256") == sha256(IMAGE)


def trial(child: subprocess.Popen[bytes]) -> str | None:
    """Watch an image on trial; None once confirmed, else why it failed (it is stopped)."""
    started = time.monotonic()
    healthy_at: float | None = None
    while healthy_at is not None or time.monotonic() - started < TRIAL_S:
        code = child.poll()
        if code is not None:
            return f"the new image stopped (exit {code}) before it was confirmed"
        m = marker()
        if m.get("state") == "healthy":
            healthy_at = healthy_at or time.monotonic()
            if time.monotonic() - healthy_at >= SOAK_S:
                write_marker({**m, "state": "confirmed"})  # the image now reports the update done
                return None
        time.sleep(0.2)
    child.kill()
    child.wait()
    return f"the new image was not healthy within {TRIAL_S:g} s (it hung, or ran without its agent)"


def roll_back(reason: str) -> None:
    print(f"boot: {reason}; rolling back", flush=True)
    if PREVIOUS.is_file():
        shutil.move(str(PREVIOUS), str(IMAGE))
    write_marker({**marker(), "state": "rolled-back", "reason": reason})


def main() -> int:
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        else:
            sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        if not IMAGE.is_file():
            print(f"boot: no OS image at {IMAGE}", flush=True)
            return 1
        on_probation = on_trial()
        print(f"boot: starting {IMAGE.name} ({IMAGE.stat().st_size} bytes)"
              f"{', on trial' if on_probation else ''}", flush=True)
        child = subprocess.Popen([sys.executable, str(IMAGE), "--image", str(IMAGE), *sys.argv[1:]])
        if on_probation:
            failed = trial(child)
            if failed is not None:
                roll_back(failed)
                continue
            print("boot: the new image confirmed itself", flush=True)
        code = child.wait()
        if code == REBOOT:
            print("boot: reboot requested", flush=True)
            continue
        if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM):  # the device is shutting down
            return code
        print(f"boot: the image stopped (exit {code}); restarting it", flush=True)
        time.sleep(RESTART_S)


if __name__ == "__main__":
    sys.exit(main())

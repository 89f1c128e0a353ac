#!/usr/bin/env python3
"""Boot ROM of the x86 device: boots the OS image on /flash and reboots on request.

The firmware asks for a reboot (after installing a new image) by exiting with
REBOOT. If a freshly installed image does not come up, the previous image
(``firmware.pyz.prev``) is restored and booted, as an A/B bootloader would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

FLASH = Path(os.environ.get("TINYMLAAS_FLASH", "/flash"))
IMAGE = FLASH / "firmware.pyz"
PREVIOUS = FLASH / "firmware.pyz.prev"
REBOOT = 75
BOOT_GRACE_S = 5.0


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
        print(f"boot: starting {IMAGE.name} ({IMAGE.stat().st_size} bytes)", flush=True)
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, str(IMAGE), "--image", str(IMAGE), *sys.argv[1:]])
        code = child.wait()
        if code == REBOOT:
            print("boot: reboot requested", flush=True)
            continue
        if code != 0 and PREVIOUS.is_file() and time.monotonic() - started < BOOT_GRACE_S:
            print(f"boot: new image failed (exit {code}); rolling back", flush=True)
            shutil.move(str(PREVIOUS), str(IMAGE))
            continue
        return code


if __name__ == "__main__":
    sys.exit(main())

"""FOTA (Object 5) and SOTA (Object 9), driven by the server.

FOTA: reset the state machine if needed, observe ``/5/0``, write the Package
URI, wait for Downloaded (or an Update Result saying why not; "connection lost"
is retried), execute Update, then wait for the device to come back (it reboots
and registers again) and read the Update Result and its firmware version.

SOTA: the same over ``/9/x`` (download -> DELIVERED -> Install -> Activate),
then check that the TinyML object reports the new model. A device that cannot
do it says so (no Object 9, or Update Result 54/58) and the caller may fall
back to FOTA.

Package URIs point at the API (``/devices/{ep}/packages/{sha256}?grant=...``):
content-addressed, so the device checks the SHA-256, with a grant that only
the authenticated device learns (it travels inside the LwM2M write).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from tinymlaas.errors import DeviceError, DeviceUnreachable, InvalidInput
from tinymlaas.lwm2m.codec import Content
from tinymlaas.lwm2m.objects import TINYML_OBJECT
from tinymlaas.lwm2m.server import LwM2MServer
from tinymlaas.models import UpdateOutcome
from tinymlaas.plugins.base import Progress, no_progress

log = logging.getLogger("tinymlaas.lwm2m.deploy")

FW_STATES = {0: "idle", 1: "downloading", 2: "downloaded", 3: "updating"}
FW_RESULTS = {
    0: "initial value", 1: "firmware updated successfully", 2: "not enough flash memory",
    3: "out of RAM during downloading", 4: "connection lost during downloading",
    5: "integrity check failure", 6: "unsupported package type", 7: "invalid URI",
    8: "firmware update failed", 9: "unsupported protocol", 10: "firmware update cancelled",
    11: "firmware update deferred",
}
SW_STATES = {0: "initial", 1: "download started", 2: "downloaded", 3: "delivered", 4: "installed"}
SW_RESULTS = {
    0: "initial value", 1: "downloading", 2: "software successfully installed",
    3: "successfully downloaded and package integrity verified",
    50: "not enough storage", 51: "out of memory during downloading",
    52: "connection lost during downloading", 53: "package integrity check failure",
    54: "unsupported package type", 56: "invalid URI", 57: "device defined update error",
    58: "software installation failure", 59: "uninstallation failure",
}
#: Software results that mean "this device cannot take a module": fall back to FOTA.
SW_CANNOT = {54, 57, 58}


def _int(content: Content, path: tuple[int, ...], default: int = -1) -> int:
    value = content.get(path, default)
    return int(value) if isinstance(value, int | float) else default


class Updater:
    """Runs FOTA and SOTA on one server; ``package_url(endpoint, sha256)`` makes the URI."""

    def __init__(self, server: LwM2MServer, package_url: Callable[[str, str], str]) -> None:
        self.server = server
        self.package_url = package_url
        self.settings = server.settings

    def _uri(self, endpoint: str, sha256: str) -> str:
        uri = self.package_url(endpoint, sha256)
        if len(uri) > 255:
            raise InvalidInput(f"the package URI for '{endpoint}' is {len(uri)} characters; "
                               "LwM2M allows 255 (use a shorter endpoint name or base URL)")
        return uri

    # -- FOTA ----------------------------------------------------------------------
    async def fota(self, endpoint: str, sha256: str, *, progress: Progress = no_progress) -> UpdateOutcome:
        started = time.monotonic()
        out = UpdateOutcome(endpoint=endpoint, kind="firmware", package_sha256=sha256,
                            succeeded=False, result_code=0)
        srv = self.server
        reg = srv.registry.online(endpoint)
        if 5 not in reg.objects:
            raise DeviceError(f"device '{endpoint}' has no Firmware Update object (5)")
        progress("reading the device", 0.02)
        out.firmware_before = str(await srv.read_value(endpoint, "/3/0/3"))
        uri = self._uri(endpoint, sha256)
        obs = None
        try:
            for attempt in range(1, self.settings.retries + 2):
                out.attempts = attempt
                state = await srv.read(endpoint, "/5/0")
                if _int(state, (5, 0, 3)) == 3:
                    raise DeviceError(f"device '{endpoint}' is installing another update")
                if _int(state, (5, 0, 3)) != 0 or _int(state, (5, 0, 5)) != 0:
                    await srv.write(endpoint, "/5/0/1", "")  # reset the state machine
                if obs is None:
                    obs = await srv.observe(endpoint, "/5/0")
                progress(f"device downloads the package (attempt {attempt})", 0.1)
                await srv.write(endpoint, "/5/0/1", uri)
                value = await obs.wait_for(
                    lambda v: _int(v, (5, 0, 3)) == 2 or (_int(v, (5, 0, 3)) == 0 and _int(v, (5, 0, 5)) > 0),
                    self.settings.download_timeout_s)
                out.states.append(FW_STATES.get(_int(value, (5, 0, 3)), "?"))
                result = _int(value, (5, 0, 5))
                if _int(value, (5, 0, 3)) == 2:
                    break
                out.result_code, out.result = result, FW_RESULTS.get(result, f"result {result}")
                if result != 4 or attempt > self.settings.retries:
                    out.detail = f"the device refused the package: {out.result}"
                    return self._done(out, started)
                log.warning("%s: %s; downloading again", endpoint, out.result)
            progress("device installs the firmware", 0.6)
            old_registration = srv.registry.online(endpoint).id
            await srv.execute(endpoint, "/5/0/2")
            out.states.append("updating")
            # The device reboots (a new registration) or updates in place (state back to idle).
            await self._wait_back(endpoint, old_registration, obs)
        finally:
            if obs is not None:
                obs.cancel()
        progress("reading the result", 0.9)
        final = await srv.read(endpoint, "/5/0")
        out.result_code = _int(final, (5, 0, 5))
        out.result = FW_RESULTS.get(out.result_code, f"result {out.result_code}")
        out.states.append(FW_STATES.get(_int(final, (5, 0, 3)), "?"))
        out.firmware_after = str(await srv.read_value(endpoint, "/3/0/3"))
        out.succeeded = out.result_code == 1
        if not out.succeeded:
            out.detail = f"the device did not take the firmware: {out.result}"
        if TINYML_OBJECT in srv.registry.online(endpoint).objects:
            out.model_sha256 = str(await srv.read_value(endpoint, f"/{TINYML_OBJECT}/0/6"))
        progress("done", 1.0)
        return self._done(out, started)

    async def _wait_back(self, endpoint: str, old_registration: str, obs: Any) -> None:
        registry, timeout = self.server.registry, self.settings.update_timeout_s

        def rebooted() -> bool:
            rec = registry.devices.get(endpoint)
            reg = rec.registration if rec is not None else None
            return reg is not None and reg.id != old_registration

        def in_place(v: Content) -> bool:
            return _int(v, (5, 0, 3)) in (0, 2) and _int(v, (5, 0, 5)) in (1, 8)

        waiting = {asyncio.ensure_future(registry.wait_for(rebooted, timeout)),
                   asyncio.ensure_future(obs.wait_for(in_place, timeout))}
        try:
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if any(not t.exception() for t in done):
                    return
        finally:
            for t in waiting:
                t.cancel()
        raise DeviceUnreachable(f"device '{endpoint}' did not come back within {timeout:.0f} s "
                                "after the update")

    # -- SOTA ------------------------------------------------------------------------
    async def sota(self, endpoint: str, sha256: str, *, model_sha256: str | None = None,
                   progress: Progress = no_progress) -> UpdateOutcome:
        started = time.monotonic()
        out = UpdateOutcome(endpoint=endpoint, kind="model", package_sha256=sha256,
                            succeeded=False, result_code=0)
        srv = self.server
        reg = srv.registry.online(endpoint)
        if 9 not in reg.objects:
            out.result_code, out.result = 54, "no Software Management object (9)"
            out.detail = f"device '{endpoint}' cannot install modules"
            return self._done(out, started)
        iid = (reg.objects[9] or [0])[0]
        base = f"/9/{iid}"
        progress("reading the module slot", 0.02)
        state = await srv.read(endpoint, base)
        if _int(state, (9, iid, 7)) != 0:  # keep the active module running until the new one is
            await srv.execute(endpoint, f"{base}/6", "1")
        obs = await srv.observe(endpoint, base)
        try:
            for attempt in range(1, self.settings.retries + 2):
                out.attempts = attempt
                progress(f"device downloads the module (attempt {attempt})", 0.1)
                await srv.write(endpoint, f"{base}/3", self._uri(endpoint, sha256))
                value = await obs.wait_for(
                    lambda v: _int(v, (9, iid, 7)) == 3 or _int(v, (9, iid, 9)) >= 50,
                    self.settings.download_timeout_s)
                result = _int(value, (9, iid, 9))
                out.states.append(SW_STATES.get(_int(value, (9, iid, 7)), "?"))
                if _int(value, (9, iid, 7)) == 3:
                    break
                out.result_code, out.result = result, SW_RESULTS.get(result, f"result {result}")
                out.detail = str(value.get((9, iid, 16), "")) or out.result
                if result != 52 or attempt > self.settings.retries:
                    return self._done(out, started)
            progress("device installs the module", 0.5)
            await srv.execute(endpoint, f"{base}/4")
            value = await obs.wait_for(lambda v: _int(v, (9, iid, 7)) == 4 or _int(v, (9, iid, 9)) >= 50,
                                       self.settings.update_timeout_s)
            out.states.append(SW_STATES.get(_int(value, (9, iid, 7)), "?"))
            if _int(value, (9, iid, 7)) != 4:
                out.result_code = _int(value, (9, iid, 9))
                out.result = SW_RESULTS.get(out.result_code, f"result {out.result_code}")
                out.detail = str(value.get((9, iid, 16), "")) or out.result
                return self._done(out, started)
            progress("device activates the module", 0.8)
            await srv.execute(endpoint, f"{base}/10")
            value = await obs.wait_for(lambda v: v.get((9, iid, 12)) is True, self.settings.update_timeout_s)
            out.states.append("active")
            out.result_code = _int(value, (9, iid, 9))
            out.result = SW_RESULTS.get(out.result_code, f"result {out.result_code}")
        finally:
            obs.cancel()
        if TINYML_OBJECT in reg.objects:
            out.model_sha256 = str(await srv.read_value(endpoint, f"/{TINYML_OBJECT}/0/6"))
        out.succeeded = out.result_code == 2 and (model_sha256 is None or out.model_sha256 == model_sha256)
        if not out.succeeded and out.result_code == 2:
            out.detail = f"the device reports model {out.model_sha256}, not {model_sha256}"
        progress("done", 1.0)
        return self._done(out, started)

    async def deploy_model(self, endpoint: str, module_sha256: str, *, model_sha256: str | None,
                           fallback_firmware_sha256: str | None,
                           progress: Progress = no_progress) -> UpdateOutcome:
        """SOTA; if the device says it cannot, FOTA with the firmware that holds the model."""
        out = await self.sota(endpoint, module_sha256, model_sha256=model_sha256, progress=progress)
        if out.succeeded or out.result_code not in SW_CANNOT or not fallback_firmware_sha256:
            return out
        log.info("%s cannot swap models live (%s): falling back to FOTA", endpoint, out.detail)
        fw = await self.fota(endpoint, fallback_firmware_sha256, progress=progress)
        fw.kind = "model"
        fw.fell_back_to_firmware = True
        fw.detail = f"SOTA refused ({out.detail}); installed by FOTA. {fw.detail}".strip()
        return fw

    @staticmethod
    def _done(out: UpdateOutcome, started: float) -> UpdateOutcome:
        out.seconds = round(time.monotonic() - started, 3)
        log.info("%s %s update of %s: %s (%s)", out.endpoint, out.kind, out.package_sha256[:12],
                 "succeeded" if out.succeeded else "failed", out.result)
        return out


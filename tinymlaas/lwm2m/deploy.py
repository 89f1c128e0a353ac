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
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from tinymlaas.edge.lwm2m import vocab
from tinymlaas.edge.lwm2m.codec import Content
from tinymlaas.edge.lwm2m.vocab import (
    SW_CANNOT,
    Dev,
    Fw,
    FwResult,
    FwState,
    Obj,
    Sw,
    SwResult,
    SwState,
    Tiny,
    fw_result_words,
    fw_state_words,
    sw_result_words,
    sw_state_words,
)
from tinymlaas.errors import DeviceError, DeviceUnreachable, InvalidInput
from tinymlaas.lwm2m.server import LwM2MServer
from tinymlaas.models import UpdateOutcome
from tinymlaas.plugins.base import Progress, no_progress

log = logging.getLogger("tinymlaas.lwm2m.deploy")

FW_STATE = vocab.path(Obj.FIRMWARE, 0, Fw.STATE)
FW_RESULT = vocab.path(Obj.FIRMWARE, 0, Fw.UPDATE_RESULT)
FIRMWARE_VERSION = vocab.uri(Obj.DEVICE, 0, Dev.FIRMWARE_VERSION)
MODEL_SHA256 = vocab.uri(Obj.TINYML, 0, Tiny.MODEL_SHA256)
FW = vocab.uri(Obj.FIRMWARE, 0)
FW_URI = vocab.uri(Obj.FIRMWARE, 0, Fw.PACKAGE_URI)


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
        if Obj.FIRMWARE not in reg.objects:
            raise DeviceError(f"device '{endpoint}' has no Firmware Update object (5)")
        progress("reading the device", 0.02)
        out.firmware_before = str(await srv.read_value(endpoint, FIRMWARE_VERSION))
        uri = self._uri(endpoint, sha256)
        obs = None
        try:
            for attempt in range(1, self.settings.retries + 2):
                out.attempts = attempt
                state = await srv.read(endpoint, FW)
                if _int(state, FW_STATE) == FwState.updating:
                    raise DeviceError(f"device '{endpoint}' is installing another update")
                if _int(state, FW_STATE) != FwState.idle or _int(state, FW_RESULT) != FwResult.initial:
                    await srv.write(endpoint, FW_URI, "")  # reset the state machine
                if obs is None:
                    obs = await srv.observe(endpoint, FW)
                progress(f"device downloads the package (attempt {attempt})", 0.1)
                await srv.write(endpoint, FW_URI, uri)
                value = await obs.wait_for(
                    lambda v: _int(v, FW_STATE) == FwState.downloaded
                    or (_int(v, FW_STATE) == FwState.idle and _int(v, FW_RESULT) > FwResult.initial),
                    self.settings.download_timeout_s)
                out.states.append(fw_state_words(_int(value, FW_STATE)))
                result = _int(value, FW_RESULT)
                if _int(value, FW_STATE) == FwState.downloaded:
                    break
                out.result_code, out.result = result, fw_result_words(result)
                if result != FwResult.connection_lost or attempt > self.settings.retries:
                    out.detail = f"the device refused the package: {out.result}"
                    return self._done(out, started)
                log.warning("%s: %s; downloading again", endpoint, out.result)
            progress("device installs the firmware", 0.6)
            old_registration = srv.registry.online(endpoint).id
            await srv.execute(endpoint, vocab.uri(Obj.FIRMWARE, 0, Fw.UPDATE))
            out.states.append("updating")
            # The device reboots (a new registration) or updates in place (state back to idle).
            await self._wait_back(endpoint, old_registration, obs)
        finally:
            if obs is not None:
                obs.cancel()
        progress("the device proves the new image (or rolls it back)", 0.8)
        final = await self._final(endpoint, started + self.settings.update_timeout_s)
        out.result_code = _int(final, FW_RESULT)
        out.result = fw_result_words(out.result_code)
        out.states.append(fw_state_words(_int(final, FW_STATE)))
        out.firmware_after = str(await srv.read_value(endpoint, FIRMWARE_VERSION))
        out.succeeded = out.result_code == FwResult.success
        if not out.succeeded:
            out.detail = f"the device did not take the firmware: {out.result}"
        if Obj.TINYML in srv.registry.online(endpoint).objects:
            out.model_sha256 = str(await srv.read_value(endpoint, MODEL_SHA256))
        progress("done", 1.0)
        return self._done(out, started)

    async def _final(self, endpoint: str, deadline: float) -> Content:
        """Object 5 once its Update Result is final. A device that rebooted runs its new image on
        trial: it says "success" only after it confirmed itself, or its boot ROM rolls back and
        the old image, registering again, says "failed" — so look across re-registrations."""
        srv = self.server
        while (left := deadline - time.monotonic()) > 0:
            reg = self._registration(endpoint)
            if reg is None:  # between images: wait for the next registration
                with contextlib.suppress(TimeoutError):
                    await srv.registry.wait_for(lambda: self._registration(endpoint) is not None, left)
                continue
            try:
                value = await asyncio.wait_for(srv.read(endpoint, FW), min(left, 10.0))
            except (DeviceUnreachable, DeviceError, TimeoutError):  # the image died under us
                await self._next_registration(endpoint, reg, min(left, 10.0))
                continue
            if _int(value, FW_RESULT) != FwResult.initial:
                return value
            await asyncio.sleep(0.5)
        raise DeviceUnreachable(f"device '{endpoint}' did not say how the update ended within "
                                f"{self.settings.update_timeout_s:.0f} s")

    async def _next_registration(self, endpoint: str, dead: Any, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await self.server.registry.wait_for(
                lambda: self._registration(endpoint) not in (None, dead), timeout)

    def _registration(self, endpoint: str) -> Any:
        rec = self.server.registry.devices.get(endpoint)
        return rec.registration if rec is not None else None

    async def _wait_back(self, endpoint: str, old_registration: str, obs: Any) -> None:
        registry, timeout = self.server.registry, self.settings.update_timeout_s

        def rebooted() -> bool:
            rec = registry.devices.get(endpoint)
            reg = rec.registration if rec is not None else None
            return reg is not None and reg.id != old_registration

        def in_place(v: Content) -> bool:
            return (_int(v, FW_STATE) in (FwState.idle, FwState.downloaded)
                    and _int(v, FW_RESULT) in (FwResult.success, FwResult.update_failed))

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
        if Obj.SOFTWARE not in reg.objects:
            out.result_code, out.result = SwResult.unsupported_package, "no Software Management object (9)"
            out.detail = f"device '{endpoint}' cannot install modules"
            return self._done(out, started)
        iid = (reg.objects[Obj.SOFTWARE] or [0])[0]
        base = vocab.uri(Obj.SOFTWARE, iid)

        def sw(v: Content, rid: Sw) -> int:
            return _int(v, vocab.path(Obj.SOFTWARE, iid, rid))

        progress("reading the module slot", 0.02)
        state = await srv.read(endpoint, base)
        if sw(state, Sw.UPDATE_STATE) != SwState.initial:  # the active module runs until the new one does
            await srv.execute(endpoint, f"{base}/{Sw.UNINSTALL}", "1")
        obs = await srv.observe(endpoint, base)
        try:
            for attempt in range(1, self.settings.retries + 2):
                out.attempts = attempt
                progress(f"device downloads the module (attempt {attempt})", 0.1)
                await srv.write(endpoint, f"{base}/{Sw.PACKAGE_URI}", self._uri(endpoint, sha256))
                value = await obs.wait_for(
                    lambda v: sw(v, Sw.UPDATE_STATE) == SwState.delivered
                    or sw(v, Sw.UPDATE_RESULT) >= SwResult.not_enough_storage,
                    self.settings.download_timeout_s)
                result = sw(value, Sw.UPDATE_RESULT)
                out.states.append(sw_state_words(sw(value, Sw.UPDATE_STATE)))
                if sw(value, Sw.UPDATE_STATE) == SwState.delivered:
                    break
                out.result_code, out.result = result, sw_result_words(result)
                out.detail = str(value.get(vocab.path(Obj.SOFTWARE, iid, Sw.STATUS_REASON), "")) or out.result
                if result != SwResult.connection_lost or attempt > self.settings.retries:
                    return self._done(out, started)
            progress("device installs the module", 0.5)
            await srv.execute(endpoint, f"{base}/{Sw.INSTALL}")
            value = await obs.wait_for(
                lambda v: sw(v, Sw.UPDATE_STATE) == SwState.installed
                or sw(v, Sw.UPDATE_RESULT) >= SwResult.not_enough_storage,
                self.settings.update_timeout_s)
            out.states.append(sw_state_words(sw(value, Sw.UPDATE_STATE)))
            if sw(value, Sw.UPDATE_STATE) != SwState.installed:
                out.result_code = sw(value, Sw.UPDATE_RESULT)
                out.result = sw_result_words(out.result_code)
                out.detail = str(value.get(vocab.path(Obj.SOFTWARE, iid, Sw.STATUS_REASON), "")) or out.result
                return self._done(out, started)
            progress("device activates the module", 0.8)
            await srv.execute(endpoint, f"{base}/{Sw.ACTIVATE}")
            value = await obs.wait_for(
                lambda v: v.get(vocab.path(Obj.SOFTWARE, iid, Sw.ACTIVATION_STATE)) is True,
                self.settings.update_timeout_s)
            out.states.append("active")
            out.result_code = sw(value, Sw.UPDATE_RESULT)
            out.result = sw_result_words(out.result_code)
        finally:
            obs.cancel()
        if Obj.TINYML in reg.objects:
            out.model_sha256 = str(await srv.read_value(endpoint, MODEL_SHA256))
        out.succeeded = out.result_code == SwResult.installed and model_sha256 in (None, out.model_sha256)
        if not out.succeeded and out.result_code == SwResult.installed:
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


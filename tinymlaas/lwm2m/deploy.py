"""FOTA (Object 5) and SOTA (Object 9), driven by the server.

FOTA: read how the device takes packages (5/0/8 protocols, 5/0/9 delivery
method) and pick a way both sides have -- pull over HTTP(S), pull over CoAP from
this server's ``/packages`` resource (block-wise), or push (block-wise writes of
5/0/0) -- or fail at once saying why; reset the state machine if needed, observe
``/5/0``, deliver the package, wait for Downloaded (or an Update Result saying why not; "connection lost"
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinymlaas.edge.lwm2m import vocab
from tinymlaas.edge.lwm2m.codec import Content
from tinymlaas.edge.lwm2m.vocab import (
    SW_CANNOT,
    Dev,
    Fw,
    FwDelivery,
    FwProtocol,
    FwResult,
    FwState,
    Obj,
    Sw,
    SwResult,
    SwState,
    Tiny,
    fw_protocol_words,
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
FW_PROTOCOLS = vocab.path(Obj.FIRMWARE, 0, Fw.PROTOCOL_SUPPORT)
FW_DELIVERY = vocab.path(Obj.FIRMWARE, 0, Fw.DELIVERY_METHOD)


FW_PACKAGE = vocab.uri(Obj.FIRMWARE, 0, Fw.PACKAGE)
PULL_WEB = (FwProtocol.http, FwProtocol.https)


def _int(content: Content, path: tuple[int, ...], default: int = -1) -> int:
    value = content.get(path, default)
    return int(value) if isinstance(value, int | float) else default


def _fw_words(v: Content) -> str:
    """Where a device's Object 5 stands, in words (for timeouts)."""
    return (f"state {fw_state_words(_int(v, FW_STATE))!r} and update result "
            f"{fw_result_words(_int(v, FW_RESULT, 0))!r}")


@dataclass(frozen=True)
class Delivery:
    """How a package gets to a device: pulled over ``protocol``, or pushed (``protocol`` None)."""

    protocol: FwProtocol | None

    def __str__(self) -> str:
        if self.protocol is None:
            return "push (the server writes the package block-wise)"
        return f"pull over {fw_protocol_words(self.protocol)}"


def device_methods(fw: Content) -> tuple[set[FwProtocol] | None, FwDelivery | None]:
    """The pull protocols (5/0/8) and delivery method (5/0/9) a device reports; None where
    it reports nothing."""
    protocols = {FwProtocol(int(v)) for p, v in fw.items()
                 if p[:3] == FW_PROTOCOLS and isinstance(v, int) and v in FwProtocol._value2member_map_}
    reported = any(p[:3] == FW_PROTOCOLS for p in fw)
    delivery = _int(fw, FW_DELIVERY)
    return (protocols if reported else None,
            FwDelivery(delivery) if delivery in FwDelivery._value2member_map_ else None)


def choose_delivery(fw: Content, *, pull: set[FwProtocol], push: bool) -> Delivery | str:
    """The best way the device and this server share: HTTP(S) pull, CoAP pull, then push.
    ``pull``: the protocols this server can serve packages over. A string says why none fits."""
    protocols, delivery = device_methods(fw)
    if protocols is None:  # an Object 5 without 5/0/8: the URI it was always given
        protocols = {FwProtocol.http, FwProtocol.https}
    if delivery in (None, FwDelivery.pull, FwDelivery.both):
        for proto in (*PULL_WEB, FwProtocol.coap):
            if proto in protocols and proto in pull:
                return Delivery(proto)
    if delivery in (None, FwDelivery.push, FwDelivery.both) and push:
        return Delivery(None)

    def either(words: list[str]) -> str:
        return " or ".join(filter(None, [", ".join(words[:-1]), words[-1]])) if words else "nothing"

    def ways(protos: set[FwProtocol], pushes: bool) -> str:
        out = ["pull over " + either([fw_protocol_words(p) for p in sorted(protos)])] if protos else []
        return ", or ".join([*out, *(["push"] if pushes else [])]) or "nothing"

    theirs = ways(protocols if delivery != FwDelivery.push else set(), delivery != FwDelivery.pull)
    return f"the device takes firmware by {theirs}; this server offers {ways(pull, push)}"


class Updater:
    """Runs FOTA and SOTA on one server.

    ``package_url(endpoint, sha256)`` makes an HTTP(S) URI; ``coap_package_url`` a
    ``coap://`` one on this server (for devices that pull only over CoAP) and
    ``package_file(sha256)`` the package's bytes (to push); without them those ways
    are not offered.
    """

    def __init__(self, server: LwM2MServer, package_url: Callable[[str, str], str], *,
                 coap_package_url: Callable[[str, str], str] | None = None,
                 package_file: Callable[[str], Path] | None = None) -> None:
        self.server = server
        self.package_url = package_url
        self.coap_package_url = coap_package_url
        self.package_file = package_file
        self.settings = server.settings

    def _pull_protocols(self, endpoint: str, sha256: str) -> set[FwProtocol]:
        """HTTP or HTTPS, as the API's package URL is (never both: a device that takes only
        the other would be given a URI it cannot use), and CoAP when this server serves it."""
        web = FwProtocol.https if self.package_url(endpoint, sha256).startswith("https:") else FwProtocol.http
        return {web} | ({FwProtocol.coap} if self.coap_package_url is not None else set())

    def _uri(self, endpoint: str, sha256: str, protocol: FwProtocol | None = None) -> str:
        make = self.coap_package_url if protocol == FwProtocol.coap else self.package_url
        assert make is not None  # only chosen when offered
        uri = make(endpoint, sha256)
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
        state = await srv.read(endpoint, FW)
        how = choose_delivery(state, pull=self._pull_protocols(endpoint, sha256),
                              push=self.package_file is not None)
        if isinstance(how, str):
            out.result = "no delivery method in common"
            out.detail = f"device '{endpoint}' cannot be sent this package: {how}"
            return self._done(out, started)
        out.delivery = str(how)
        obs = None
        try:
            for attempt in range(1, self.settings.retries + 2):
                out.attempts = attempt
                if attempt > 1:
                    state = await srv.read(endpoint, FW)
                if _int(state, FW_STATE) == FwState.updating:
                    raise DeviceError(f"device '{endpoint}' is installing another update")
                if _int(state, FW_STATE) != FwState.idle or _int(state, FW_RESULT) != FwResult.initial:
                    await srv.write(endpoint, FW_URI, "")  # reset the state machine
                if obs is None:
                    obs = await srv.observe(endpoint, FW)
                if how.protocol is None:
                    assert self.package_file is not None
                    progress(f"the server pushes the package to the device (attempt {attempt})", 0.1)
                    data = await asyncio.to_thread(self.package_file(sha256).read_bytes)
                    await srv.write(endpoint, FW_PACKAGE, data)
                else:
                    progress(f"device downloads the package over {fw_protocol_words(how.protocol)} "
                             f"(attempt {attempt})", 0.1)
                    await srv.write(endpoint, FW_URI, self._uri(endpoint, sha256, how.protocol))
                value = await obs.wait_for(
                    lambda v: _int(v, FW_STATE) == FwState.downloaded
                    or (_int(v, FW_STATE) == FwState.idle and _int(v, FW_RESULT) > FwResult.initial),
                    self.settings.download_timeout_s, expected="finish downloading the package",
                    describe=_fw_words)
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
            # Taken here: a wait whose news came with its cancellation ends in an error of its
            # own (asyncio.wait_for returns a result it already has), not a CancelledError.
            await asyncio.gather(*waiting, return_exceptions=True)
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


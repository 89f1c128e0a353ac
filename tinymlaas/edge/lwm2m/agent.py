"""Device-side objects of a TinyML device agent: Device (3), Firmware Update (5),
Software Management (9) and TinyML Inference (33100), plus the package download.

A device (the x86 firmware, the MCU bridge) supplies a :class:`FirmwareBackend`
(how to check and install an OS image, i.e. flash + reboot), a
:class:`ModuleBackend` (how to install and activate an inference module without
stopping) and an :class:`InferenceRuntime`; the objects here run the LwM2M state
machines on top. Packages are pulled over HTTP with Range resumption, and their
SHA-256 (the last path segment of a content-addressed URL, or ``#sha256=``) is
checked before anything is installed. Standard library + aiocoap only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiocoap import error as coap_error

from tinymlaas.edge.hybrid import HybridRuntime, Policy
from tinymlaas.edge.lwm2m.client import Instance
from tinymlaas.edge.lwm2m.codec import OPAQUE
from tinymlaas.edge.lwm2m.vocab import (
    SW_FROM_DOWNLOAD,
    Dev,
    Fw,
    FwResult,
    FwState,
    Obj,
    Sw,
    SwResult,
    SwState,
    Tiny,
)
from tinymlaas.edge.signing import SignatureError

log = logging.getLogger("tinymlaas.edge.lwm2m.agent")
#: Where a hybrid device escalates an uncertain inference on its server (CoAP POST, ``?ep=NAME``).
ESCALATE = ("tinyml", "escalate")
_SHA = re.compile(r"^[0-9a-f]{64}$")


# -- the download ---------------------------------------------------------------

class DownloadError(Exception):
    """Why a package could not be fetched, as a firmware Update Result."""

    def __init__(self, result: FwResult, message: str) -> None:
        super().__init__(message)
        self.result = result


def expected_sha256(uri: str) -> str | None:
    """The digest a content-addressed package URI carries (path tail or ``#sha256=``)."""
    parts = urllib.parse.urlsplit(uri)
    frag = urllib.parse.parse_qs(parts.fragment).get("sha256")
    if frag and _SHA.match(frag[0]):
        return frag[0]
    tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return tail if _SHA.match(tail) else None


def check_uri(uri: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """The expected digest, or a DownloadError (invalid URI / unsupported protocol)."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        raise DownloadError(FwResult.invalid_uri, f"not an absolute URI: {uri!r}")
    if parts.scheme not in schemes:
        raise DownloadError(FwResult.unsupported_protocol, f"cannot download over {parts.scheme}")
    digest = expected_sha256(uri)
    if digest is None:
        raise DownloadError(FwResult.invalid_uri,
                            "the package URI carries no SHA-256 to check the download against")
    return digest


def download(uri: str, dest: Path, *, max_bytes: int, attempts: int = 4, timeout: float = 30.0,
             progress: Callable[[int, int | None], None] | None = None,
             headers: dict[str, str] | None = None) -> Path:
    """Fetch ``uri`` into ``dest``, resuming with Range after a broken connection.

    The SHA-256 is checked before ``dest`` appears; a partial file is kept as
    ``dest.part`` between attempts. ``headers`` go with every request (a device's
    credentials, where its protocol has them).
    """
    digest = check_uri(uri)
    part = dest.with_name(dest.name + ".part")
    url = urllib.parse.urlsplit(uri)._replace(fragment="").geturl()
    total: int | None = None
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        ranged = {"Range": f"bytes={have}-"} if have else {}
        req = urllib.request.Request(url, headers={**(headers or {}), **ranged})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if resp.status == 200 and have:
                    have = 0  # the server ignored Range: start over
                length = resp.headers.get("Content-Length")
                if length is not None:
                    total = have + int(length)
                    if total > max_bytes:
                        raise DownloadError(FwResult.not_enough_flash,
                                            f"package of {total} B exceeds the {max_bytes} B available")
                with part.open("ab" if have else "wb") as fh:
                    while chunk := resp.read(64 * 1024):
                        fh.write(chunk)
                        have += len(chunk)
                        if have > max_bytes:
                            raise DownloadError(FwResult.not_enough_flash,
                                                f"package exceeds the {max_bytes} B available")
                        if progress:
                            progress(have, total)
            if total is not None and have < total:
                raise ConnectionError(f"connection closed after {have} of {total} bytes")
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to fetch: the file is complete
                break
            part.unlink(missing_ok=True)
            if exc.code in (401, 403, 404, 410):
                raise DownloadError(FwResult.invalid_uri, f"HTTP {exc.code} for {url}") from exc
            if attempt == attempts:
                raise DownloadError(FwResult.connection_lost, f"HTTP {exc.code} for {url}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, DownloadError):
                raise
            log.warning("download of %s broke (%s); attempt %d/%d resumes at %d bytes", url, exc,
                        attempt, attempts, part.stat().st_size if part.exists() else 0)
            if attempt == attempts:
                raise DownloadError(FwResult.connection_lost,
                                    f"connection lost after {attempts} attempts: {exc}") from exc
            time.sleep(min(0.5 * attempt, 2.0))
    h = hashlib.sha256()
    with part.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != digest:
        part.unlink(missing_ok=True)
        raise DownloadError(FwResult.integrity_failure,
                            f"SHA-256 {h.hexdigest()[:12]}… does not match {digest[:12]}…")
    os.replace(part, dest)
    return dest


# -- what a device provides ----------------------------------------------------------

class FirmwareBackend(Protocol):
    """How a device checks and installs a whole OS image."""

    max_bytes: int

    def check(self, image: Path) -> tuple[str, str]:
        """(package name, version) of a valid image for this device; ValueError if not,
        SignatureError if it is not signed by a key the device trusts (it then holds only the
        image, the signature envelope taken off)."""

    async def install(self, image: Path) -> None:
        """Flash the image and run it. A device that reboots never returns (its next
        boot reports the result); a device that updates in place returns when the new
        image runs, or raises (Update Result 8) having kept the old one."""


class ModuleBackend(Protocol):
    """How a device installs and activates an inference module while it keeps running."""

    max_bytes: int

    def check(self, package: Path) -> tuple[str, str]:
        """(name, version) of a module this device can run; ValueError if not."""

    async def install(self, package: Path) -> None:
        """Prepare the module (loaded, not yet serving); raise to refuse."""

    async def activate(self) -> None: ...

    async def deactivate(self) -> None: ...

    async def uninstall(self) -> None: ...


class InferenceRuntime(Protocol):
    """Runs the current model on a raw input tensor."""

    def capabilities(self) -> dict[int, Any]:
        """Object 33100 resources 0-8, 15, 16 (RAM, flash, CPU, clock, ...)."""

    async def infer(self, tensor: bytes) -> tuple[bytes, int, int | None]:
        """(raw output, latency in µs, instruction count or None)."""


# -- the objects --------------------------------------------------------------------

class DeviceObject(Instance):
    """Object 3: who the device is; Reboot calls back into the device."""

    def __init__(self, values: dict[int, Any], reboot: Callable[[], Any] | None = None) -> None:
        base: dict[int, Any] = {Dev.ERROR_CODE: {0: 0}, Dev.CURRENT_TIME: int(time.time()),
                                Dev.BINDING_MODES: "U"}
        super().__init__(Obj.DEVICE, 0, {**base, **values})
        self._reboot = reboot

    def read(self, rid: int) -> Any:
        if rid == Dev.CURRENT_TIME:
            return int(time.time())
        return super().read(rid)

    async def execute(self, rid: int, args: str) -> None:
        if rid == Dev.REBOOT and self._reboot is not None:
            asyncio.get_running_loop().call_later(0.2, self._reboot)
            return
        await super().execute(rid, args)


class FirmwareUpdate(Instance):
    """Object 5 (v1.1) state machine, pull (HTTP) and push (Package resource)."""

    def __init__(self, backend: FirmwareBackend, workdir: Path, *, result: FwResult = FwResult.initial,
                 attempts: int = 4) -> None:
        super().__init__(Obj.FIRMWARE, 0, {
            Fw.PACKAGE_URI: "", Fw.STATE: int(FwState.idle), Fw.UPDATE_RESULT: int(result),
            Fw.PKG_NAME: "", Fw.PKG_VERSION: "",
            Fw.PROTOCOL_SUPPORT: {0: 2, 1: 3},  # HTTP, HTTPS
            Fw.DELIVERY_METHOD: 2,  # pull and push
            Fw.SEVERITY: 1, Fw.LAST_STATE_CHANGE: int(time.time()), Fw.MAX_DEFER: 0})
        self.backend = backend
        self.workdir = workdir
        self.attempts = attempts
        self.image = workdir / "fota-image.bin"
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> FwState:
        return FwState(self.values[Fw.STATE])

    def report(self, result: FwResult) -> None:
        """How an update that rebooted the device ended, once the new image knows (it confirmed
        itself, or the boot ROM rolled it back)."""
        self._to(FwState.idle, result)

    def _to(self, state: FwState, result: FwResult | None = None) -> None:
        self.set(Fw.LAST_STATE_CHANGE, int(time.time()))
        if result is not None:
            self.set(Fw.UPDATE_RESULT, int(result))
        self.set(Fw.STATE, int(state))

    def _reset(self, result: FwResult = FwResult.initial) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None
        self.image.unlink(missing_ok=True)
        self.image.with_name(self.image.name + ".part").unlink(missing_ok=True)
        self.set(Fw.PACKAGE_URI, "")
        self.set(Fw.PKG_NAME, "")
        self.set(Fw.PKG_VERSION, "")
        self._to(FwState.idle, result)

    def on_write(self, rid: int, value: Any) -> None:
        if rid == Fw.PACKAGE_URI:
            self._write_uri(str(value))
        elif rid == Fw.PACKAGE:
            self._write_package(bytes(value) if isinstance(value, bytes | bytearray) else b"")
        else:
            self.set(rid, value)

    def _write_uri(self, uri: str) -> None:
        if uri == "":
            if self.state is FwState.updating:
                raise coap_error.MethodNotAllowed("an update is being installed")
            self._reset()
            return
        if self.state is not FwState.idle:
            raise coap_error.MethodNotAllowed(f"firmware update is {self.state.name}; "
                                              "write an empty Package URI to reset it first")
        self.set(Fw.PACKAGE_URI, uri)
        try:
            check_uri(uri)
        except DownloadError as exc:  # errors are reported in Update Result, not the Write
            log.warning("firmware package URI refused: %s", exc)
            self.set(Fw.UPDATE_RESULT, int(exc.result))
            return
        self._to(FwState.downloading, FwResult.initial)
        self._task = asyncio.get_running_loop().create_task(self._download(uri), name="fota-download")

    def _write_package(self, data: bytes) -> None:
        if data in (b"", b"\0"):
            if self.state is FwState.updating:
                raise coap_error.MethodNotAllowed("an update is being installed")
            self._reset()
            return
        if self.state is not FwState.idle:
            raise coap_error.MethodNotAllowed(f"firmware update is {self.state.name}")
        if len(data) > self.backend.max_bytes:
            self.set(Fw.UPDATE_RESULT, int(FwResult.not_enough_flash))
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image.write_bytes(data)
        self._downloaded()

    async def _download(self, uri: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(download, uri, self.image, max_bytes=self.backend.max_bytes,
                                    attempts=self.attempts)
        except DownloadError as exc:
            log.warning("firmware download failed: %s", exc)
            self._reset(exc.result)
            return
        self._downloaded()

    def _downloaded(self) -> None:
        try:
            name, version = self.backend.check(self.image)
        except SignatureError as exc:
            log.warning("downloaded package refused: %s", exc)
            self._reset(FwResult.integrity_failure)
            return
        except ValueError as exc:
            log.warning("downloaded package is not firmware for this device: %s", exc)
            self._reset(FwResult.unsupported_package)
            return
        self.set(Fw.PKG_NAME, name)
        self.set(Fw.PKG_VERSION, version)
        self._to(FwState.downloaded, FwResult.initial)

    async def execute(self, rid: int, args: str) -> None:
        if rid == Fw.UPDATE:
            if self.state is not FwState.downloaded:
                raise coap_error.MethodNotAllowed(f"Update needs state Downloaded, not {self.state.name}")
            self._to(FwState.updating)
            # Answer the Execute first, then install (the device restarts).
            self._task = asyncio.get_running_loop().create_task(self._install(), name="fota-install")
            return
        if rid == Fw.CANCEL:
            if self.state is FwState.updating:
                raise coap_error.MethodNotAllowed("the update is already being installed")
            self._reset(FwResult.cancelled)
            return
        await super().execute(rid, args)

    async def _install(self) -> None:
        await asyncio.sleep(0.2)
        try:
            await self.backend.install(self.image)
        except Exception as exc:  # the device keeps running its old firmware
            log.error("installing the firmware failed: %s", exc)
            self._to(FwState.downloaded, FwResult.update_failed)
            return
        self.image.unlink(missing_ok=True)  # updated in place
        self.set(Fw.PACKAGE_URI, "")
        self._to(FwState.idle, FwResult.success)


class SoftwareManagement(Instance):
    """Object 9 for the inference module: download, Install, Activate, without a restart."""

    def __init__(self, backend: ModuleBackend, workdir: Path, iid: int = 0, *, name: str = "",
                 version: str = "", attempts: int = 4) -> None:
        installed = bool(name)
        super().__init__(Obj.SOFTWARE, iid, {
            Sw.PKG_NAME: name, Sw.PKG_VERSION: version, Sw.PACKAGE_URI: "",
            Sw.UPDATE_STATE: int(SwState.installed if installed else SwState.initial),
            Sw.UPDATE_SUPPORTED_OBJECTS: False,
            Sw.UPDATE_RESULT: int(SwResult.installed if installed else SwResult.initial),
            Sw.ACTIVATION_STATE: installed, Sw.STATUS_REASON: ""})
        self.backend = backend
        self.workdir = workdir
        self.attempts = attempts
        self.package = workdir / f"sota-{iid}.bin"
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> SwState:
        return SwState(self.values[Sw.UPDATE_STATE])

    def _fail(self, result: SwResult, reason: str) -> None:
        log.warning("software update failed: %s", reason)
        self.package.unlink(missing_ok=True)
        self.set(Sw.STATUS_REASON, reason)
        self.set(Sw.UPDATE_RESULT, int(result))
        self.set(Sw.UPDATE_STATE, int(SwState.initial))

    def on_write(self, rid: int, value: Any) -> None:
        if rid not in (Sw.PACKAGE, Sw.PACKAGE_URI):
            self.set(rid, value)
            return
        if self.state not in (SwState.initial,):
            raise coap_error.MethodNotAllowed(f"software package is {self.state.name}; "
                                              "Uninstall it (argument 1: for update) first")
        if rid == Sw.PACKAGE_URI:
            uri = str(value)
            self.set(Sw.PACKAGE_URI, uri)
            try:
                check_uri(uri)
            except DownloadError as exc:
                self._fail(SwResult.invalid_uri, str(exc))
                return
            self.set(Sw.STATUS_REASON, "")
            self.set(Sw.UPDATE_RESULT, int(SwResult.downloading))
            self.set(Sw.UPDATE_STATE, int(SwState.download_started))
            self._task = asyncio.get_running_loop().create_task(self._download(uri), name="sota-download")
        else:
            data = bytes(value)
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.package.write_bytes(data)
            self.set(Sw.UPDATE_STATE, int(SwState.downloaded))
            self._deliver()

    async def _download(self, uri: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(download, uri, self.package, max_bytes=self.backend.max_bytes,
                                    attempts=self.attempts)
        except DownloadError as exc:
            self._fail(SW_FROM_DOWNLOAD.get(exc.result, SwResult.connection_lost), str(exc))
            return
        self.set(Sw.UPDATE_STATE, int(SwState.downloaded))
        self._deliver()

    def _deliver(self) -> None:
        try:
            name, version = self.backend.check(self.package)
        except SignatureError as exc:
            self._fail(SwResult.integrity_failure, str(exc))
            return
        except ValueError as exc:
            self._fail(SwResult.unsupported_package, str(exc))
            return
        self.set(Sw.PKG_NAME, name)
        self.set(Sw.PKG_VERSION, version)
        self.set(Sw.UPDATE_RESULT, int(SwResult.delivered))
        self.set(Sw.UPDATE_STATE, int(SwState.delivered))

    async def execute(self, rid: int, args: str) -> None:
        if rid == Sw.INSTALL:
            if self.state is not SwState.delivered:
                raise coap_error.MethodNotAllowed(f"Install needs DELIVERED, not {self.state.name}")
            try:
                await self.backend.install(self.package)
            except Exception as exc:  # stays DELIVERED, as the object definition says
                self.set(Sw.STATUS_REASON, f"installation failed: {exc}")
                self.set(Sw.UPDATE_RESULT, int(SwResult.install_failure))
                return
            self.set(Sw.ACTIVATION_STATE, False)
            self.set(Sw.UPDATE_RESULT, int(SwResult.installed))
            self.set(Sw.UPDATE_STATE, int(SwState.installed))
        elif rid in (Sw.ACTIVATE, Sw.DEACTIVATE):
            if self.state is not SwState.installed:
                raise coap_error.MethodNotAllowed(f"(De)activation needs INSTALLED, not {self.state.name}")
            try:
                await (self.backend.activate() if rid == Sw.ACTIVATE else self.backend.deactivate())
            except Exception as exc:
                what = "activation" if rid == Sw.ACTIVATE else "deactivation"
                self.set(Sw.STATUS_REASON, f"{what} failed: {exc}")
                self.set(Sw.UPDATE_RESULT, int(SwResult.device_error))
                raise coap_error.InternalServerError(str(exc)) from exc
            self.set(Sw.ACTIVATION_STATE, rid == Sw.ACTIVATE)
        elif rid == Sw.UNINSTALL:  # argument "1": for update (the active module keeps running)
            for_update = args.strip().split("=")[0] == "1" or args.strip() == "1"
            if not for_update:
                try:
                    await self.backend.uninstall()
                except Exception as exc:
                    self.set(Sw.UPDATE_RESULT, int(SwResult.uninstall_failure))
                    raise coap_error.InternalServerError(str(exc)) from exc
                self.set(Sw.ACTIVATION_STATE, False)
            if self._task is not None:
                self._task.cancel()
            self.package.unlink(missing_ok=True)
            self.set(Sw.PACKAGE_URI, "")
            self.set(Sw.STATUS_REASON, "")
            self.set(Sw.UPDATE_RESULT, int(SwResult.initial))
            self.set(Sw.UPDATE_STATE, int(SwState.initial))
        else:
            await super().execute(rid, args)


class TinyMLObject(Instance):
    """Object 33100: capabilities, the current model and the last inference; Run executes one.
    With an Escalation Threshold written, inferences are hybrid (:mod:`tinymlaas.edge.hybrid`): the
    uncertain ones are escalated to the server's cloud model with a CoAP POST of the device's own."""

    def __init__(self, runtime: InferenceRuntime, *, hybrid_state: Path | None = None) -> None:
        self.hybrid = HybridRuntime(runtime, self._escalate, hybrid_state)
        super().__init__(Obj.TINYML, 0, {**runtime.capabilities(), Tiny.INPUT: b"", Tiny.OUTPUT: b"",
                                          Tiny.INFERENCE_COUNT: 0, Tiny.LATENCY_US: 0,
                                          Tiny.LAST_ESCALATED: False, **self._hybrid()})
        self.runtime = runtime

    def _hybrid(self) -> dict[int, Any]:
        s = self.hybrid.status()
        return {Tiny.THRESHOLD: s["threshold"] or 0.0, Tiny.CLOUD: s["cloud"] or "", Tiny.LOCAL: s["local"],
                Tiny.ESCALATED: s["escalated"], Tiny.FAILED: s["failed"]}

    def on_write(self, rid: int, value: Any) -> None:
        if rid not in (Tiny.THRESHOLD, Tiny.CLOUD):
            super().on_write(rid, value)
            return
        fields = {"threshold": self.values.get(Tiny.THRESHOLD), "cloud": self.values.get(Tiny.CLOUD),
                  "threshold" if rid == Tiny.THRESHOLD else "cloud": value}
        try:  # a threshold of 0 turns escalation off
            threshold = float(fields["threshold"] or 0) or None
            self.hybrid.set_policy(Policy.parse({**fields, "threshold": threshold}))
        except (TypeError, ValueError) as exc:
            raise coap_error.BadRequest(str(exc)) from exc
        self.set(rid, value)

    async def _escalate(self, tensor: bytes) -> list[float]:
        if self.client is None:
            raise RuntimeError("no LwM2M client to escalate through")
        reply = await self.client.post_to_server(ESCALATE, tensor, content_format=OPAQUE,
                                                 query=(f"ep={self.client.endpoint}",))
        if not reply.code.is_successful():
            raise RuntimeError(f"the server answered {reply.code}: {reply.payload.decode(errors='replace')}")
        return [float(v) for v in json.loads(reply.payload)["values"]]

    def refresh(self) -> None:
        """Re-read the capabilities (after a model swap)."""
        for rid, value in self.runtime.capabilities().items():
            self.set(rid, value)

    def record(self, tensor: bytes, output: bytes, latency_us: int, instructions: int | None) -> None:
        """Publish one inference (also those that came in another way, e.g. HTTP)."""
        self.set(Tiny.INPUT, tensor)
        self.set(Tiny.LATENCY_US, int(latency_us))
        if instructions is not None:
            self.set(Tiny.INSTRUCTIONS, int(instructions))
        self.set(Tiny.INFERENCE_COUNT, int(self.values.get(Tiny.INFERENCE_COUNT, 0)) + 1)
        self.set(Tiny.OUTPUT, output)

    async def execute(self, rid: int, args: str) -> None:
        if rid != Tiny.RUN:
            await super().execute(rid, args)
            return
        try:
            output, latency, instructions, escalated = await self.hybrid.run(
                bytes(self.values.get(Tiny.INPUT, b"")))
        except ValueError as exc:
            raise coap_error.BadRequest(str(exc)) from exc
        for rid, value in self._hybrid().items():
            self.set(rid, value)
        self.set(Tiny.LAST_ESCALATED, bool(escalated))
        self.record(bytes(self.values.get(Tiny.INPUT, b"")), output, latency, instructions)


"""The built-in orchestrator: OMA LwM2M 1.1 over CoAP/UDP (see :mod:`tinymlaas.lwm2m`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m import vocab
from tinymlaas.edge.lwm2m.codec import Content
from tinymlaas.edge.lwm2m.vocab import Obj, Tiny, named_capabilities
from tinymlaas.errors import Conflict, DeviceError, InvalidInput, NotFound
from tinymlaas.lwm2m.deploy import Updater
from tinymlaas.lwm2m.escalation import PATH as ESCALATE
from tinymlaas.lwm2m.escalation import EscalationResource
from tinymlaas.lwm2m.security import CredentialStore, write_context
from tinymlaas.lwm2m.server import LwM2MServer
from tinymlaas.models import (
    Device,
    DeviceCapabilities,
    DeviceCredentials,
    Escalation,
    HybridState,
    InferenceReport,
    JoinInfo,
    LwM2MAttach,
    Package,
    UpdateOutcome,
)
from tinymlaas.orchestrators.grants import Grants
from tinymlaas.orchestrators.reports import inference_report
from tinymlaas.plugins.base import Orchestrator, Progress, no_progress

TINYML = vocab.uri(Obj.TINYML, 0)


def _get(content: Content, rid: Tiny) -> Any:
    return content.get(vocab.path(Obj.TINYML, 0, rid))


def _hybrid(t: Content) -> HybridState | None:
    """The hybrid resources of a TinyML object 1.1 read; None for a 1.0 object."""
    if _get(t, Tiny.THRESHOLD) is None:
        return None
    return HybridState(threshold=float(_get(t, Tiny.THRESHOLD)) or None, cloud=_get(t, Tiny.CLOUD) or None,
                       local=int(_get(t, Tiny.LOCAL) or 0), escalated=int(_get(t, Tiny.ESCALATED) or 0),
                       failed=int(_get(t, Tiny.FAILED) or 0))


class LwM2MOrchestrator(Orchestrator):
    """LwM2M server on UDP: registration, Device/TinyML objects, FOTA (5), SOTA (9)."""

    name = "lwm2m"
    version = "1.1"
    Options = LwM2MSettings

    def __init__(self, options: LwM2MSettings | None = None) -> None:
        super().__init__(options)
        assert isinstance(self.options, LwM2MSettings)
        self.settings: LwM2MSettings = self.options
        self.server: LwM2MServer | None = None
        self.credentials: CredentialStore | None = None
        self.grants = Grants(self.settings.grant_ttl_s)
        self._download_base = ""

    # -- lifecycle ------------------------------------------------------------
    async def start(self, data_dir: Path) -> None:
        if self.settings.security == "oscore":
            self.credentials = CredentialStore(data_dir / "lwm2m" / "oscore")
        self.server = LwM2MServer(self.settings, self.credentials)
        self.server.resources[ESCALATE] = EscalationResource(self.server, self._escalate)
        await self.server.start()
        self.updater = Updater(self.server, self._package_url)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.credentials is not None:
            self.credentials.close()

    @property
    def srv(self) -> LwM2MServer:
        if self.server is None:
            raise DeviceError("the LwM2M server is not running")
        return self.server

    def join_info(self) -> JoinInfo:
        return JoinInfo(plugin=self.name, uri=self.srv.uri, security=self.settings.security,
                        content_format=self.settings.content_format)

    @classmethod
    def attach(cls, join: JoinInfo, *, api_url: str, endpoint: str, credentials: DeviceCredentials | None,
               folder: Path) -> LwM2MAttach:
        if join.uri is None:
            raise InvalidInput("the LwM2M join information has no server URI")
        oscore = None
        if credentials is not None:
            oscore = write_context(folder / "oscore", credentials.model_dump(), role="device")
            credentials.write_trust(oscore)
        return LwM2MAttach(uri=join.uri, endpoint=endpoint, credentials=oscore)

    # -- inventory ---------------------------------------------------------------
    def devices(self) -> list[Device]:
        return [Device.model_validate(d) for d in self.srv.devices()]

    def device(self, endpoint: str) -> Device:
        return Device.model_validate(self.srv.registry.get(endpoint).summary())

    async def capabilities(self, endpoint: str) -> DeviceCapabilities:
        srv = self.srv
        reg = srv.registry.online(endpoint)
        dev = await srv.read(endpoint, vocab.uri(Obj.DEVICE, 0))
        t = await srv.read(endpoint, TINYML) if Obj.TINYML in reg.objects else {}

        def values(content: Content, oid: int) -> dict[int, Any]:
            """Resource id -> value (a multi-instance resource as {instance: value})."""
            out: dict[int, Any] = {}
            for path, value in sorted(content.items()):
                if path[0] == oid and len(path) == 3:
                    out[path[2]] = value
                elif path[0] == oid and len(path) == 4:
                    out.setdefault(path[2], {})[path[3]] = value
            return out

        caps = named_capabilities(values(dev, Obj.DEVICE), values(t, Obj.TINYML))
        return DeviceCapabilities(endpoint=endpoint, fota=Obj.FIRMWARE in reg.objects,
                                  sota=Obj.SOFTWARE in reg.objects, hybrid=_hybrid(t), **caps)

    # -- updates -------------------------------------------------------------------
    def _package_url(self, endpoint: str, sha256: str) -> str:
        base = self.settings.package_base_url or self._download_base
        host = self.srv.registry.online(endpoint).host
        return self.grants.package_url(base, endpoint, sha256, address=host)

    def authorize_download(self, endpoint: str, sha256: str, grant: str | None, *, address: str | None,
                           token: str | None) -> None:
        self.grants.check(endpoint, sha256, grant, address=address)

    async def deploy_firmware(self, endpoint: str, package: Package, *, download_base: str,
                              progress: Progress = no_progress) -> UpdateOutcome:
        self._download_base = download_base
        with self.grants.during(endpoint, package.sha256):
            return await self.updater.fota(endpoint, package.sha256, progress=progress)

    async def deploy_model(self, endpoint: str, module: Package, *, download_base: str,
                           fallback_firmware: Package | None = None,
                           progress: Progress = no_progress) -> UpdateOutcome:
        self._download_base = download_base
        fallback = fallback_firmware.sha256 if fallback_firmware else None
        with contextlib.ExitStack() as grants:
            for sha in filter(None, (module.sha256, fallback)):
                grants.enter_context(self.grants.during(endpoint, sha))
            return await self.updater.deploy_model(
                endpoint, module.sha256, model_sha256=module.model_sha256,
                fallback_firmware_sha256=fallback, progress=progress)

    # -- inference -------------------------------------------------------------------
    async def infer(self, endpoint: str, tensor: bytes) -> InferenceReport:
        srv = self.srv
        if Obj.TINYML not in srv.registry.online(endpoint).objects:
            raise DeviceError(f"device '{endpoint}' has no TinyML object ({Obj.TINYML})")
        await srv.write(endpoint, vocab.uri(Obj.TINYML, 0, Tiny.INPUT), tensor)
        await srv.execute(endpoint, vocab.uri(Obj.TINYML, 0, Tiny.RUN))
        return self._report(endpoint, await srv.read(endpoint, TINYML))

    # -- hybrid inference -----------------------------------------------------------------
    async def set_hybrid(self, endpoint: str, threshold: float | None, cloud: str | None) -> HybridState:
        """Written to the TinyML object (1.1): Cloud Endpoint and Escalation Threshold (0: off)."""
        srv = self.srv
        if srv.registry.online(endpoint).versions.get(Obj.TINYML, "1.0") == "1.0":
            raise Conflict(f"device '{endpoint}' has TinyML object 1.0, without hybrid inference: give it "
                           "newer firmware")
        await srv.write(endpoint, vocab.uri(Obj.TINYML, 0), {
            vocab.path(Obj.TINYML, 0, Tiny.CLOUD): cloud or "",
            vocab.path(Obj.TINYML, 0, Tiny.THRESHOLD): float(threshold or 0.0)}, replace=False)
        state = _hybrid(await srv.read(endpoint, TINYML))
        assert state is not None  # a 1.1 TinyML object has the resources
        return state

    async def _escalate(self, endpoint: str, tensor: bytes) -> Escalation:
        if self.escalation is None:
            raise NotFound("this service answers no escalated inferences")
        return await self.escalation(endpoint, tensor)

    async def subscribe(self, endpoint: str) -> AsyncIterator[InferenceReport]:
        srv = self.srv
        if Obj.TINYML not in srv.registry.online(endpoint).objects:
            raise Conflict(f"device '{endpoint}' has no TinyML object ({Obj.TINYML}): "
                           "it reports no inferences")
        count = vocab.path(Obj.TINYML, 0, Tiny.INFERENCE_COUNT)
        base = await srv.read(endpoint, TINYML)
        obs = await srv.observe(endpoint, vocab.uri(*count))

        async def changes() -> AsyncIterator[InferenceReport]:
            nonlocal base
            try:
                async for change in obs.changes():
                    if change.get(count) == base.get(count):
                        continue
                    base = await srv.read(endpoint, TINYML)
                    yield self._report(endpoint, base)
            finally:
                obs.cancel()

        return changes()

    @staticmethod
    def _report(endpoint: str, t: Content) -> InferenceReport:
        return inference_report(
            endpoint, count=int(_get(t, Tiny.INFERENCE_COUNT) or 0), raw_input=_get(t, Tiny.INPUT),
            raw_output=_get(t, Tiny.OUTPUT), tensors=_get(t, Tiny.TENSORS),
            latency_us=_get(t, Tiny.LATENCY_US), instructions=_get(t, Tiny.INSTRUCTIONS),
            model_sha256=_get(t, Tiny.MODEL_SHA256),
            escalated=bool(_get(t, Tiny.LAST_ESCALATED)) if _get(t, Tiny.THRESHOLD) else None)

    # -- credentials ---------------------------------------------------------------
    def provision(self, endpoint: str, *, replace: bool = False) -> DeviceCredentials:
        if self.credentials is None:
            raise Conflict("LwM2M security is off (settings lwm2m.security = 'off'); "
                           "there are no credentials to provision")
        return DeviceCredentials.model_validate(self.credentials.provision(endpoint, replace=replace))

    def revoke(self, endpoint: str) -> None:
        if self.credentials is None:
            raise Conflict("LwM2M security is off; there are no credentials to revoke")
        self.credentials.revoke(endpoint)
        rec = self.srv.registry.devices.get(endpoint)
        if rec is not None and rec.registration is not None:
            self.srv.registry.remove(rec.registration, "credentials revoked")


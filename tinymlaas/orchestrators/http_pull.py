"""A second orchestrator: plain HTTP pull ("custom OTA"), for devices that speak no CoAP.

A device long-polls ``POST /ota/{endpoint}/poll`` with its status (what it is and
runs), the commands it took, their results and the inferences it ran since the
last poll. The service answers with the commands queued for it — ``infer``,
``firmware`` (FOTA), ``model`` (SOTA) — or, after ``poll_wait_s``, with none. A
command stays queued until the device says it took it, so a poll lost on the way
only delays it. Packages come from the same content-addressed, grant-protected
URLs as LwM2M's; results use the LwM2M objects' Update Result codes and words, so
both protocols' deployments read alike. With ``security = "token"`` every poll
carries the device's bearer token (``POST /devices/{endpoint}/credentials``).

Hybrid inference: a ``hybrid`` command gives the device its escalation policy;
the device escalates an uncertain inference with ``POST /ota/{endpoint}/escalate``
(same token), a request of its own because it needs the answer now, and a
long poll may be held for 20 s; each poll reports the policy and the counts.

The device side is :mod:`tinymlaas.edge.pull`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from tinymlaas.api.handlers import problems
from tinymlaas.api.security import DEVICE
from tinymlaas.config import HttpPullSettings
from tinymlaas.edge.lwm2m.vocab import SW_CANNOT, FwResult, SwResult, fw_result_words, sw_result_words
from tinymlaas.errors import Conflict, DeviceError, DeviceUnreachable, Forbidden, InvalidInput, NotFound
from tinymlaas.fleet.models import BridgeMcu, DeviceFacts
from tinymlaas.models import (
    Device,
    DeviceCapabilities,
    DeviceCredentials,
    Escalation,
    HybridState,
    InferenceReport,
    JoinInfo,
    Package,
    PullAttach,
    UpdateOutcome,
)
from tinymlaas.orchestrators.grants import Grants
from tinymlaas.orchestrators.reports import inference_report
from tinymlaas.plugins.base import Orchestrator, Progress, no_progress

ENDPOINT = r"^[A-Za-z0-9._-]{1,64}$"


# -- what travels in a poll ----------------------------------------------------------

def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise ValueError(f"not base64: {exc}") from None
    return value


Base64 = Annotated[str, AfterValidator(_base64), Field(json_schema_extra={"contentEncoding": "base64"})]


class Inference(BaseModel):
    """One inference the device ran; tensors are base64 of their raw bytes."""

    count: int = Field(ge=0)
    input: Base64
    output: Base64
    latency_us: int | None = None
    instructions: int | None = None
    model_sha256: str | None = None
    escalated: bool | None = Field(None, description="answered by the cloud model (a hybrid device)")


class CommandResult(BaseModel):
    """How a command ended; ``code`` is the LwM2M Update Result (5/0/5 or 9/x/9) for updates."""

    id: str
    ok: bool
    code: int | None = None
    detail: str = ""
    states: list[str] = []
    inference: Inference | None = None
    hybrid: HybridState | None = Field(None, description="hybrid: the device's state with the new policy")


class Poll(BaseModel):
    """A device's poll: who it is now, what it did, and how long it will wait for work
    (a bridge also lists the boards behind it, in ``bridge``)."""

    status: dict[str, Any]
    boot: str | None = Field(None, max_length=64, description="changes each time the device starts")
    seq: int | None = Field(None, ge=0, description="the device's poll counter since it started: a status "
                                                   "older than one already taken (polls crossing) is ignored")
    bridge: list[BridgeMcu] | None = None
    accepted: list[str] = []
    results: list[CommandResult] = []
    inferences: list[Inference] = []
    wait_s: float = Field(0.0, ge=0, le=120)


class Command(BaseModel):
    id: str
    op: Literal["infer", "firmware", "model", "hybrid"]
    input: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    policy: dict[str, Any] | None = Field(None, description="hybrid: threshold and cloud endpoint")


class PollReply(BaseModel):
    commands: list[Command]
    poll_wait_s: float


class EscalationRequest(BaseModel):
    """An inference the device was not sure of: its raw input tensor."""

    input: Base64


# -- the service's side --------------------------------------------------------------

@dataclass
class _Record:
    endpoint: str
    first_seen: float
    last_seen: float
    status: DeviceCapabilities
    address: str | None = None
    boot: str | None = None  # the device's start the newest status is from
    seq: int = -1  # and its poll counter
    polls: int = 0  # polls being held open right now
    outbox: dict[str, Command] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[CommandResult]] = field(default_factory=dict)
    listeners: set[asyncio.Queue[InferenceReport]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Whether the registry was told this device went offline (it is told once).
    told_offline: bool = False


class TokenStore:
    """Per-device bearer tokens; only their SHA-256 is kept (the token is shown once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._digests: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._digests, indent=1))
        tmp.replace(self.path)

    def provision(self, endpoint: str, *, replace: bool = False) -> dict[str, str]:
        if endpoint in self._digests and not replace:
            raise Conflict(f"device '{endpoint}' already has a token (ask with replace=true for a new one)")
        token = secrets.token_urlsafe(24)
        self._digests[endpoint] = hashlib.sha256(token.encode()).hexdigest()
        self._save()
        return {"endpoint": endpoint, "token": token}

    def revoke(self, endpoint: str) -> None:
        if self._digests.pop(endpoint, None) is None:
            raise NotFound(f"device '{endpoint}' has no token")
        self._save()

    def check(self, endpoint: str, token: str | None) -> None:
        want = self._digests.get(endpoint)
        if want is None:
            raise Forbidden(f"device '{endpoint}' has no credentials on this service")
        if not token or not hmac.compare_digest(want, hashlib.sha256(token.encode()).hexdigest()):
            raise Forbidden(f"wrong or missing token for device '{endpoint}'")


class HttpPullOrchestrator(Orchestrator):
    """Devices long-poll the API over plain HTTP for commands: inference, FOTA, SOTA."""

    name = "http-pull"
    version = "1.0"
    Options = HttpPullSettings

    def __init__(self, options: HttpPullSettings | None = None) -> None:
        super().__init__(options)
        assert isinstance(self.options, HttpPullSettings)
        self.settings: HttpPullSettings = self.options
        self.grants = Grants(self.settings.grant_ttl_s)
        self.tokens: TokenStore | None = None
        self._devices: dict[str, _Record] = {}
        self._ids = 0
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def routes(cls) -> list[APIRouter]:
        return [router]

    async def start(self, data_dir: Path) -> None:
        if self.settings.security == "token":
            self.tokens = TokenStore(data_dir / "http-pull" / "tokens.json")
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="http-pull-offline")

    async def _sweep(self) -> None:
        """A pulling device goes offline by staying silent: notice it, and tell the registry once."""
        while True:
            await asyncio.sleep(min(self.settings.offline_after_s / 4, 5.0))
            for rec in list(self._devices.values()):
                if not rec.told_offline and not self._is_online(rec):
                    rec.told_offline = True
                    self.events.left(rec.endpoint, f"no poll for {time.time() - rec.last_seen:.0f} s")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for rec in self._devices.values():
            rec.wake.set()  # polls held open return now
            for fut in rec.waiting.values():
                fut.cancel()

    def join_info(self) -> JoinInfo:
        return JoinInfo(plugin=self.name, poll="/ota/{endpoint}/poll", security=self.settings.security,
                        poll_wait_s=self.settings.poll_wait_s)

    @classmethod
    def attach(cls, join: JoinInfo, *, api_url: str, endpoint: str, credentials: DeviceCredentials | None,
               folder: Path) -> PullAttach:
        holder = None
        if credentials is not None:
            holder = folder / "credentials"
            holder.mkdir(parents=True, exist_ok=True)
            (holder / "token").write_text(credentials.secret("token"))
            (holder / "token").chmod(0o600)
            credentials.write_trust(holder)
        return PullAttach(url=api_url, endpoint=endpoint, credentials=holder,
                          wait_s=min(join.poll_wait_s or 10.0, 10.0))

    # -- the poll --------------------------------------------------------------------
    async def poll(self, endpoint: str, body: Poll, *, token: str | None, address: str | None) -> PollReply:
        """One device poll: record what it says, then hand out (or wait for) its commands."""
        if self.tokens is not None:
            self.tokens.check(endpoint, token)
        now = time.time()
        try:
            status = DeviceCapabilities.model_validate({**body.status, "endpoint": endpoint})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidInput(f"the poll's status field '{'.'.join(map(str, err['loc']))}': {err['msg']}"
                               ) from None
        refusal = self.events.admit(endpoint)
        if refusal is not None:
            raise Forbidden(refusal)
        rec = self._devices.get(endpoint)
        fresh = rec is None or body.seq is None or body.boot != rec.boot or body.seq >= rec.seq
        # A device that joins or has just booted is answered at once: it learns that the service
        # hears it (a new image confirms itself only then) instead of after a held poll.
        joining = rec is None or rec.told_offline or body.boot != rec.boot
        facts = DeviceFacts.from_capabilities(status)
        if rec is None or rec.told_offline:
            rec = rec or _Record(endpoint, now, now, status)
            self._devices[endpoint] = rec
            rec.told_offline = False
            self.events.joined(endpoint, facts)
        elif fresh:
            self.events.seen(endpoint, facts)
        if body.bridge is not None:
            self.events.bridge(endpoint, body.bridge)
        rec.last_seen, rec.address = now, address
        if fresh:
            rec.status, rec.boot, rec.seq = status, body.boot, -1 if body.seq is None else body.seq
        for cid in body.accepted:
            rec.outbox.pop(cid, None)
        for res in body.results:
            rec.outbox.pop(res.id, None)
            fut = rec.waiting.pop(res.id, None)
            if fut is not None and not fut.done():
                fut.set_result(res)
        for inf in body.inferences:
            report = self._report(rec, inf)
            for q in rec.listeners:
                q.put_nowait(report)
        # Jitter: a fleet that came up together (a power cut) must not poll in lock-step.
        wait = min(body.wait_s, self.settings.poll_wait_s) * random.uniform(0.75, 1.0)
        if not rec.outbox and wait > 0 and not joining:
            rec.wake.clear()
            rec.polls += 1
            try:
                await asyncio.wait_for(rec.wake.wait(), wait)
            except TimeoutError:
                pass
            finally:
                rec.polls -= 1
                rec.last_seen = time.time()
        return PollReply(commands=list(rec.outbox.values()), poll_wait_s=self.settings.poll_wait_s)

    @staticmethod
    def _report(rec: _Record, inf: Inference) -> InferenceReport:
        return inference_report(
            rec.endpoint, count=inf.count, raw_input=base64.b64decode(inf.input),
            raw_output=base64.b64decode(inf.output), tensors=rec.status.tensors,
            latency_us=inf.latency_us, instructions=inf.instructions,
            model_sha256=inf.model_sha256 or rec.status.model_sha256, escalated=inf.escalated)

    async def _command(self, endpoint: str, timeout: float, **fields: Any) -> CommandResult:
        rec = self._online(endpoint)
        self._ids += 1
        cmd = Command(id=f"c{self._ids}-{secrets.token_hex(3)}", **fields)
        fut: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        rec.waiting[cmd.id], rec.outbox[cmd.id] = fut, cmd
        rec.wake.set()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise DeviceUnreachable(f"device '{endpoint}' did not finish '{cmd.op}' within {timeout:.0f} s "
                                    f"(it was last heard from {time.time() - rec.last_seen:.0f} s ago)"
                                    ) from None
        finally:
            rec.waiting.pop(cmd.id, None)
            rec.outbox.pop(cmd.id, None)

    # -- inventory ---------------------------------------------------------------------
    def _is_online(self, rec: _Record) -> bool:
        return rec.polls > 0 or time.time() - rec.last_seen <= self.settings.offline_after_s

    def _online(self, endpoint: str) -> _Record:
        rec = self._devices.get(endpoint)
        if rec is None:
            raise NotFound(f"device '{endpoint}' has never polled this service")
        if not self._is_online(rec):
            raise DeviceUnreachable(f"device '{endpoint}' is offline: no poll for "
                                    f"{time.time() - rec.last_seen:.0f} s")
        return rec

    def _summary(self, rec: _Record) -> Device:
        online = self._is_online(rec)
        silent = time.time() - rec.last_seen
        return Device(endpoint=rec.endpoint, online=online, binding="HTTP pull", address=rec.address,
                      registered_at=rec.first_seen, updated_at=rec.last_seen, secure=self.tokens is not None,
                      offline_since=None if online else rec.last_seen + self.settings.offline_after_s,
                      offline_reason="" if online else f"no poll for {silent:.0f} s")

    def devices(self) -> list[Device]:
        return [self._summary(r) for r in self._devices.values()]

    def device(self, endpoint: str) -> Device:
        rec = self._devices.get(endpoint)
        if rec is None:
            raise NotFound(f"device '{endpoint}' has never polled this service")
        return self._summary(rec)

    async def capabilities(self, endpoint: str) -> DeviceCapabilities:
        """As of the device's last poll (a pulling device cannot be read on demand)."""
        return self._online(endpoint).status

    # -- updates ------------------------------------------------------------------------
    def authorize_download(self, endpoint: str, sha256: str, grant: str | None, *, address: str | None,
                           token: str | None) -> None:
        if self.tokens is not None:  # the device proves who it is, as on its polls
            self.tokens.check(endpoint, token)
        self.grants.check(endpoint, sha256, grant, address=address)

    async def _update(self, endpoint: str, package: Package, kind: Literal["firmware", "model"], *,
                      download_base: str, progress: Progress) -> UpdateOutcome:
        started = time.monotonic()
        rec = self._online(endpoint)
        out = UpdateOutcome(endpoint=endpoint, kind=kind, package_sha256=package.sha256, succeeded=False,
                            result_code=0, attempts=1, firmware_before=rec.status.firmware_version)
        what = "firmware" if kind == "firmware" else "module"
        if not (rec.status.fota if kind == "firmware" else rec.status.sota):
            refused = FwResult.unsupported_package if kind == "firmware" else SwResult.unsupported_package
            out.result_code = int(refused)
            out.result = (fw_result_words if kind == "firmware" else sw_result_words)(refused)
            out.detail = f"device '{endpoint}' takes no {what} updates"
            return self._done(out, started)
        progress(f"device pulls the {what}", 0.1)
        base = self.settings.package_base_url or download_base
        with self.grants.during(endpoint, package.sha256):
            url = self.grants.package_url(base, endpoint, package.sha256, address=rec.address)
            res = await self._command(endpoint, self.settings.update_timeout_s, op=kind,
                                      sha256=package.sha256, size=package.size, url=url)
        rec = self._devices[endpoint]
        words = fw_result_words if kind == "firmware" else sw_result_words
        out.result_code = res.code
        out.result = words(res.code) if res.code is not None else ""
        out.states, out.detail = res.states, res.detail
        out.firmware_after = rec.status.firmware_version
        out.model_sha256 = rec.status.model_sha256
        out.succeeded = res.ok and (package.model_sha256 is None or out.model_sha256 == package.model_sha256)
        if res.ok and not out.succeeded:
            out.detail = f"the device reports model {out.model_sha256}, not {package.model_sha256}"
        progress("done", 1.0)
        return self._done(out, started)

    @staticmethod
    def _done(out: UpdateOutcome, started: float) -> UpdateOutcome:
        out.seconds = round(time.monotonic() - started, 3)
        return out

    async def deploy_firmware(self, endpoint: str, package: Package, *, download_base: str,
                              progress: Progress = no_progress) -> UpdateOutcome:
        return await self._update(endpoint, package, "firmware", download_base=download_base,
                                  progress=progress)

    async def deploy_model(self, endpoint: str, module: Package, *, download_base: str,
                           fallback_firmware: Package | None = None,
                           progress: Progress = no_progress) -> UpdateOutcome:
        out = await self._update(endpoint, module, "model", download_base=download_base, progress=progress)
        if out.succeeded or out.result_code not in SW_CANNOT or fallback_firmware is None:
            return out
        fw = await self.deploy_firmware(endpoint, fallback_firmware, download_base=download_base,
                                        progress=progress)
        return fw.model_copy(update={
            "kind": "model", "fell_back_to_firmware": True,
            "detail": f"SOTA refused ({out.detail}); installed by FOTA. {fw.detail}".strip()})

    # -- inference ----------------------------------------------------------------------
    async def infer(self, endpoint: str, tensor: bytes) -> InferenceReport:
        res = await self._command(endpoint, self.settings.request_timeout_s, op="infer",
                                  input=base64.b64encode(tensor).decode())
        if not res.ok or res.inference is None:
            raise DeviceError(f"device '{endpoint}' could not run the inference: {res.detail}")
        return self._report(self._devices[endpoint], res.inference)

    # -- hybrid inference ----------------------------------------------------------------
    async def set_hybrid(self, endpoint: str, threshold: float | None, cloud: str | None) -> HybridState:
        policy = {"threshold": threshold, "cloud": cloud}
        res = await self._command(endpoint, self.settings.request_timeout_s, op="hybrid", policy=policy)
        if not res.ok:
            raise DeviceError(f"device '{endpoint}' did not take the hybrid policy: {res.detail}")
        if res.hybrid is None:
            raise DeviceError(f"device '{endpoint}' took the policy but reports no hybrid state")
        return res.hybrid

    async def escalate(self, endpoint: str, tensor: bytes, *, token: str | None) -> Escalation:
        """An inference a device escalates: the device proves who it is, as on its polls."""
        if self.tokens is not None:
            self.tokens.check(endpoint, token)
        if self.escalation is None:
            raise NotFound("this service answers no escalated inferences")
        return await self.escalation(endpoint, tensor)

    async def subscribe(self, endpoint: str) -> AsyncIterator[InferenceReport]:
        rec = self._online(endpoint)
        q: asyncio.Queue[InferenceReport] = asyncio.Queue()
        rec.listeners.add(q)

        async def reports() -> AsyncIterator[InferenceReport]:
            try:
                while True:
                    yield await q.get()
            finally:
                rec.listeners.discard(q)

        return reports()

    # -- credentials ----------------------------------------------------------------------
    def provision(self, endpoint: str, *, replace: bool = False) -> DeviceCredentials:
        if self.tokens is None:
            raise Conflict("HTTP pull security is off (settings http_pull.security = 'off'); "
                           "there are no credentials to provision")
        return DeviceCredentials.model_validate(self.tokens.provision(endpoint, replace=replace))

    def revoke(self, endpoint: str) -> None:
        if self.tokens is None:
            raise Conflict("HTTP pull security is off; there are no credentials to revoke")
        self.tokens.revoke(endpoint)
        self.disconnect(endpoint, "credentials revoked")

    def disconnect(self, endpoint: str, reason: str) -> None:
        rec = self._devices.pop(endpoint, None)
        if rec is not None:
            rec.wake.set()  # a poll held open returns now
            self.events.left(endpoint, reason)


router = APIRouter(prefix="/ota", tags=["http-pull devices"])


@router.post("/{endpoint}/poll", dependencies=DEVICE, responses=problems(403, 404, 422))
async def poll(endpoint: Annotated[str, PathParam(pattern=ENDPOINT)], body: Poll, request: Request,
               authorization: Annotated[str | None, Header()] = None) -> PollReply:
    """A device's long poll: its status, results and inferences in; its commands out."""
    orch = request.app.state.orchestrator
    if not isinstance(orch, HttpPullOrchestrator):
        raise NotFound("this service's devices use another orchestrator")
    token = authorization.removeprefix("Bearer ").strip() if authorization else None
    return await orch.poll(endpoint, body, token=token,
                           address=request.client.host if request.client else None)


@router.post("/{endpoint}/escalate", dependencies=DEVICE, responses=problems(403, 404, 409, 422))
async def escalate(endpoint: Annotated[str, PathParam(pattern=ENDPOINT)], body: EscalationRequest,
                   request: Request, authorization: Annotated[str | None, Header()] = None) -> Escalation:
    """A hybrid device's uncertain inference, answered by the cloud model of the policy the service
    gave it."""
    orch = request.app.state.orchestrator
    if not isinstance(orch, HttpPullOrchestrator):
        raise NotFound("this service's devices use another orchestrator")
    token = authorization.removeprefix("Bearer ").strip() if authorization else None
    return await orch.escalate(endpoint, base64.b64decode(body.input), token=token)

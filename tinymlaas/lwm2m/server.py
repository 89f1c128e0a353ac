"""The LwM2M 1.1 server on aiocoap: registration interface, device management, observation.

State lives in :class:`Registry` (one :class:`Registration` per online device,
whose lifetime is a cancellable task) and the ``/rd`` resources are thin
adapters onto it. :class:`LwM2MServer` sends the server's operations (Read,
Write, Execute, Discover, Write-Attributes, Create, Delete, Observe) with an
Accept option, does block-wise transfers itself so they start at the block size
the device has shown, and turns CoAP failures into the service's errors:
no answer -> :class:`~tinymlaas.errors.DeviceUnreachable`, an error code ->
:class:`~tinymlaas.errors.DeviceError` (4.04 -> NotFound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning
from aiocoap.optiontypes import BlockOption

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.client import _retrieve, bound_port
from tinymlaas.edge.lwm2m.codec import Content, Path, parse_path, path_str
from tinymlaas.edge.lwm2m.links import Link, LinkFormatError, parse_links
from tinymlaas.errors import DeviceError, DeviceUnreachable, NotFound, TinyMLaaSError
from tinymlaas.lwm2m.security import CredentialStore

log = logging.getLogger("tinymlaas.lwm2m.server")

FORMATS = {"senml-cbor": codec.SENML_CBOR, "senml-json": codec.SENML_JSON, "tlv": codec.TLV}
_SZX = {16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6}
_EP_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _tuning(settings: LwM2MSettings) -> TransportTuning:
    class Tuning(TransportTuning):
        ACK_TIMEOUT = settings.ack_timeout_s
        MAX_RETRANSMIT = settings.max_retransmit

    return Tuning()


@dataclass(eq=False)
class Registration:
    """One device's current registration (RFC 9176 / LwM2M 1.1 Registration Interface)."""

    id: str
    endpoint: str
    lifetime: int
    lwm2m: str
    binding: str
    links: list[Link]
    remote: Any
    identity: str | None
    registered_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    #: Block size exponent to start transfers with; lowered when the device shows a smaller one.
    block_szx: int = 6
    expiry: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return str(self.remote.hostinfo)

    @property
    def host(self) -> str | None:
        """The device's IP address (no port), as another protocol (HTTP) would see it."""
        remote = getattr(self.remote, "underlying_address", self.remote)  # OSCORE wraps UDP
        sockaddr = getattr(remote, "sockaddr", None)
        if not sockaddr:
            return None
        host = str(sockaddr[0])
        return host.removeprefix("::ffff:")  # an IPv4 peer on a dual-stack socket

    @property
    def objects(self) -> dict[int, list[int]]:
        """Object id -> instance ids, from the registration's link list."""
        out: dict[int, list[int]] = {}
        for link in self.links:
            try:
                p = parse_path(link.target)
            except codec.CodecError:
                continue
            if len(p) >= 1:
                out.setdefault(p[0], [])
            if len(p) == 2:
                out[p[0]].append(p[1])
        return out

    @property
    def versions(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for link in self.links:
            ver = link.attrs.get("ver")
            with contextlib.suppress(codec.CodecError):
                p = parse_path(link.target)
                if len(p) == 1 and ver:
                    out[p[0]] = ver
        return out

    @property
    def content_format(self) -> int | None:
        """The format the device announced on its root link (``</>;ct=...``)."""
        for link in self.links:
            if link.target == "/" and link.attrs.get("ct"):
                with contextlib.suppress(ValueError):
                    return int(str(link.attrs["ct"]).split()[0])
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "registration": self.id, "online": True,
            "lifetime": self.lifetime, "lwm2m": self.lwm2m, "binding": self.binding,
            "address": self.address, "registered_at": self.registered_at,
            "updated_at": self.updated_at, "objects": self.objects, "versions": self.versions,
            "secure": self.identity is not None,
        }


@dataclass
class DeviceRecord:
    """What the server remembers of a device, online or not."""

    endpoint: str
    registration: Registration | None = None
    offline_since: float | None = None
    offline_reason: str = ""
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def online(self) -> bool:
        return self.registration is not None

    def summary(self) -> dict[str, Any]:
        if self.registration is not None:
            return self.registration.summary()
        return {**self.last, "endpoint": self.endpoint, "online": False,
                "offline_since": self.offline_since, "offline_reason": self.offline_reason}


class Registry:
    """Registrations by id and devices by endpoint name; one condition for waiters."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceRecord] = {}
        self.by_id: dict[str, Registration] = {}
        self.changed = asyncio.Condition()
        self.listeners: list[Callable[[str, Registration], None]] = []

    def get(self, endpoint: str) -> DeviceRecord:
        try:
            return self.devices[endpoint]
        except KeyError:
            raise NotFound(f"no device '{endpoint}' has registered") from None

    def online(self, endpoint: str) -> Registration:
        reg = self.get(endpoint).registration
        if reg is None:
            raise DeviceUnreachable(f"device '{endpoint}' is offline "
                                    f"({self.devices[endpoint].offline_reason})")
        return reg

    def add(self, reg: Registration) -> Registration | None:
        """Store a new registration; returns the one it replaces (same endpoint)."""
        rec = self.devices.setdefault(reg.endpoint, DeviceRecord(reg.endpoint))
        old = rec.registration
        if old is not None:
            self._drop(old)
        rec.registration, rec.offline_since, rec.offline_reason = reg, None, ""
        self.by_id[reg.id] = reg
        self._arm(reg)
        self._emit("registered", reg)
        return old

    def refresh(self, reg: Registration) -> None:
        reg.updated_at = time.time()
        self._arm(reg)
        self._emit("updated", reg)

    def remove(self, reg: Registration, reason: str) -> None:
        rec = self.devices.get(reg.endpoint)
        if rec is None or rec.registration is not reg:
            return
        self._drop(reg)
        rec.last = reg.summary()
        rec.registration, rec.offline_since, rec.offline_reason = None, time.time(), reason
        self._emit(reason, reg)

    def _drop(self, reg: Registration) -> None:
        self.by_id.pop(reg.id, None)
        if reg.expiry is not None and reg.expiry is not asyncio.current_task():
            reg.expiry.cancel()

    def _arm(self, reg: Registration) -> None:
        if reg.expiry is not None:
            reg.expiry.cancel()
        reg.expiry = asyncio.get_running_loop().create_task(self._expire(reg),
                                                             name=f"lifetime-{reg.endpoint}")

    async def _expire(self, reg: Registration) -> None:
        await asyncio.sleep(reg.lifetime)
        log.info("registration of %s expired after %d s", reg.endpoint, reg.lifetime)
        self.remove(reg, "lifetime expired")

    def _emit(self, event: str, reg: Registration) -> None:
        for listener in list(self.listeners):
            listener(event, reg)
        asyncio.get_running_loop().create_task(self._notify_waiters())

    async def _notify_waiters(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every registration event)."""
        async with self.changed:
            return await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def cancel_all(self) -> None:
        for reg in list(self.by_id.values()):
            if reg.expiry is not None:
                reg.expiry.cancel()


def _grow_receive_buffer(ctx: aiocoap.Context, size: int) -> None:
    """A fleet answering at once sends bursts of small datagrams; the default UDP
    buffer (about 200 of them) would drop notifications and ACKs."""
    import socket

    for ri in ctx.request_interfaces:
        mi = getattr(getattr(ri, "token_interface", None), "message_interface", None)
        sock = mi.transport.get_extra_info("socket") if mi is not None else None
        if sock is None:
            continue
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
                break
            except OSError:  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max
                continue


def _check_port_free(host: str, port: int) -> None:
    """aiocoap binds with SO_REUSEPORT, so a second server on a port would silently
    share its traffic; refuse instead."""
    import socket

    family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TinyMLaaSError(f"UDP {host}:{port} is in use (another LwM2M server?): {exc}") from exc


def _query(request: aiocoap.Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for q in request.opt.uri_query:
        k, _, v = q.partition("=")
        out[k] = v
    return out


class RegisterResource(resource.Resource):
    """``POST /rd?ep=..&lt=..&lwm2m=..&b=..`` with the object list in link format."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        q = _query(request)
        ep = q.get("ep", "")
        if not ep or len(ep) > 128 or not set(ep) <= _EP_CHARS:
            raise coap_error.BadRequest("ep must be 1-128 letters, digits or -_.:")
        identity = self.server.authenticate(request, ep)
        lifetime = _lifetime(q.get("lt", "86400"))
        version = q.get("lwm2m", "1.0")
        if version not in ("1.0", "1.1"):
            raise coap_error.PreconditionFailed(f"LwM2M version {version} is not supported")
        if request.opt.content_format not in (None, codec.LINK_FORMAT):
            raise coap_error.UnsupportedContentFormat("the object list is link format (40)")
        links = _links(request.payload)
        reg = Registration(id=secrets.token_hex(4), endpoint=ep, lifetime=lifetime, lwm2m=version,
                           binding=q.get("b", "U"), links=links, remote=request.remote,
                           identity=identity, block_szx=self.server.default_szx)
        if request.opt.block1 is not None:
            reg.block_szx = min(reg.block_szx, request.opt.block1.size_exponent)
        old = self.server.registry.add(reg)
        if old is not None:
            log.info("%s registered again from %s (was %s): the old registration is replaced",
                     ep, reg.address, old.address)
        else:
            log.info("%s registered from %s, lifetime %d s", ep, reg.address, lifetime)
        return aiocoap.Message(code=Code.CREATED, location_path=("rd", reg.id))


class RegistrationResource(resource.Resource, resource.PathCapable):
    """``POST /rd/{id}`` (Update) and ``DELETE /rd/{id}`` (De-register)."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    def _reg(self, request: aiocoap.Message) -> Registration:
        path = request.opt.uri_path
        reg = self.server.registry.by_id.get(path[0]) if len(path) == 1 else None
        if reg is None:
            raise coap_error.NotFound("no such registration; register again")
        if self.server.security and not self.server.same_identity(request, reg):
            raise coap_error.Forbidden("this registration belongs to another device")
        return reg

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        reg = self._reg(request)
        q = _query(request)
        if "lt" in q:
            reg.lifetime = _lifetime(q["lt"])
        if "b" in q:
            reg.binding = q["b"]
        if request.payload:
            reg.links = _links(request.payload)
        reg.remote = request.remote  # a NAT rebinding moves the device
        self.server.registry.refresh(reg)
        return aiocoap.Message(code=Code.CHANGED)

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        reg = self._reg(request)
        log.info("%s de-registered", reg.endpoint)
        self.server.registry.remove(reg, "de-registered")
        return aiocoap.Message(code=Code.DELETED)


def _lifetime(text: str) -> int:
    try:
        lt = int(text)
    except ValueError:
        raise coap_error.BadRequest(f"lt={text} is not an integer") from None
    if not 1 <= lt <= 10 * 365 * 86400:
        raise coap_error.BadRequest("lt must be a positive number of seconds")
    return lt


def _links(payload: bytes) -> list[Link]:
    try:
        return parse_links(payload.decode("utf-8"))
    except (UnicodeDecodeError, LinkFormatError) as exc:
        raise coap_error.BadRequest(f"bad object list: {exc}") from None


class Observation:
    """A server-side observation: the latest value, a stream of changes, and cancel()."""

    def __init__(self, server: LwM2MServer, reg: Registration, path: Path, fmt: int) -> None:
        self.server, self.reg, self.path, self.fmt = server, reg, path, fmt
        self.value: Content = {}
        self.error: BaseException | None = None
        self.notifications = 0
        #: When the latest notification arrived (time.time_ns()).
        self.received_ns = 0
        self._cond = asyncio.Condition()
        self._request: Any = None
        self._task: asyncio.Task[None] | None = None
        self._queues: list[asyncio.Queue[Content]] = []

    async def _start(self) -> None:
        msg = aiocoap.Message(code=Code.GET, observe=0, accept=self.fmt,
                              uri_path=[str(p) for p in self.path])
        self._request = self.server._send(self.reg, msg)
        first = await self.server._await(self.reg, self._request.response, f"Observe {path_str(self.path)}")
        self.server._check(self.reg, first, "Observe", self.path)
        if first.opt.observe is None:
            self.cancel()
            raise DeviceError(f"device '{self.reg.endpoint}' does not let {path_str(self.path)} "
                              "be observed")
        await self._update(first)
        self._task = asyncio.get_running_loop().create_task(self._follow(),
                                                             name=f"observe-{self.reg.endpoint}")

    async def _follow(self) -> None:
        try:
            async for notification in self._request.observation:
                if not notification.code.is_successful():
                    raise DeviceError(f"observation of {path_str(self.path)} ended: {notification.code}")
                await self._update(notification)
        except (coap_error.Error, TinyMLaaSError, codec.CodecError) as exc:
            self.error = exc
        finally:
            async with self._cond:
                self._cond.notify_all()

    async def _update(self, msg: aiocoap.Message) -> None:
        fmt = msg.opt.content_format
        value = codec.decode(fmt, msg.payload, self.path)
        async with self._cond:
            self.value = {**self.value, **value} if len(self.path) >= 3 else value
            self.notifications += 1
            self.received_ns = time.time_ns()
            for q in self._queues:
                q.put_nowait(value)
            self._cond.notify_all()

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_for(self, predicate: Callable[[Content], Any], timeout: float,
                       poll_s: float = 5.0) -> Content:
        """Until ``predicate(value)`` holds; DeviceUnreachable if the observation ends first.

        Notifications may be non-confirmable, and a lost one must not stall an
        update: without news for ``poll_s`` seconds the path is read instead.
        """

        def ready() -> bool:
            return bool(predicate(self.value)) or not self.active

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise DeviceUnreachable(
                    f"device '{self.reg.endpoint}' did not reach the expected "
                    f"{path_str(self.path)} within {timeout:.0f} s (last: {self.value})")
            async with self._cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait_for(ready), min(left, poll_s))
            if ready():
                break
            with contextlib.suppress(TinyMLaaSError):  # the poll is a fallback; timeouts decide
                polled = await self.server.read(self.reg.endpoint, self.path, fmt=self.fmt)
                async with self._cond:
                    self.value = {**self.value, **polled} if len(self.path) >= 3 else polled
        if not predicate(self.value):
            raise DeviceUnreachable(f"observation of {path_str(self.path)} on "
                                    f"'{self.reg.endpoint}' ended: {self.error}")
        return self.value

    async def changes(self) -> AsyncIterator[Content]:
        q: asyncio.Queue[Content] = asyncio.Queue()
        self._queues.append(q)
        try:
            while self.active or not q.empty():
                getter = asyncio.ensure_future(q.get())
                done, _ = await asyncio.wait({getter, self._task} if self._task else {getter},
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            self._queues.remove(q)

    def cancel(self) -> None:
        """Stop following; the device's next notification is answered with a reset."""
        if self._request is not None and not self._request.observation.cancelled:
            self._request.observation.cancel()
        if self._task is not None:
            self._task.cancel()
        self.server._observations.discard(self)


class _LibraryLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The aiocoap context's logger, with two aiocoap 0.4.17 quirks handled at the boundary.

    * Its ``Pipe`` reports an error that arrives after a request ended with
      ``log.error(..., exception=e)``, which ``Logger`` rejects: the ``TypeError``
      surfaces as a traceback when the server shuts down with observations open
      (and that shutdown error itself is expected, so it is debug).
    * An OSCORE observation cannot be cancelled on the wire (aiocoap's own FIXME
      in its OSCORE transport), so a device's notifications after we stopped
      listening are expected: "... added after ... has already ended" is debug noise.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exception = kwargs.pop("exception", None)
        if exception is not None:
            kwargs.setdefault("exc_info", exception)
            if isinstance(exception, coap_error.LibraryShutdown):
                level = logging.DEBUG  # our own shutdown ending such an observation
        if level == logging.WARNING and "has already ended" in str(msg):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)

    def getChild(self, suffix: str) -> logging.Logger:
        child: logging.Logger = self.logger.getChild(suffix)
        return child


class LwM2MServer:
    """The server: ``start()``/``stop()``, device operations by endpoint name."""

    def __init__(self, settings: LwM2MSettings, credentials: CredentialStore | None = None) -> None:
        self.settings = settings
        self.security = settings.security == "oscore"
        if self.security and credentials is None:
            raise TinyMLaaSError("LwM2M security 'oscore' needs a credential store")
        self.credentials = credentials
        self.registry = Registry()
        self.tuning = _tuning(settings)
        self.default_szx = _SZX[settings.block_size]
        self.preferred = FORMATS[settings.content_format]
        self.ctx: aiocoap.Context | None = None
        self.port = settings.port
        self._observations: set[Observation] = set()
        #: Resources beyond registration that devices call (their own requests), by path.
        self.resources: dict[tuple[str, ...], resource.Resource] = {}

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        site = resource.Site()
        site.add_resource(["rd"], RegisterResource(self))  # /rd itself
        site.add_resource(["rd"], RegistrationResource(self))  # /rd/{id}
        for path, extra in self.resources.items():
            site.add_resource(list(path), extra)
        root: Any = site
        transports = ["udp6"]
        if self.credentials is not None:
            from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

            root = OscoreSiteWrapper(site, self.credentials.credentials_map())
            transports = ["oscore", "udp6"]
        if self.settings.port:
            _check_port_free(self.settings.host, self.settings.port)
        try:
            self.ctx = await aiocoap.Context.create_server_context(
                root, bind=(self.settings.host, self.settings.port), transports=transports)
        except OSError as exc:
            raise TinyMLaaSError(f"the LwM2M server cannot bind udp "
                                 f"{self.settings.host}:{self.settings.port}: {exc}") from exc
        self.port = bound_port(self.ctx)
        self.ctx.log = _LibraryLog(self.ctx.log, {})  # used by every request's pipe from here on
        _grow_receive_buffer(self.ctx, 4 << 20)
        log.info("LwM2M server on coap://%s:%d (security: %s)", self.settings.host, self.port,
                 self.settings.security)

    async def stop(self) -> None:
        for obs in list(self._observations):
            obs.cancel()
        self.registry.cancel_all()
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None

    @property
    def uri(self) -> str:
        return f"coap://{self.settings.host}:{self.port}"

    # -- security ----------------------------------------------------------------
    def authenticate(self, request: aiocoap.Message, endpoint: str) -> str | None:
        """The identity behind a registration; refuses unauthenticated or foreign ones."""
        if not self.security:
            return None
        from aiocoap.transports.oscore import OSCOREAddress

        if not isinstance(request.remote, OSCOREAddress):
            raise coap_error.Unauthorized("registration needs OSCORE credentials")
        assert self.credentials is not None  # security on means a credential store
        identity = self.credentials.identity_of(request.remote.security_context)
        if identity is None or identity != endpoint:
            raise coap_error.Forbidden(f"these credentials do not belong to endpoint '{endpoint}'")
        return identity

    def same_identity(self, request: aiocoap.Message, reg: Registration) -> bool:
        from aiocoap.transports.oscore import OSCOREAddress

        return (self.credentials is not None and isinstance(request.remote, OSCOREAddress)
                and self.credentials.identity_of(request.remote.security_context) == reg.identity)

    # -- queries ----------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        return [rec.summary() for rec in sorted(self.registry.devices.values(),
                                                key=lambda r: r.endpoint)]

    def format_for(self, reg: Registration) -> int:
        """SenML CBOR/JSON for LwM2M 1.1 clients (the preferred one), TLV for 1.0."""
        if reg.lwm2m == "1.0":
            return codec.TLV
        return self.preferred

    # -- the exchange, with our own block-wise transfer -------------------------
    def _send(self, reg: Registration, msg: aiocoap.Message) -> Any:
        if self.ctx is None:
            raise DeviceUnreachable("the LwM2M server is not running")
        msg.remote = reg.remote
        msg.transport_tuning = self.tuning
        return self.ctx.request(msg, handle_blockwise=False)

    async def _await(self, reg: Registration, fut: Any, what: str) -> aiocoap.Message:
        try:
            # shield: a timeout must not cancel aiocoap's own future (it sets it later)
            fut.add_done_callback(_retrieve)
            return await asyncio.wait_for(asyncio.shield(fut), self.settings.request_timeout_s)
        except TimeoutError:
            raise DeviceUnreachable(f"device '{reg.endpoint}' did not answer {what} within "
                                    f"{self.settings.request_timeout_s:.0f} s") from None
        except coap_error.ConRetransmitsExceeded:
            raise DeviceUnreachable(f"device '{reg.endpoint}' at {reg.address} did not acknowledge "
                                    f"{what} after {self.settings.max_retransmit} "
                                    "retransmissions") from None
        except coap_error.TimeoutError as exc:
            raise DeviceUnreachable(f"device '{reg.endpoint}' timed out on {what}: {exc}") from None
        except coap_error.NetworkError as exc:
            raise DeviceUnreachable(f"device '{reg.endpoint}' at {reg.address} is unreachable "
                                    f"({what}): {exc}") from None
        except coap_error.LibraryShutdown:
            raise DeviceUnreachable("the LwM2M server is shutting down") from None

    async def exchange(self, reg: Registration, msg: aiocoap.Message, what: str) -> aiocoap.Message:
        """One operation: Block1 for a large payload, Block2 to collect a large answer."""
        payload = msg.payload
        szx = reg.block_szx
        size = 1 << (szx + 4)
        if len(payload) > size:
            offset = 0
            while True:
                more = offset + size < len(payload)
                part = msg.copy(payload=payload[offset:offset + size], mid=None, token=b"",
                                block1=BlockOption.BlockwiseTuple(offset // size, more, szx))
                if offset == 0:
                    part.opt.size1 = len(payload)
                resp = await self._await(reg, self._send(reg, part).response, what)
                b1 = resp.opt.block1
                if not more or not (resp.code == Code.CONTINUE or resp.code.is_successful()):
                    break
                if b1 is not None and b1.size_exponent < szx:  # the device wants smaller blocks
                    offset += size
                    szx = reg.block_szx = b1.size_exponent
                    size = 1 << (szx + 4)
                    continue
                offset += size
        else:
            if msg.code == Code.GET and szx < 6 and msg.opt.observe is None:
                msg.opt.block2 = BlockOption.BlockwiseTuple(0, False, szx)
            resp = await self._await(reg, self._send(reg, msg).response, what)
        b2 = resp.opt.block2
        if b2 is not None and b2.more:
            body = bytearray(resp.payload)
            reg.block_szx = min(reg.block_szx, b2.size_exponent)
            etag = resp.opt.etag
            while b2 is not None and b2.more:
                nxt = msg.copy(payload=b"", mid=None, token=b"", block1=None, observe=None,
                               block2=BlockOption.BlockwiseTuple(b2.block_number + 1, False,
                                                                 b2.size_exponent))
                part = await self._await(reg, self._send(reg, nxt).response, what)
                if not part.code.is_successful():
                    resp = part
                    break
                if etag is not None and part.opt.etag != etag:
                    raise DeviceError(f"'{reg.endpoint}' changed {what} during a block-wise read")
                body += part.payload
                b2 = part.opt.block2
            else:
                resp.payload = bytes(body)
                resp.opt.block2 = None
        return resp

    def _check(self, reg: Registration, resp: aiocoap.Message, op: str, path: Path) -> aiocoap.Message:
        if resp.code.is_successful():
            return resp
        detail = resp.payload.decode("utf-8", errors="replace").strip()
        where = f"{op} {path_str(path)} on device '{reg.endpoint}'"
        if resp.code == Code.NOT_FOUND:
            raise NotFound(f"{where}: not found" + (f" ({detail})" if detail else ""))
        raise DeviceError(f"{where} failed: {resp.code}" + (f" ({detail})" if detail else ""),
                          coap_code=str(resp.code))

    async def _operate(self, endpoint: str, op: str, path: Path, msg: aiocoap.Message) -> aiocoap.Message:
        reg = self.registry.online(endpoint)
        msg.opt.uri_path = [str(p) for p in path]
        resp = await self.exchange(reg, msg, f"{op} {path_str(path)}")
        return self._check(reg, resp, op, path)

    # -- device management & service enablement ---------------------------------
    async def read(self, endpoint: str, path: str | Path, *, fmt: int | None = None) -> Content:
        p = parse_path(path) if isinstance(path, str) else path
        reg = self.registry.online(endpoint)
        accept = fmt or self.format_for(reg)
        resp = await self._operate(endpoint, "Read", p, aiocoap.Message(code=Code.GET, accept=accept))
        got = resp.opt.content_format
        if got not in codec.SUPPORTED:
            raise DeviceError(f"device '{endpoint}' answered Read {path_str(p)} in content format {got}")
        return codec.decode(got, resp.payload, p)

    async def read_value(self, endpoint: str, path: str | Path) -> Any:
        p = parse_path(path) if isinstance(path, str) else path
        content = await self.read(endpoint, p)
        if p in content:
            return content[p]
        if len(p) == 3:  # a multiple resource: its instances
            return {k[3]: v for k, v in content.items() if len(k) == 4}
        raise DeviceError(f"device '{endpoint}' returned no value for {path_str(p)}")

    async def write(self, endpoint: str, path: str | Path, value: Any | Content, *,
                    replace: bool = True, fmt: int | None = None) -> None:
        """Write one resource value, or a :data:`Content` under an instance/resource."""
        p = parse_path(path) if isinstance(path, str) else path
        if isinstance(value, dict) and value and all(isinstance(k, tuple) for k in value):
            content: Content = value
        elif isinstance(value, dict) and len(p) == 3:  # a multiple resource: {riid: value}
            content = {(*p, int(str(riid))): v for riid, v in value.items()}
        else:
            content = {p: value}
        reg = self.registry.online(endpoint)
        if fmt is None:
            single = len(content) == 1 and p in content and len(p) >= 3
            v = content.get(p)
            fmt = (codec.OPAQUE if isinstance(v, bytes) else codec.TEXT) if single \
                else self.format_for(reg)
        code = Code.PUT if replace or len(p) != 2 else Code.POST
        await self._operate(endpoint, "Write", p, aiocoap.Message(
            code=code, content_format=fmt, payload=codec.encode(fmt, content, p)))

    async def execute(self, endpoint: str, path: str | Path, args: str = "") -> None:
        p = parse_path(path) if isinstance(path, str) else path
        if len(p) != 3:
            raise codec.CodecError("Execute addresses a resource (/obj/inst/res)")
        msg = aiocoap.Message(code=Code.POST, payload=args.encode())
        if args:
            msg.opt.content_format = codec.TEXT
        await self._operate(endpoint, "Execute", p, msg)

    async def discover(self, endpoint: str, path: str | Path) -> list[Link]:
        p = parse_path(path) if isinstance(path, str) else path
        resp = await self._operate(endpoint, "Discover", p,
                                   aiocoap.Message(code=Code.GET, accept=codec.LINK_FORMAT))
        return _links(resp.payload)

    async def write_attributes(self, endpoint: str, path: str | Path, **attrs: float | None) -> None:
        """``pmin``, ``pmax``, ``gt``, ``lt``, ``st`` (None removes one)."""
        p = parse_path(path) if isinstance(path, str) else path
        query = tuple(k if v is None else f"{k}={v:g}" for k, v in attrs.items())
        msg = aiocoap.Message(code=Code.PUT)
        msg.opt.uri_query = query
        await self._operate(endpoint, "Write-Attributes", p, msg)

    async def create(self, endpoint: str, oid: int, values: dict[int, Any], iid: int | None = None) -> int:
        reg = self.registry.online(endpoint)
        fmt = self.format_for(reg)
        inst = iid if iid is not None else 0
        content: Content = {(oid, inst, rid): v for rid, v in values.items()}
        if iid is None and fmt == codec.TLV:  # TLV without an instance wrapper: the client picks
            payload = codec.encode_tlv(content, (oid, inst))
        else:
            payload = codec.encode(fmt, content, (oid,))
        resp = await self._operate(endpoint, "Create", (oid,), aiocoap.Message(
            code=Code.POST, content_format=fmt, payload=payload))
        loc = resp.opt.location_path
        return int(loc[-1]) if loc else inst

    async def delete(self, endpoint: str, path: str | Path) -> None:
        p = parse_path(path) if isinstance(path, str) else path
        await self._operate(endpoint, "Delete", p, aiocoap.Message(code=Code.DELETE))

    async def observe(self, endpoint: str, path: str | Path) -> Observation:
        p = parse_path(path) if isinstance(path, str) else path
        reg = self.registry.online(endpoint)
        obs = Observation(self, reg, p, self.format_for(reg))
        await obs._start()
        self._observations.add(obs)
        return obs

"""The LwM2M 1.1 server on aiocoap: registration interface, device management, observation.

State lives in :class:`Registry` (one :class:`Registration` per online device,
whose lifetime is a cancellable timer) and the ``/rd`` resources are thin
adapters onto it. :class:`LwM2MServer` sends the server's operations (Read,
Write, Execute, Discover, Write-Attributes, Create, Delete, Observe) in a
content format the device announced (retrying once in the next on 4.06/4.15),
does block-wise transfers itself so they start at the block size the device has
shown, holds requests for a device in queue mode until it wakes, and turns CoAP
failures into the service's errors: no answer ->
:class:`~tinymlaas.errors.DeviceUnreachable`, an error code ->
:class:`~tinymlaas.errors.DeviceError` (4.04 -> NotFound). It also serves Send
(``/dp``) and packages for devices that pull over CoAP (``/packages``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import secrets
import time
import warnings
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
from tinymlaas.edge.lwm2m.objects import ResType, resource_type
from tinymlaas.errors import DeviceError, DeviceUnreachable, NotFound, TinyMLaaSError
from tinymlaas.lwm2m.dtls import add_dtls_server, dtls_identity
from tinymlaas.lwm2m.security import CredentialStore, PskStore

log = logging.getLogger("tinymlaas.lwm2m.server")

FORMATS = {"senml-cbor": codec.SENML_CBOR, "senml-json": codec.SENML_JSON, "tlv": codec.TLV}
#: Formats that carry several values (an instance, an object), in the default preference.
MULTI_FORMATS = (codec.SENML_CBOR, codec.SENML_JSON, codec.TLV)
_SZX = {16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6}
_EP_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _tuning(settings: LwM2MSettings) -> TransportTuning:
    class Tuning(TransportTuning):
        ACK_TIMEOUT = settings.ack_timeout_s
        MAX_RETRANSMIT = settings.max_retransmit

    return Tuning()


class UnacceptableAnswer(DeviceError):
    """The device's answer failed OSCORE (not protected, replayed, undecodable): it may be a device
    whose security context was just reset, so a safe request is asked once more."""


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
    #: The lifetime's end: a timer (one object per device, not a task, see Registry._settle).
    expiry: asyncio.TimerHandle | None = None
    #: Queue mode (binding ``UQ``, or the ``Q`` parameter of LwM2M 1.1): the device sleeps
    #: between its messages and is only sent to while it is awake after one.
    queue_mode: bool = False
    #: When the device last sent something (time.monotonic()).
    heard_at: float = field(default_factory=time.monotonic)

    @property
    def address(self) -> str:
        return str(self.remote.hostinfo)

    @property
    def host(self) -> str | None:
        """The device's IP address (no port), as another protocol (HTTP) would see it."""
        # OSCORE wraps a UDP address; aiocoap's DTLS server remote keeps it private.
        remote = (getattr(self.remote, "underlying_address", None)
                  or getattr(self.remote, "_underlying_address", None) or self.remote)
        sockaddr = getattr(remote, "sockaddr", None) or getattr(remote, "address", None)
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
    def announced(self) -> list[int]:
        """The content formats the device announced on its root link (``</>;ct=110`` or
        ``ct="110 112"``), in its order."""
        out: list[int] = []
        for link in self.links:
            if link.target == "/" and link.attrs.get("ct"):
                for word in str(link.attrs["ct"]).split():
                    with contextlib.suppress(ValueError):
                        out.append(int(word))
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "registration": self.id, "online": True,
            "lifetime": self.lifetime, "lwm2m": self.lwm2m, "binding": self.binding,
            "address": self.address, "registered_at": self.registered_at,
            "updated_at": self.updated_at, "objects": self.objects, "versions": self.versions,
            "secure": self.identity is not None, "queue_mode": self.queue_mode,
        }


@dataclass
class DeviceRecord:
    """What the server remembers of a device, online or not."""

    endpoint: str
    registration: Registration | None = None
    offline_since: float | None = None
    offline_reason: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    #: Content formats the device answered 4.06/4.15 to; not offered again while it
    #: announces the same formats (remembered across its registrations).
    refused_formats: set[int] = field(default_factory=set)
    announced: list[int] = field(default_factory=list)
    #: Requests waiting for the device to wake (queue mode), resolved when it does.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def online(self) -> bool:
        return self.registration is not None

    def wake(self, error: BaseException | None = None) -> None:
        """Release the requests queued for this device (with ``error``: fail them)."""
        waiters, self.waiters = self.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(None)

    def summary(self) -> dict[str, Any]:
        if self.registration is not None:
            return {**self.registration.summary(), "queued": len(self.waiters)}
        return {**self.last, "endpoint": self.endpoint, "online": False,
                "offline_since": self.offline_since, "offline_reason": self.offline_reason}


class Registry:
    """Registrations by id and devices by endpoint name; one condition for waiters."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceRecord] = {}
        self.by_id: dict[str, Registration] = {}
        #: Registrations by the device's address (``host:port``), to know who sent a message.
        self.by_address: dict[str, Registration] = {}
        self.changed = asyncio.Condition()
        self.listeners: list[Callable[[str, Registration], None]] = []
        #: Long-lived things made (registrations, observations), and how many there were
        #: when the heap was last settled (see _settle).
        self._made = 0
        self._settled = 0
        self._settling: asyncio.Handle | None = None

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
        if rec.announced != reg.announced:  # new firmware may speak other formats
            rec.refused_formats.clear()
            rec.announced = reg.announced
        old = rec.registration
        if old is not None:
            self._drop(old)
        rec.registration, rec.offline_since, rec.offline_reason = reg, None, ""
        self.by_id[reg.id] = reg
        self.by_address[reg.address] = reg
        self._arm(reg)
        self.heard(reg)
        self._emit("registered", reg)
        self.grew()
        return old

    def grew(self) -> None:
        """One more long-lived thing (a registration, an observation): settle the heap when
        they have grown by a tenth (at least 256) since the last time."""
        self._made += 1
        if self._made >= max(self._settled * 1.1, self._settled + 256) and self._settling is None:
            self._settling = asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        """Keep the garbage collector off the registrations and observations, so it cannot
        hold up notifications.

        Each registration is some 70 objects the collector tracks (its links, address,
        timer, aiocoap's message caches); at 10,000 devices a full collection walks
        ~700,000 objects and stopped the event loop for 0.3-0.8 s, while notifications
        waited in the socket buffer (notify p50/p99 of 350 ms). When the fleet has grown
        by a tenth, what is unreachable is collected (only what arrived since the last
        time is walked) and the survivors -- registrations and observations, long-lived by
        nature -- are frozen (gc.freeze): later collections skip them. Frozen objects are still freed
        when their last reference goes; only a reference cycle among them would outlive
        its use, and a registration holds none once it is dropped (its timer is cancelled).
        """
        import gc

        self._settling = None
        self._settled = self._made
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        log.debug("settled the heap at %d registrations in %.1f ms (%d objects frozen)", self._settled,
                  (time.perf_counter() - started) * 1000, gc.get_freeze_count())

    def refresh(self, reg: Registration) -> None:
        reg.updated_at = time.time()
        self.by_address[reg.address] = reg
        self._arm(reg)
        self.heard(reg)
        self._emit("updated", reg)

    def heard(self, reg: Registration) -> None:
        """The device sent something: it is awake, and its queued requests go now."""
        reg.heard_at = time.monotonic()
        rec = self.devices.get(reg.endpoint)
        if rec is not None and rec.waiters:
            rec.wake()

    def remove(self, reg: Registration, reason: str) -> None:
        rec = self.devices.get(reg.endpoint)
        if rec is None or rec.registration is not reg:
            return
        self._drop(reg)
        rec.last = reg.summary()
        rec.registration, rec.offline_since, rec.offline_reason = None, time.time(), reason
        rec.wake(DeviceUnreachable(f"device '{reg.endpoint}' went offline ({reason}) while requests "
                                   "waited for it to wake"))
        self._emit(reason, reg)

    def _drop(self, reg: Registration) -> None:
        self.by_id.pop(reg.id, None)
        if self.by_address.get(reg.address) is reg:
            del self.by_address[reg.address]
        if reg.expiry is not None:
            reg.expiry.cancel()  # also breaks the timer <-> registration reference cycle
            reg.expiry = None

    def _arm(self, reg: Registration) -> None:
        if reg.expiry is not None:
            reg.expiry.cancel()
        reg.expiry = asyncio.get_running_loop().call_later(reg.lifetime, self._expire, reg)

    def _expire(self, reg: Registration) -> None:
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
        transport = getattr(mi, "transport", None)  # the plain UDP socket (not the DTLS one)
        sock = transport.get_extra_info("socket") if transport is not None else None
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
                           identity=identity, block_szx=self.server.default_szx,
                           queue_mode="Q" in q or "Q" in q.get("b", ""))
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
            reg.queue_mode = "Q" in q or "Q" in q["b"]
        elif "Q" in q:
            reg.queue_mode = True
        if request.payload:
            reg.links = _links(request.payload)
        if self.server.registry.by_address.get(reg.address) is reg:
            del self.server.registry.by_address[reg.address]
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


class SendResource(resource.Resource):
    """``POST /dp``: LwM2M 1.1 Send. A registered device reports values unasked (SenML);
    they go to the same listeners as its notifications, and the device is awake."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        srv = self.server
        identity = srv.identity(request)
        if identity is not None:
            reg = srv.registry.devices[identity].registration if identity in srv.registry.devices else None
        else:
            reg = srv.registry.by_address.get(str(request.remote.hostinfo))
            if srv.security:
                reg = None  # an unprotected Send is nobody's
        if reg is None:
            raise coap_error.Forbidden("Send is for registered devices, from their registration's address")
        fmt = request.opt.content_format
        if fmt not in (codec.SENML_CBOR, codec.SENML_JSON):
            raise coap_error.UnsupportedContentFormat("Send carries SenML CBOR (112) or SenML JSON (110)")
        try:
            content = codec.decode(fmt, request.payload, ())
        except codec.CodecError as exc:
            raise coap_error.BadRequest(f"bad Send payload: {exc}") from None
        srv.registry.heard(reg)
        for listener in list(srv.send_listeners.get(reg.endpoint, ())):
            listener(content)
        return aiocoap.Message(code=Code.CHANGED)


#: Where a package for a device is, on the service (``(endpoint, sha256, grant, address)`` ->
#: the file); raises Forbidden (no grant) or NotFound.
PackageSource = Callable[[str, str, "str | None", "str | None"], "pathlib.Path"]


class PackageResource(resource.Resource, resource.PathCapable):
    """``GET /packages/{endpoint}/{sha256}?grant=...``: packages for devices that pull over CoAP
    (block-wise, Block2), with the same grants as the API's HTTP download."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        path = request.opt.uri_path
        source = self.server.packages
        if len(path) != 2 or source is None:
            raise coap_error.NotFound("no such package")
        grant = _query(request).get("grant")
        remote = getattr(request.remote, "underlying_address", request.remote)
        sockaddr = getattr(remote, "sockaddr", None) or getattr(remote, "address", None)
        address = str(sockaddr[0]).removeprefix("::ffff:") if sockaddr else None
        try:
            file = source(path[0], path[1], grant, address)
            data = await asyncio.to_thread(file.read_bytes)
        except NotFound as exc:
            raise coap_error.NotFound(exc.message) from None
        except TinyMLaaSError as exc:  # Forbidden: no valid grant
            raise coap_error.Forbidden(exc.message) from None
        return aiocoap.Message(code=Code.CONTENT, content_format=codec.OPAQUE, payload=data)


class Observation:
    """A server-side observation: the latest value, a stream of changes, and cancel().

    Notifications are taken in aiocoap's callback, in the same event-loop turn that
    received them (its ``async for`` interface costs a task switch per notification,
    which at thousands of devices is where they queued up); waiters are woken by
    futures, not a lock.
    """

    def __init__(self, server: LwM2MServer, reg: Registration, path: Path, formats: list[int]) -> None:
        self.server, self.reg, self.path, self.formats = server, reg, path, formats
        #: The format the device accepted (the first of ``formats`` it did not refuse).
        self.fmt = formats[0]
        self.value: Content = {}
        self.error: BaseException | None = None
        self.notifications = 0
        #: When the latest notification arrived (time.time_ns()).
        self.received_ns = 0
        self.active = False
        self._request: Any = None
        self._waiters: list[asyncio.Future[None]] = []
        self._queues: list[asyncio.Queue[Content | None]] = []

    async def _start(self) -> None:
        srv, what = self.server, f"Observe {path_str(self.path)}"
        for attempt, fmt in enumerate(self.formats[:2]):
            self.fmt = fmt
            msg = aiocoap.Message(code=Code.GET, observe=0, accept=fmt, uri_path=[str(p) for p in self.path])
            self._request = srv._send(self.reg, msg)
            first = await srv._await(self.reg, self._request.response, what)
            if first.code != Code.NOT_ACCEPTABLE or attempt or len(self.formats) == 1:
                break
            srv._refused(self.reg, fmt, "Observe", self.path, first.code)
        srv._check(self.reg, first, "Observe", self.path)
        if first.opt.observe is None:
            self.cancel()
            raise DeviceError(f"device '{self.reg.endpoint}' does not let {path_str(self.path)} "
                              "be observed")
        self._update(first)
        self.active = True
        observation = self._request.observation
        with warnings.catch_warnings():  # aiocoap prefers `async for`; see the class docstring
            warnings.simplefilter("ignore", DeprecationWarning)
            observation.register_callback(self._notified)
            observation.register_errback(self._ended)

    def _notified(self, msg: aiocoap.Message) -> None:
        if msg is self._request.response.result():
            return  # aiocoap hands the first response to a new callback again
        if not msg.code.is_successful():
            self._ended(DeviceError(f"observation of {path_str(self.path)} ended: {msg.code}"))
            return
        try:
            self._update(msg)
        except (TinyMLaaSError, codec.CodecError) as exc:
            self._ended(exc)

    def _ended(self, exc: BaseException) -> None:
        if not self.active:
            return
        self.active, self.error = False, exc
        for q in self._queues:
            q.put_nowait(None)
        self._wake()

    def _update(self, msg: aiocoap.Message) -> None:
        value = self.server._decode(self.reg, msg, self.path, "Notify")
        if self.reg.queue_mode:  # a notification wakes a sleeping device: its queue goes now
            self.server.registry.heard(self.reg)
        self.value = {**self.value, **value} if len(self.path) >= 3 else value
        self.notifications += 1
        self.received_ns = time.time_ns()
        for q in self._queues:
            q.put_nowait(value)
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, predicate: Callable[[Content], Any], timeout: float,
                       poll_s: float = 5.0, *, expected: str = "",
                       describe: Callable[[Content], str] | None = None) -> Content:
        """Until ``predicate(value)`` holds; DeviceUnreachable if the observation ends first.

        Notifications may be non-confirmable, and a lost one must not stall an
        update: without news for ``poll_s`` seconds the path is read instead.
        A timeout says, in words, what was awaited (``expected``) and where the device
        stood (``describe(value)``; by default each value by its path).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.value) and self.active:
            left = deadline - loop.time()
            if left <= 0:
                where = (describe or _describe)(self.value)
                raise DeviceUnreachable(
                    f"device '{self.reg.endpoint}' did not {expected or 'reach the expected state'} "
                    f"within {timeout:.0f} s; it last reported {where}")
            news: asyncio.Future[None] = loop.create_future()
            self._waiters.append(news)
            try:
                await asyncio.wait_for(news, min(left, poll_s))
                continue
            except TimeoutError:
                pass
            with contextlib.suppress(TinyMLaaSError):  # the poll is a fallback; timeouts decide
                polled = await self.server.read(self.reg.endpoint, self.path, fmt=self.fmt)
                self.value = {**self.value, **polled} if len(self.path) >= 3 else polled
        if not predicate(self.value):
            raise DeviceUnreachable(f"the observation of {path_str(self.path)} on device "
                                    f"'{self.reg.endpoint}' ended before it could "
                                    f"{expected or 'reach the expected state'}: {self.error}")
        return self.value

    async def changes(self) -> AsyncIterator[Content]:
        """Each notification's values, until the observation ends."""
        q: asyncio.Queue[Content | None] = asyncio.Queue()
        self._queues.append(q)
        try:
            while self.active or not q.empty():
                change = await q.get()
                if change is None:
                    return
                yield change
        finally:
            self._queues.remove(q)

    def cancel(self) -> None:
        """Stop following; the device's next notification is answered with a reset."""
        if self._request is not None and not self._request.observation.cancelled:
            self._request.observation.cancel()
        self._ended(coap_error.LibraryShutdown("the observation was cancelled"))
        self.server._observations.discard(self)


def _describe(value: Content) -> str:
    """Values by their paths, for people: ``/5/0/3 = 1, /5/0/5 = 0``."""
    if not value:
        return "nothing"
    return ", ".join(f"{path_str(p)} = {v!r}" for p, v in sorted(value.items()))


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
        if not self.isEnabledFor(level):  # aiocoap logs at debug level for every message
            return
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

    def __init__(self, settings: LwM2MSettings,
                 credentials: CredentialStore | PskStore | None = None) -> None:
        self.settings = settings
        self.security = settings.security != "off"
        want = {"oscore": CredentialStore, "psk": PskStore}.get(settings.security)
        if want is not None and not isinstance(credentials, want):
            raise TinyMLaaSError(f"LwM2M security '{settings.security}' needs a {want.__name__}")
        self.credentials = credentials
        self.coaps_port: int | None = None
        self.registry = Registry()
        self.tuning = _tuning(settings)
        self.default_szx = _SZX[settings.block_size]
        self.preferred = FORMATS[settings.content_format]
        self.ctx: aiocoap.Context | None = None
        self.port = settings.port
        self._observations: set[Observation] = set()
        #: Packages devices may pull over CoAP (set by the orchestrator); None: not offered.
        self.packages: PackageSource | None = None
        #: Who hears a device's Send (``/dp``) reports, by endpoint.
        self.send_listeners: dict[str, list[Callable[[Content], None]]] = {}
        #: Resources beyond registration that devices call (their own requests), by path.
        self.resources: dict[tuple[str, ...], resource.Resource] = {}

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        site = resource.Site()
        site.add_resource(["rd"], RegisterResource(self))  # /rd itself
        site.add_resource(["rd"], RegistrationResource(self))  # /rd/{id}
        site.add_resource(["packages"], PackageResource(self))
        site.add_resource(["dp"], SendResource(self))
        for path, extra in self.resources.items():
            site.add_resource(list(path), extra)
        root: Any = site
        transports = ["udp6"]
        if isinstance(self.credentials, CredentialStore):
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
        if isinstance(self.credentials, PskStore):
            if self.settings.coaps_port:
                _check_port_free(self.settings.host, self.settings.coaps_port)
            self.coaps_port = await add_dtls_server(self.ctx, (self.settings.host, self.settings.coaps_port),
                                                    self.credentials.lookup)
        self.ctx.log = _LibraryLog(self.ctx.log, {})  # used by every request's pipe from here on
        _grow_receive_buffer(self.ctx, 4 << 20)
        log.info("LwM2M server on %s (security: %s)", self.uri, self.settings.security)

    async def stop(self) -> None:
        for obs in list(self._observations):
            obs.cancel()
        self.registry.cancel_all()
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None

    @property
    def uri(self) -> str:
        """Where devices register: ``coaps://`` with DTLS-PSK, ``coap://`` otherwise."""
        if self.coaps_port is not None:
            return f"coaps://{self.settings.host}:{self.coaps_port}"
        return f"coap://{self.settings.host}:{self.port}"

    @property
    def coap_uri(self) -> str:
        """The plain CoAP port (packages for devices that pull over CoAP)."""
        return f"coap://{self.settings.host}:{self.port}"

    # -- security ----------------------------------------------------------------
    def identity(self, request: aiocoap.Message) -> str | None:
        """The endpoint whose credentials protected ``request`` (None: unprotected)."""
        if isinstance(self.credentials, PskStore):
            endpoint = dtls_identity(request.remote)  # a session outlives a revoked key: check it
            return endpoint if endpoint is not None and self.credentials.has(endpoint) else None
        if isinstance(self.credentials, CredentialStore):
            from aiocoap.transports.oscore import OSCOREAddress

            if isinstance(request.remote, OSCOREAddress):
                return self.credentials.identity_of(request.remote.security_context)
        return None

    def authenticate(self, request: aiocoap.Message, endpoint: str) -> str | None:
        """The identity behind a registration; refuses unauthenticated or foreign ones."""
        if not self.security:
            return None
        identity = self.identity(request)
        if identity is None:
            raise coap_error.Unauthorized("registration needs DTLS with a pre-shared key"
                                          if self.settings.security == "psk"
                                          else "registration needs OSCORE credentials")
        if identity != endpoint:
            raise coap_error.Forbidden(f"these credentials do not belong to endpoint '{endpoint}'")
        return identity

    def same_identity(self, request: aiocoap.Message, reg: Registration) -> bool:
        return self.identity(request) == reg.identity

    # -- queries ----------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        return [rec.summary() for rec in sorted(self.registry.devices.values(),
                                                key=lambda r: r.endpoint)]

    def formats_for(self, reg: Registration) -> list[int]:
        """Formats for payloads of several values, best first.

        TLV for LwM2M 1.0 clients; for 1.1 clients the formats they announced
        (``ct`` on ``</>``), the preferred setting first if it is among them, or
        every SenML/TLV format (preferred first) when they announced none. Formats
        the device refused before are left out.
        """
        if reg.lwm2m == "1.0":
            return [codec.TLV]
        order = [self.preferred, *(f for f in MULTI_FORMATS if f != self.preferred)]
        announced = [f for f in reg.announced if f in MULTI_FORMATS]
        candidates = sorted(announced, key=order.index) if announced else order
        return self._usable(reg, candidates)

    def accepts_for(self, reg: Registration, path: Path) -> list[int]:
        """Formats to read or write ``path`` in, best first: plain text (opaque for opaque
        resources) for one single resource value, then the formats for several values."""
        multi = self.formats_for(reg)
        if not codec.single_value(path):
            return multi
        single = codec.OPAQUE if resource_type(path[:3]) is ResType.opaque else codec.TEXT
        return self._usable(reg, [single]) + multi

    def _usable(self, reg: Registration, formats: list[int]) -> list[int]:
        rec = self.registry.devices.get(reg.endpoint)
        refused = rec.refused_formats if rec is not None else set()
        return [f for f in formats if f not in refused] or formats[-1:]

    def _refused(self, reg: Registration, fmt: int, op: str, path: Path, code: Any) -> None:
        rec = self.registry.devices.get(reg.endpoint)
        # A refused multi-value format, or plain text for a known single value, says what the
        # device speaks; plain text refused for a resource we know nothing of does not.
        if rec is not None and (fmt in MULTI_FORMATS or codec.single_value(path)):
            rec.refused_formats.add(fmt)
        log.info("%s answered %s to %s %s in %s; using another format from now on", reg.endpoint,
                 code, op, path_str(path), codec.NAMES.get(fmt, fmt))

    async def negotiate(self, reg: Registration, op: str, path: Path, formats: list[int],
                        make: Callable[[int], aiocoap.Message],
                        refusal: Code) -> tuple[aiocoap.Message, int]:
        """Send ``make(format)``; when the device refuses that format (``refusal``: 4.06 for
        a read, 4.15 for a write) retry once with the next one, and remember the refusal."""
        for attempt, fmt in enumerate(formats[:2]):
            msg = make(fmt)
            msg.opt.uri_path = [str(p) for p in path]
            resp = await self.exchange(reg, msg, f"{op} {path_str(path)}")
            if resp.code == refusal and attempt == 0 and len(formats) > 1:
                self._refused(reg, fmt, op, path, resp.code)
                continue
            if resp.code == refusal:
                tried = " and ".join(codec.NAMES.get(f, str(f)) for f in formats[:attempt + 1])
                raise DeviceError(f"device '{reg.endpoint}' takes none of the content formats offered "
                                  f"for {op} {path_str(path)} ({tried}): {resp.code}",
                                  coap_code=str(resp.code))
            return self._check(reg, resp, op, path), fmt
        raise AssertionError("unreachable: formats is never empty")

    # -- queue mode ---------------------------------------------------------------
    def awake(self, reg: Registration) -> bool:
        """Whether the device listens now: always, or (queue mode) for a while after it
        last sent something."""
        return not reg.queue_mode or time.monotonic() - reg.heard_at < self.settings.queue_awake_s

    async def ready(self, endpoint: str, what: str) -> Registration:
        """The device's registration once it can be sent ``what``: at once, or -- a device in
        queue mode that sleeps -- when it next wakes (an Update, a Send, a new registration)."""
        reg = self.registry.online(endpoint)
        if self.awake(reg):
            return reg
        rec = self.registry.devices[endpoint]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec.waiters.append(fut)
        timeout = self.settings.queue_timeout_s
        log.info("%s sleeps (queue mode): %s waits until it wakes", endpoint, what)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise DeviceUnreachable(f"device '{endpoint}' sleeps (queue mode) and did not wake within "
                                    f"{timeout:.0f} s, so {what} was not sent") from None
        finally:
            if fut in rec.waiters:
                rec.waiters.remove(fut)
        return self.registry.online(endpoint)

    def queued(self, endpoint: str) -> bool:
        """Whether a request to this device would wait for it to wake."""
        rec = self.registry.devices.get(endpoint)
        return rec is not None and rec.registration is not None and not self.awake(rec.registration)

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
        except coap_error.Error as exc:  # an answer that fails OSCORE (unprotected, replayed, ...)
            raise UnacceptableAnswer(f"device '{reg.endpoint}' answered {what} with a message that could "
                                     f"not be accepted ({type(exc).__name__}: {exc})") from None

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
        reg.heard_at = time.monotonic()
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
        reg = await self.ready(endpoint, f"{op} {path_str(path)}")
        msg.opt.uri_path = [str(p) for p in path]
        resp = await self.exchange(reg, msg, f"{op} {path_str(path)}")
        return self._check(reg, resp, op, path)

    # -- device management & service enablement ---------------------------------
    async def read(self, endpoint: str, path: str | Path, *, fmt: int | None = None) -> Content:
        p = parse_path(path) if isinstance(path, str) else path
        reg = await self.ready(endpoint, f"Read {path_str(p)}")
        formats = [fmt] if fmt is not None else self.accepts_for(reg, p)
        for attempt in (1, 2):
            try:
                resp, _ = await self.negotiate(reg, "Read", p, formats,
                                               lambda f: aiocoap.Message(code=Code.GET, accept=f),
                                               Code.NOT_ACCEPTABLE)
                break
            except UnacceptableAnswer as exc:  # a read is safe to ask again, with a fresh request
                if attempt == 2:
                    raise
                log.warning("%s; reading again", exc.message)
        return self._decode(reg, resp, p, "Read")

    @staticmethod
    def _decode(reg: Registration, resp: aiocoap.Message, p: Path, op: str) -> Content:
        got = resp.opt.content_format
        if got not in (*codec.SUPPORTED, None):
            raise DeviceError(f"device '{reg.endpoint}' answered {op} {path_str(p)} in content "
                              f"format {got}")
        try:
            return codec.decode(got, resp.payload, p)  # no format: plain text (CoAP's default)
        except codec.CodecError as exc:
            raise DeviceError(f"device '{reg.endpoint}' answered {op} {path_str(p)} with a payload "
                              f"that is not {codec.NAMES.get(got or codec.TEXT)}: {exc}") from exc

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
        reg = await self.ready(endpoint, f"Write {path_str(p)}")
        if fmt is not None:
            formats = [fmt]
        elif len(content) == 1 and p in content and len(p) >= 3:
            single = codec.OPAQUE if isinstance(content[p], bytes) else codec.TEXT
            formats = self._usable(reg, [single]) + self.formats_for(reg)
        else:
            formats = self.formats_for(reg)
        code = Code.PUT if replace or len(p) != 2 else Code.POST
        await self.negotiate(reg, "Write", p, formats, lambda f: aiocoap.Message(
            code=code, content_format=f, payload=codec.encode(f, content, p)),
            Code.UNSUPPORTED_CONTENT_FORMAT)

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
        reg = await self.ready(endpoint, f"Create /{oid}")
        inst = iid if iid is not None else 0
        content: Content = {(oid, inst, rid): v for rid, v in values.items()}

        def make(fmt: int) -> aiocoap.Message:
            if iid is None and fmt == codec.TLV:  # TLV without an instance wrapper: the client picks
                payload = codec.encode_tlv(content, (oid, inst))
            else:
                payload = codec.encode(fmt, content, (oid,))
            return aiocoap.Message(code=Code.POST, content_format=fmt, payload=payload)

        resp, _ = await self.negotiate(reg, "Create", (oid,), self.formats_for(reg), make,
                                       Code.UNSUPPORTED_CONTENT_FORMAT)
        loc = resp.opt.location_path
        return int(loc[-1]) if loc else inst

    async def delete(self, endpoint: str, path: str | Path) -> None:
        p = parse_path(path) if isinstance(path, str) else path
        await self._operate(endpoint, "Delete", p, aiocoap.Message(code=Code.DELETE))

    async def observe(self, endpoint: str, path: str | Path) -> Observation:
        p = parse_path(path) if isinstance(path, str) else path
        reg = await self.ready(endpoint, f"Observe {path_str(p)}")
        obs = Observation(self, reg, p, self.accepts_for(reg, p))
        await obs._start()
        self._observations.add(obs)
        self.registry.grew()
        return obs

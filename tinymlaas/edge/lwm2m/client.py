"""An LwM2M 1.1 client on aiocoap: registration, device management, observation.

Devices (the x86 firmware, the MCU bridge) build a :class:`LwM2MClient` from
:class:`Instance` objects. The client registers with the server (``POST /rd``),
keeps the registration alive with Updates, answers the server's Read, Write,
Execute, Discover, Write-Attributes, Create and Delete, and sends notifications
for observed paths, honouring ``pmin``/``pmax``/``gt``/``lt``/``st``. It announces
the content formats it takes, reports values unasked (Send, ``/dp``), may sleep
between its messages (queue mode), and is secured by OSCORE or DTLS-PSK.

Runs on devices: standard library, aiocoap (+ cbor2, and the OSCORE or tinydtls
extra when security is on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap import interfaces
from aiocoap.blockwise import Block1Spool, Block2Cache
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning
from aiocoap.optiontypes import BlockOption

from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.codec import Content, Path
from tinymlaas.edge.lwm2m.links import Link, format_links
from tinymlaas.edge.lwm2m.objects import ObjectDef, ResourceDef, object_def

log = logging.getLogger("tinymlaas.edge.lwm2m.client")

LWM2M_VERSION = "1.1"
NUMERIC_ATTRS = ("pmin", "pmax", "gt", "lt", "st", "epmin", "epmax")


class Instance:
    """One object instance on the client.

    ``values`` holds resource values (a dict ``riid -> value`` for multiple
    resources). Device code changes values with :meth:`set`, which notifies
    observers; subclasses override :meth:`on_write` and :meth:`execute` for
    resources that *do* something.
    """

    def __init__(self, oid: int, iid: int = 0, values: dict[int, Any] | None = None,
                 definition: ObjectDef | None = None) -> None:
        self.oid, self.iid = int(oid), iid  # plain ints: ids may come as vocab enums
        self.definition = definition or object_def(oid)
        self.values: dict[int, Any] = {int(k): v for k, v in (values or {}).items()}
        self._changed: Callable[[Path], None] = lambda path: None
        #: The client serving this instance (set when it is added), for requests of the device's own.
        self.client: LwM2MClient | None = None

    # -- what the server sees -------------------------------------------------
    def resource_def(self, rid: int) -> ResourceDef | None:
        return self.definition.resource(rid) if self.definition else None

    def executable_rids(self) -> list[int]:
        if not self.definition:
            return []
        return [r.id for r in self.definition.resources.values() if r.executable]

    def content(self, rid: int | None = None, riid: int | None = None) -> Content:
        """Readable values under this instance (or one resource / resource instance)."""
        rids = [rid] if rid is not None else sorted(self.values)
        out: Content = {}
        for r in rids:
            rdef = self.resource_def(r)
            if rdef is not None and not rdef.readable:
                if rid is not None:
                    raise coap_error.MethodNotAllowed(f"resource /{self.oid}/{self.iid}/{r} is not readable")
                continue
            if r not in self.values:
                raise coap_error.NotFound(f"no resource /{self.oid}/{self.iid}/{r}")
            value = self.read(r)
            if isinstance(value, dict):
                if riid is not None:
                    if riid not in value:
                        raise coap_error.NotFound(f"no resource instance /{self.oid}/{self.iid}/{r}/{riid}")
                    out[(self.oid, self.iid, r, riid)] = value[riid]
                else:
                    out.update({(self.oid, self.iid, r, i): v for i, v in sorted(value.items())})
            elif riid is not None:
                raise coap_error.NotFound(f"/{self.oid}/{self.iid}/{r} is a single resource")
            else:
                out[(self.oid, self.iid, r)] = value
        return out

    def read(self, rid: int) -> Any:
        return self.values[rid]

    def write(self, rid: int, value: Any, riid: int | None = None, *, replace: bool = True) -> None:
        """A server Write: checked against the definition, then :meth:`on_write`."""
        rdef = self.resource_def(rid)
        if rdef is not None and not rdef.writable:
            raise coap_error.MethodNotAllowed(f"resource /{self.oid}/{self.iid}/{rid} is not writable")
        if rdef is None and self.definition is not None:
            raise coap_error.NotFound(f"object {self.oid} has no resource {rid}")
        if riid is not None:
            current = self.values.get(rid, {}) if not replace else {}
            value = {**(current if isinstance(current, dict) else {}), riid: value}
        self.on_write(rid, value)

    def on_write(self, rid: int, value: Any) -> None:
        self.set(rid, value)

    async def execute(self, rid: int, args: str) -> None:
        raise coap_error.MethodNotAllowed(f"resource /{self.oid}/{self.iid}/{rid} is not executable")

    # -- what the device does ---------------------------------------------------
    def set(self, rid: int, value: Any) -> None:
        """Change a value from the device side; observers hear about it."""
        rid = int(rid)
        if self.values.get(rid, object()) != value or isinstance(value, dict):
            self.values[rid] = value
            self._changed((self.oid, self.iid, rid))

    def links(self) -> list[Link]:
        out = [Link(f"/{self.oid}/{self.iid}")]
        for rid in sorted(self.values):
            attrs: dict[str, str | None] = {}
            if isinstance(self.values[rid], dict):
                attrs["dim"] = str(len(self.values[rid]))
            out.append(Link(f"/{self.oid}/{self.iid}/{rid}", attrs))
        for rid in self.executable_rids():
            if rid not in self.values:
                out.append(Link(f"/{self.oid}/{self.iid}/{rid}"))
        return out


class ServerObject(Instance):
    """Object 1 for the one server: lifetime and notification defaults, Update trigger."""

    client: LwM2MClient

    def __init__(self, client: LwM2MClient, short_id: int = 1) -> None:
        super().__init__(1, 0, {0: short_id, 1: client.lifetime, 2: 0, 3: 0, 6: False,
                                7: client.binding})
        self.client = client

    def on_write(self, rid: int, value: Any) -> None:
        if rid == 1:
            if not isinstance(value, int) or value <= 0:
                raise coap_error.BadRequest("lifetime must be a positive integer")
            self.client.lifetime = value
            self.client.trigger_update()
        self.set(rid, value)

    async def execute(self, rid: int, args: str) -> None:
        if rid != 8:
            await super().execute(rid, args)
        self.client.trigger_update()


@dataclass(eq=False)
class _Observation:
    path: Path
    fmt: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_number: float | None = None


class ClientSite(interfaces.Resource):
    """The client's CoAP root: routes LwM2M paths to instances and runs observations."""

    def __init__(self, client: LwM2MClient) -> None:
        self.client = client
        self._block1 = Block1Spool()
        self._block2 = Block2Cache()
        self.observations: set[_Observation] = set()

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return True

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return await self.client.handle(request)

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        self.client.check_authenticated(request)
        if request.code == Code.GET and request.opt.observe == 0:
            await self._observe(pipe)
            return
        req = self._block1.feed_and_take(request)
        response = await self._block2.extract_or_insert(req, lambda: self.render(req))
        response.opt.block1 = req.opt.block1
        pipe.add_response(response, is_last=True)

    async def _observe(self, pipe: Any) -> None:
        request = pipe.request
        path = _request_path(request)
        first = await self.client.handle(request)
        if not first.code.is_successful():
            pipe.add_response(first, is_last=True)
            return
        obs = _Observation(path, first.opt.content_format)
        self.observations.add(obs)
        # Any first sequence number is valid (RFC 7641); node-coap's servers (lwm2m-node-lib's)
        # drop a first response whose Observe is 0 and never see the observation start.
        number = 1
        try:
            first.opt.observe = number
            pipe.add_response(first, is_last=False)
            sent_at = time.monotonic()
            last = self.client.content(path)
            while True:
                attrs = self.client.effective_attributes(path)
                pmin, pmax = attrs.get("pmin", 0.0), attrs.get("pmax", 0.0)
                timeout = max(pmax - (time.monotonic() - sent_at), 0) if pmax else None
                try:
                    await asyncio.wait_for(obs.changed.wait(), timeout)
                    periodic = False
                except TimeoutError:
                    periodic = True
                obs.changed.clear()
                wait = pmin - (time.monotonic() - sent_at)
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    now = self.client.content(path)
                except coap_error.NotFound as exc:
                    pipe.add_response(aiocoap.Message(code=Code.NOT_FOUND, payload=str(exc).encode()),
                                      is_last=True)
                    return
                if not periodic and not _worth_notifying(last, now, attrs):
                    continue
                number += 1
                msg = aiocoap.Message(code=Code.CONTENT, content_format=obs.fmt, observe=number,
                                      payload=codec.encode(obs.fmt, now, path))
                self.client.woke()  # queue mode: a notification wakes the device
                pipe.add_response(msg, is_last=False)
                sent_at, last = time.monotonic(), now
        finally:
            self.observations.discard(obs)

    def changed(self, path: Path) -> None:
        for obs in self.observations:
            if codec.under(path, obs.path) or codec.under(obs.path, path):
                obs.changed.set()


def _worth_notifying(old: Content, new: Content, attrs: dict[str, float]) -> bool:
    """Change, gated by gt/lt/st for numeric resources (LwM2M 1.1 notification attributes)."""
    if old == new:
        return False
    if len(new) == 1 and len(old) == 1:
        (before,), (after,) = old.values(), new.values()
        if isinstance(after, int | float) and isinstance(before, int | float) \
                and not isinstance(after, bool):
            gates = [k for k in ("gt", "lt", "st") if k in attrs]
            if not gates:
                return True
            for k in gates:
                if k == "st" and abs(after - before) >= attrs["st"]:
                    return True
                if k in ("gt", "lt") and (before > attrs[k]) != (after > attrs[k]):
                    return True
            return False
    return True


def _request_path(request: aiocoap.Message) -> Path:
    try:
        return codec.parse_path(request.opt.uri_path)
    except codec.CodecError as exc:
        raise coap_error.NotFound(str(exc)) from exc


def bound_port(ctx: aiocoap.Context) -> int:
    """The UDP port an aiocoap context's socket got (it may have been asked for 0)."""
    for ri in ctx.request_interfaces:
        mi = getattr(getattr(ri, "token_interface", None), "message_interface", None)
        transport = getattr(mi, "transport", None)  # udp6 (a DTLS interface has its own sockets)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            return int(sock.getsockname()[1])
    raise RuntimeError("the CoAP context has no UDP socket")


async def _response(request: Any) -> aiocoap.Message:
    """Await a response without cancelling aiocoap's future when *we* are cancelled
    (aiocoap would later fail setting a result on it)."""
    fut = request.response
    fut.add_done_callback(_retrieve)
    return await asyncio.shield(fut)


def _block_szx_asked(response: aiocoap.Message) -> int | None:
    """The block size exponent a server asks for: its Block1, else the largest block that
    fits its Size1 (None when it says neither)."""
    if response.opt.block1 is not None:
        return int(min(response.opt.block1.size_exponent, 6))
    size1 = response.opt.size1
    if size1 is not None and size1 >= 16:
        return min(max(int(size1).bit_length() - 5, 0), 6)
    return None


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a shielded future's late exception as seen (no "never retrieved" noise)."""
    if not fut.cancelled():
        fut.exception()


def load_psk(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """A device's DTLS pre-shared key file (``{"identity": ..., "key_hex": ...}``, as the
    service provisions it) as (identity, key)."""
    with open(path) as fh:
        material = json.load(fh)
    return str(material["identity"]).encode(), bytes.fromhex(material["key_hex"])


def client_security(oscore: str | os.PathLike[str] | None,
                    psk: str | os.PathLike[str] | None) -> dict[str, Any]:
    """:class:`LwM2MClient` keyword arguments for the device agents' ``--oscore DIR`` or
    ``--psk FILE`` (nothing: plain CoAP)."""
    if oscore is not None and psk is not None:
        raise ValueError("--oscore and --psk are two ways to secure LwM2M: choose one")
    if psk is not None:
        return {"psk": load_psk(psk)}
    if oscore is not None:
        from aiocoap.oscore import FilesystemSecurityContext

        return {"security": FilesystemSecurityContext(str(oscore))}
    return {}


class RegistrationError(RuntimeError):
    """The server refused the registration (the message names the CoAP code)."""


class LwM2MClient:
    """One LwM2M client talking to one server (``coap://host:port``)."""

    def __init__(
        self,
        endpoint: str,
        server: str,
        instances: Iterable[Instance],
        *,
        lifetime: int = 300,
        binding: str = "U",
        security: Any = None,
        psk: tuple[bytes, bytes] | None = None,
        bind: tuple[str, int] = ("127.0.0.1", 0),
        tuning: TransportTuning | None = None,
        retry_max_s: float = 30.0,
        content_formats: tuple[int, ...] = (codec.SENML_CBOR, codec.SENML_JSON, codec.TLV),
        queue_mode: bool = False,
        awake_s: float = 93.0,
    ) -> None:
        self.endpoint = endpoint
        #: The formats for several values this client announces and takes, preferred first
        #: (plain text and opaque for single values are always taken).
        self.content_formats = content_formats
        self.server = server.rstrip("/")
        self.lifetime = lifetime
        self.binding = binding
        self.security = security
        #: DTLS pre-shared key (identity, key); the server URI is then ``coaps://``.
        self.psk = psk
        self._session: Any = None  # the DTLS session, held so it outlives each exchange
        #: Queue mode (LwM2M 1.1 ``Q``): the radio is off except for ``awake_s`` after the
        #: device sent something; the server keeps its requests until then.
        self.queue_mode = queue_mode
        self.awake_s = awake_s
        self._sent_at = time.monotonic()
        self.bind = bind
        self.tuning = tuning or TransportTuning()
        self.retry_max_s = retry_max_s
        #: Block size exponent for requests with large payloads (the object list); lowered
        #: when the server asks for smaller blocks.
        self.block_szx = 6
        self.site = ClientSite(self)
        self.instances: dict[tuple[int, int], Instance] = {}
        self.attributes: dict[Path, dict[str, float]] = {}
        self.location: tuple[str, ...] | None = None
        self.registered = asyncio.Event()
        self.last_error: str | None = None
        self.registrations = 0
        self.ctx: aiocoap.Context | None = None
        self.port = 0
        self._task: asyncio.Task[None] | None = None
        self._update_now = asyncio.Event()
        self._objects_changed = False
        #: Object id -> instance factory, for objects the server may Create instances of.
        self.factories: dict[int, Callable[[int], Instance]] = {}
        self.add(ServerObject(self))
        for inst in instances:
            self.add(inst)

    # -- the object tree ----------------------------------------------------------
    def add(self, inst: Instance) -> None:
        inst._changed = self.site.changed
        inst.client = self
        self.instances[(inst.oid, inst.iid)] = inst
        self._objects_changed = True
        self._update_now.set()

    def remove(self, oid: int, iid: int) -> None:
        if self.instances.pop((oid, iid), None) is None:
            raise coap_error.NotFound(f"no instance /{oid}/{iid}")
        self.site.changed((oid, iid))
        self._objects_changed = True
        self._update_now.set()

    def instance(self, oid: int, iid: int = 0) -> Instance:
        try:
            return self.instances[(oid, iid)]
        except KeyError:
            raise coap_error.NotFound(f"no instance /{oid}/{iid}") from None

    def object_links(self) -> list[Link]:
        out = [Link("/", {"rt": "oma.lwm2m", "ct": " ".join(str(f) for f in self.content_formats)})]
        by_obj: dict[int, list[int]] = {}
        for oid, iid in sorted(self.instances):
            by_obj.setdefault(oid, []).append(iid)
        for oid, iids in by_obj.items():
            d = object_def(oid)
            if d is not None and d.version not in ("", "1.0"):
                out.append(Link(f"/{oid}", {"ver": d.version}))
            out.extend(Link(f"/{oid}/{iid}") for iid in iids)
        return out

    def content(self, path: Path) -> Content:
        if len(path) == 0:
            raise coap_error.MethodNotAllowed("the root cannot be read")
        if len(path) == 1:
            insts = [i for (o, _), i in sorted(self.instances.items()) if o == path[0]]
            if not insts:
                raise coap_error.NotFound(f"no object /{path[0]}")
            out: Content = {}
            for inst in insts:
                out.update(inst.content())
            return out
        inst = self.instance(path[0], path[1])
        return inst.content(*path[2:4]) if len(path) > 2 else inst.content()

    def effective_attributes(self, path: Path) -> dict[str, float]:
        srv = self.instances.get((1, 0))
        attrs: dict[str, float] = {}
        if srv is not None:
            attrs.update({k: float(srv.values.get(r, 0)) for k, r in (("pmin", 2), ("pmax", 3))
                          if srv.values.get(r)})
        for n in range(1, len(path) + 1):
            attrs.update(self.attributes.get(path[:n], {}))
        return attrs

    # -- security --------------------------------------------------------------
    def check_authenticated(self, request: aiocoap.Message) -> None:
        """With OSCORE or DTLS on, only the server's protected requests are served."""
        if self.psk is not None:
            if request.remote is not self._session:
                raise coap_error.Unauthorized("this device only answers its server over DTLS")
            return
        if self.security is None:
            return
        from aiocoap.transports.oscore import OSCOREAddress

        if not isinstance(request.remote, OSCOREAddress) or \
                request.remote.security_context is not self.security:
            raise coap_error.Unauthorized("this device only answers its server over OSCORE")

    # -- requests from the server ------------------------------------------------
    async def handle(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return await self._handle(request)
        except codec.CodecError as exc:
            return aiocoap.Message(code=Code.BAD_REQUEST, payload=str(exc).encode())

    async def _handle(self, request: aiocoap.Message) -> aiocoap.Message:
        path = _request_path(request)
        code = request.code
        if code == Code.GET:
            if request.opt.accept == codec.LINK_FORMAT:
                return self._discover(path)
            return self._read(path, request.opt.accept)
        if code == Code.PUT:
            if not request.payload and request.opt.uri_query:
                return self._write_attributes(path, request.opt.uri_query)
            return self._write(path, request, replace=True)
        if code == Code.POST:
            if len(path) == 1:
                return self._create(path, request)
            if len(path) == 2:
                return self._write(path, request, replace=False)
            if len(path) == 3:
                return await self._execute(path, request)
            raise coap_error.MethodNotAllowed("POST is Create, Write (update) or Execute")
        if code == Code.DELETE:
            if len(path) != 2 or path[0] in (0, 1, 3):
                raise coap_error.MethodNotAllowed("only object instances can be deleted")
            self.remove(*path)
            return aiocoap.Message(code=Code.DELETED)
        raise coap_error.MethodNotAllowed(f"{code} is not an LwM2M operation here")

    def _read(self, path: Path, accept: int | None) -> aiocoap.Message:
        content = self.content(path)
        if accept is None:
            single = len(path) >= 3 and len(content) == 1 and len(next(iter(content))) == len(path)
            value = next(iter(content.values())) if single else None
            accept = (codec.OPAQUE if isinstance(value, bytes) else codec.TEXT) if single \
                else self.content_formats[0]
        if accept not in self.formats:
            raise coap_error.NotAcceptable(f"content format {accept} is not supported")
        try:
            payload = codec.encode(accept, content, path)
        except codec.CodecError as exc:
            raise coap_error.NotAcceptable(str(exc)) from exc
        return aiocoap.Message(code=Code.CONTENT, content_format=accept, payload=payload)

    def _discover(self, path: Path) -> aiocoap.Message:
        if len(path) == 0 or len(path) > 3:
            raise coap_error.MethodNotAllowed("Discover works on objects, instances and resources")
        links: list[Link] = []
        if len(path) == 1:
            d = object_def(path[0])
            if not any(o == path[0] for o, _ in self.instances):
                raise coap_error.NotFound(f"no object /{path[0]}")
            links.append(Link(f"/{path[0]}", {"ver": d.version} if d and d.version != "1.0" else {}))
        for (oid, iid), inst in sorted(self.instances.items()):
            if oid != path[0] or (len(path) > 1 and iid != path[1]):
                continue
            for link in inst.links():
                p = codec.parse_path(link.target)
                if len(path) == 3 and p[2:3] != path[2:3]:
                    continue
                attrs = dict(link.attrs)
                for k, v in self.attributes.get(p, {}).items():
                    attrs[k] = f"{v:g}"
                links.append(Link(link.target, attrs))
        if len(path) > 1 and not links:
            raise coap_error.NotFound(f"nothing at {codec.path_str(path)}")
        return aiocoap.Message(code=Code.CONTENT, content_format=codec.LINK_FORMAT,
                               payload=format_links(links).encode())

    def _write_attributes(self, path: Path, query: tuple[str, ...]) -> aiocoap.Message:
        if len(path) == 0:
            raise coap_error.MethodNotAllowed("attributes attach to objects, instances or resources")
        if len(path) >= 2:
            self.instance(path[0], path[1])
        attrs = dict(self.attributes.get(path, {}))
        for q in query:
            key, sep, value = q.partition("=")
            if key not in NUMERIC_ATTRS:
                raise coap_error.BadRequest(f"unknown attribute '{key}'")
            if not sep:  # "?pmin" without a value removes it
                attrs.pop(key, None)
                continue
            try:
                attrs[key] = float(value)
            except ValueError:
                raise coap_error.BadRequest(f"attribute {key}={value} is not a number") from None
        if attrs.get("pmax") and attrs.get("pmin", 0) > attrs["pmax"]:
            raise coap_error.BadRequest("pmin must not exceed pmax")
        if "lt" in attrs and "gt" in attrs and attrs["lt"] >= attrs["gt"]:
            raise coap_error.BadRequest("lt must be below gt")
        self.attributes[path] = attrs
        self.site.changed(path)
        return aiocoap.Message(code=Code.CHANGED)

    @property
    def formats(self) -> tuple[int, ...]:
        """Every content format this client reads and writes values in."""
        return (*self.content_formats, codec.TEXT, codec.OPAQUE)

    def _decode(self, path: Path, request: aiocoap.Message) -> Content:
        fmt = request.opt.content_format
        if fmt is not None and fmt not in self.formats:
            raise coap_error.UnsupportedContentFormat(f"content format {fmt} is not supported")
        return codec.decode(fmt, request.payload, path)

    def _write(self, path: Path, request: aiocoap.Message, *, replace: bool) -> aiocoap.Message:
        if len(path) < 2:
            raise coap_error.MethodNotAllowed("Write addresses an instance or a resource")
        inst = self.instance(path[0], path[1])
        content = self._decode(path, request)
        if not content and len(path) >= 3 and request.opt.content_format in (codec.TEXT, None):
            content = {path: ""}
        if replace and len(path) == 2:
            # Replace: every writable resource must be given (or it keeps no value).
            missing = [r.id for r in (inst.definition.resources.values() if inst.definition else [])
                       if r.writable and r.mandatory and not any(p[2] == r.id for p in content)]
            if missing:
                raise coap_error.BadRequest(f"Replace of {codec.path_str(path)} lacks {missing}")
        multi: dict[int, dict[int, Any]] = {}
        for p, value in content.items():
            if p[:2] != path[:2] or (len(path) >= 3 and p[2] != path[2]):
                raise coap_error.BadRequest(f"{codec.path_str(p)} is not under {codec.path_str(path)}")
            if len(p) == 4:
                multi.setdefault(p[2], {})[p[3]] = value
            else:
                inst.write(p[2], value)
        for rid, values in multi.items():
            if len(path) == 4:
                inst.write(rid, values[path[3]], path[3], replace=False)
            else:
                current = inst.values.get(rid, {}) if not replace else {}
                inst.write(rid, {**(current if isinstance(current, dict) else {}), **values})
        return aiocoap.Message(code=Code.CHANGED)

    async def _execute(self, path: Path, request: aiocoap.Message) -> aiocoap.Message:
        inst = self.instance(path[0], path[1])
        rdef = inst.resource_def(path[2])
        if rdef is None or not rdef.executable:
            raise coap_error.MethodNotAllowed(f"{codec.path_str(path)} is not executable")
        try:
            args = request.payload.decode("ascii")
        except UnicodeDecodeError:
            raise coap_error.BadRequest("Execute arguments are ASCII") from None
        await inst.execute(path[2], args)
        return aiocoap.Message(code=Code.CHANGED)

    def _create(self, path: Path, request: aiocoap.Message) -> aiocoap.Message:
        d = object_def(path[0])
        if d is None or not d.multiple:
            raise coap_error.MethodNotAllowed(f"object {path[0]} does not take new instances")
        content = self._decode(path, request)
        iids = {p[1] for p in content}
        if len(iids) > 1:
            raise coap_error.BadRequest("Create makes one instance at a time")
        iid = iids.pop() if iids else next(i for i in range(65535)
                                           if (path[0], i) not in self.instances)
        if (path[0], iid) in self.instances:
            raise coap_error.BadRequest(f"instance /{path[0]}/{iid} exists")
        factory = self.factories.get(path[0])
        if factory is None:
            raise coap_error.MethodNotAllowed(f"this device cannot create instances of object {path[0]}")
        inst = factory(iid)
        for p, value in content.items():
            inst.write(p[2], value) if len(p) == 3 else inst.write(p[2], value, p[3], replace=False)
        self.add(inst)
        return aiocoap.Message(code=Code.CREATED, location_path=(str(path[0]), str(iid)))

    # -- registration -------------------------------------------------------------
    async def start(self) -> None:
        """Bind the socket and start registering (returns at once; see ``registered``)."""
        site: Any = self.site
        transports = ["udp6"]
        if self.security is not None:
            from aiocoap.credentials import CredentialsMap
            from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

            creds = CredentialsMap()
            creds[":server"] = self.security
            site = OscoreSiteWrapper(self.site, creds)
            transports = ["oscore", "udp6"]
        if self.psk is not None:
            if not self.server.startswith("coaps://"):
                raise ValueError(f"DTLS needs a coaps:// server URI, not {self.server}")
            transports = ["tinydtls", "udp6"]  # the server's requests come over the same session
        self.ctx = await aiocoap.Context.create_server_context(site, bind=self.bind, transports=transports)
        if self.security is not None:
            self.ctx.client_credentials[f"{self.server}/*"] = self.security
        if self.psk is not None:
            identity, key = self.psk
            self.ctx.client_credentials.load_from_dict(
                {f"{self.server}/*": {"dtls": {"psk": key, "client-identity": identity}}})
        self.port = bound_port(self.ctx)
        if self.queue_mode:
            self._receive_only_when_awake()
        self._task = asyncio.create_task(self._run(), name=f"lwm2m-client-{self.endpoint}")

    def _receive_only_when_awake(self) -> None:
        """Queue mode: the radio receives nothing while the device sleeps (what the server
        sends then is lost, as on a real sleeping device); sending wakes it."""
        assert self.ctx is not None
        for ri in self.ctx.request_interfaces:
            mi = getattr(getattr(ri, "token_interface", None), "message_interface", None)
            receive = getattr(mi, "datagram_msg_received", None)  # aiocoap's udp6 socket
            if mi is None or receive is None:
                continue

            def gated(*args: Any, receive: Callable[..., None] = receive) -> None:
                if not self.asleep:
                    receive(*args)

            mi.datagram_msg_received = gated

    @property
    def asleep(self) -> bool:
        """Queue mode: ``awake_s`` after the device last sent something, it sleeps."""
        return self.queue_mode and time.monotonic() - self._sent_at >= self.awake_s

    def woke(self) -> None:
        """The device sends something (a request, a notification): it is awake from now."""
        self._sent_at = time.monotonic()

    async def stop(self, *, deregister: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if deregister and self.location is not None and self.ctx is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._request(aiocoap.Message(code=Code.DELETE),
                                                     self.location), 5)
            self.location = None
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None

    async def send(self, paths: Iterable[Path]) -> None:
        """LwM2M Send (``POST /dp``): report these values unasked (a sleeping device wakes
        for it, and the server sends what it queued meanwhile)."""
        content: Content = {}
        for path in paths:
            content.update(self.content(path))
        fmt = next((f for f in self.content_formats if f in (codec.SENML_CBOR, codec.SENML_JSON)),
                   codec.SENML_CBOR)
        msg = aiocoap.Message(code=Code.POST, content_format=fmt, payload=codec.encode(fmt, content, ()))
        response = await self._request(msg, ("dp",))
        if not response.code.is_successful():
            raise RegistrationError(f"Send refused: {response.code} "
                                    f"{response.payload.decode(errors='replace')}".strip())

    def trigger_update(self) -> None:
        self._update_now.set()

    async def _request(self, msg: aiocoap.Message, path: tuple[str, ...]) -> aiocoap.Message:
        msg.set_request_uri(self.server + "/" + "/".join(path))
        msg.transport_tuning = self.tuning
        return await self._send(msg)

    async def _send(self, msg: aiocoap.Message) -> aiocoap.Message:
        """One request; a payload larger than the server takes goes block-wise (Block1).

        A server may answer 4.13 (Request Entity Too Large) with the block size it
        wants (Block1) or the largest body it takes (Size1); the request is then sent
        again in blocks of that size (RFC 7959 2.9.3), which aiocoap leaves undone.
        """
        if len(msg.payload) > 1 << (self.block_szx + 4):
            return await self._send_blocks(msg)
        response = await self._exchange(msg)
        if response.code != Code.REQUEST_ENTITY_TOO_LARGE:
            return response
        szx = _block_szx_asked(response)
        if szx is None:
            return response  # no block size to try: the refusal stands
        self.block_szx = min(szx, self.block_szx)
        log.info("%s: the server takes blocks of %d bytes; sending again block-wise", self.endpoint,
                 1 << (self.block_szx + 4))
        return await self._send_blocks(msg)

    async def _exchange(self, msg: aiocoap.Message) -> aiocoap.Message:
        assert self.ctx is not None
        self.woke()
        try:
            response = await _response(self.ctx.request(msg, handle_blockwise=False))
        finally:
            self.woke()  # it listened for the answer
        if self.psk is not None:  # aiocoap drops a DTLS session nobody refers to
            self._session = response.remote
        return response

    async def _send_blocks(self, msg: aiocoap.Message) -> aiocoap.Message:
        payload, offset = msg.payload, 0
        while True:
            size = 1 << (self.block_szx + 4)
            more = offset + size < len(payload)
            part = msg.copy(payload=payload[offset:offset + size], mid=None, token=b"",
                            block1=BlockOption.BlockwiseTuple(offset // size, more, self.block_szx))
            if offset == 0:
                part.opt.size1 = len(payload)
            response = await self._exchange(part)
            asked = _block_szx_asked(response)
            if response.code == Code.REQUEST_ENTITY_TOO_LARGE and asked is not None \
                    and asked < self.block_szx and offset == 0:
                self.block_szx = asked  # smaller still: start over at that size
                continue
            if not more or response.code != Code.CONTINUE:
                return response
            if asked is not None and asked < self.block_szx:  # RFC 7959 2.3: smaller from here on
                self.block_szx = asked
            offset += size

    async def post_to_server(self, path: tuple[str, ...], payload: bytes, *, content_format: int,
                             query: tuple[str, ...] = ()) -> aiocoap.Message:
        """A request of the device's own to the server (beyond registration), protected as the
        registration is when OSCORE is on."""
        assert self.ctx is not None
        msg = aiocoap.Message(code=Code.POST, payload=payload, content_format=content_format)
        msg.set_request_uri(f"{self.server}/{'/'.join(path)}" + (f"?{'&'.join(query)}" if query else ""))
        msg.transport_tuning = self.tuning
        return await _response(self.ctx.request(msg))

    async def register(self) -> None:
        msg = aiocoap.Message(code=Code.POST, content_format=codec.LINK_FORMAT,
                              payload=format_links(self.object_links()).encode())
        msg.set_request_uri(self.server + "/rd")
        queue = ("Q",) if self.queue_mode else ()  # LwM2M 1.1: queue mode is its own parameter
        msg.opt.uri_query = (f"ep={self.endpoint}", f"lt={self.lifetime}",
                             f"lwm2m={LWM2M_VERSION}", f"b={self.binding}", *queue)
        msg.transport_tuning = self.tuning
        response = await self._send(msg)
        if response.code != Code.CREATED or not response.opt.location_path:
            self.registered.clear()
            raise RegistrationError(f"registration refused: {response.code} "
                                    f"{response.payload.decode(errors='replace')}".strip())
        self.location = tuple(response.opt.location_path)
        self._objects_changed = False
        self.registrations += 1
        self.last_error = None
        self.registered.set()
        log.info("%s registered at /%s", self.endpoint, "/".join(self.location))

    async def update(self) -> bool:
        """Registration Update; False when the server forgot us (4.04: register again)."""
        assert self.location is not None
        msg = aiocoap.Message(code=Code.POST)
        msg.opt.uri_query = (f"lt={self.lifetime}", f"b={self.binding}")
        if self._objects_changed:
            msg.opt.content_format = codec.LINK_FORMAT
            msg.payload = format_links(self.object_links()).encode()
        response = await self._request(msg, self.location)
        if response.code == Code.CHANGED:
            self._objects_changed = False
            return True
        if response.code.class_ == 4:
            self.registered.clear()
            self.location = None
            return False
        raise RegistrationError(f"registration update failed: {response.code}")

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                if self.location is None:
                    await self.register()
                    delay = 1.0
                self._update_now.clear()
                # Update well before the lifetime ends, leaving room for retransmissions.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._update_now.wait(), max(self.lifetime * 0.5, 0.5))
                if self.location is not None:
                    await self.update()
            except Exception as exc:  # the registration loop must outlive any failure
                plain = getattr(exc, "plain_message", None)  # an unprotected answer to OSCORE
                self.last_error = (f"the server refused our OSCORE request: {plain.code} "
                                   f"{plain.payload.decode(errors='replace')}" if plain is not None
                                   else str(exc) or type(exc).__name__)
                if not isinstance(exc, coap_error.Error | RegistrationError | OSError):
                    log.exception("unexpected failure in the registration loop")
                # Jitter, so a fleet that lost its server does not come back in lockstep.
                wait = delay * random.uniform(0.5, 1.0)
                log.warning("%s: %s; retrying in %.1f s", self.endpoint, self.last_error, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.retry_max_s)

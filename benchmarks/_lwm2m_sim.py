"""Light simulated LwM2M devices: many in one process, one UDP socket each, no aiocoap context.

Each device is a datagram protocol that speaks just enough CoAP (aiocoap's
message codec, our content formats): it registers (confirmable, with
retransmission), answers Read, Write, Write-Attributes and Execute with
piggybacked ACKs, sends non-confirmable notifications to observers (the value
it bumps is a timestamp, so the server can measure notification latency), and
runs Object 5 for real: it downloads the package over HTTP, checks its SHA-256
and "reboots" (registers again) into the new version.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.agent import DownloadError, download
from tinymlaas.edge.lwm2m.links import Link, format_links
from tinymlaas.edge.lwm2m.vocab import FwResult

OBJECTS = format_links([Link("/", {"rt": "oma.lwm2m", "ct": "112"}), Link("/1/0"), Link("/3", {"ver": "1.1"}),
                        Link("/3/0"), Link("/5", {"ver": "1.1"}), Link("/5/0"), Link("/33100/0")]).encode()
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sim-download")


class SimDevice(asyncio.DatagramProtocol):
    def __init__(self, endpoint: str, server: tuple[str, int], workdir: Path, lifetime: int = 600) -> None:
        self.endpoint, self.server, self.workdir, self.lifetime = endpoint, server, workdir, lifetime
        self.values: codec.Content = {
            (3, 0, 0): "TinyMLaaS", (3, 0, 1): "sim", (3, 0, 2): endpoint, (3, 0, 3): "1.0.0",
            (3, 0, 11, 0): 0, (3, 0, 16): "U",
            (5, 0, 1): "", (5, 0, 3): 0, (5, 0, 5): 0, (5, 0, 9): 0,
            (33100, 0, 0): 65536, (33100, 0, 2): "sim", (33100, 0, 6): "0" * 64, (33100, 0, 11): 0,
        }
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[bytes, asyncio.Future[Message]] = {}
        self.observers: dict[tuple[int, ...], tuple[bytes, int]] = {}
        self.mid = secrets.randbelow(0xFFFF)
        self.location: tuple[str, ...] = ()
        self.registrations = 0
        #: Responses to recent confirmable requests by message id: a retransmitted
        #: request gets the same answer again, it is not executed twice (RFC 7252 4.5).
        self.answered: dict[int, bytes] = {}

    # -- transport ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def _send(self, msg: Message) -> None:
        assert self.transport is not None
        self.transport.sendto(msg.encode(), self.server)

    def _next_mid(self) -> int:
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    async def request(self, code: Code, path: tuple[str, ...], query: tuple[str, ...] = (),
                      payload: bytes = b"", fmt: int | None = None) -> Message:
        """A confirmable request with RFC 7252 retransmission (2 s doubling, 4 times)."""
        token = secrets.token_bytes(4)
        msg = Message(code=code, payload=payload, uri_path=path, uri_query=query)
        msg.mtype, msg.mid, msg.token = Type.CON, self._next_mid(), token
        if fmt is not None:
            msg.opt.content_format = fmt
        fut = asyncio.get_running_loop().create_future()
        self.pending[token] = fut
        timeout = 2.0
        try:
            for _ in range(5):
                self._send(msg)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
                except TimeoutError:
                    timeout *= 2
            raise TimeoutError(f"{self.endpoint}: no answer to {code} /{'/'.join(path)}")
        finally:
            self.pending.pop(token, None)

    async def register(self) -> None:
        resp = await self.request(Code.POST, ("rd",), (f"ep={self.endpoint}", f"lt={self.lifetime}",
                                                       "lwm2m=1.1", "b=U"), OBJECTS, codec.LINK_FORMAT)
        if resp.code != Code.CREATED:
            raise RuntimeError(f"{self.endpoint}: registration refused: {resp.code}")
        self.location = tuple(resp.opt.location_path)
        self.registrations += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            msg = Message.decode(data)
        except Exception:  # a simulated device ignores garbage, like a real one
            return
        if msg.mtype == Type.RST:
            self.observers = {p: o for p, o in self.observers.items() if o[1] != msg.mid}
            return
        if msg.code.is_request():
            self._answer(msg)
            return
        fut = self.pending.get(msg.token)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    # -- the server's requests ------------------------------------------------------------
    def _answer(self, req: Message) -> None:
        if req.mtype == Type.CON and req.mid in self.answered:
            assert self.transport is not None
            self.transport.sendto(self.answered[req.mid], self.server)
            return
        try:
            path = codec.parse_path(req.opt.uri_path)
            resp = self._handle(req, path)
        except codec.CodecError as exc:
            resp = Message(code=Code.BAD_REQUEST, payload=str(exc).encode())
        resp.mtype = Type.ACK if req.mtype == Type.CON else Type.NON
        resp.mid = req.mid if req.mtype == Type.CON else self._next_mid()
        resp.token = req.token
        if req.mtype == Type.CON:
            if len(self.answered) > 32:
                self.answered.pop(next(iter(self.answered)))
            self.answered[req.mid] = resp.encode()
        self._send(resp)

    def _content(self, path: tuple[int, ...]) -> codec.Content:
        return {p: v for p, v in self.values.items() if codec.under(p, path)}

    def _handle(self, req: Message, path: tuple[int, ...]) -> Message:
        if req.code == Code.GET:
            content = self._content(path)
            if not content:
                return Message(code=Code.NOT_FOUND)
            fmt = req.opt.accept if req.opt.accept is not None else codec.SENML_CBOR
            resp = Message(code=Code.CONTENT, content_format=fmt, payload=codec.encode(fmt, content, path))
            if req.opt.observe == 0:
                self.observers[path] = (req.token, 0)
                resp.opt.observe = 0
            return resp
        if req.code == Code.PUT:
            if not req.payload:  # Write-Attributes
                return Message(code=Code.CHANGED)
            value = codec.decode(req.opt.content_format, req.payload, path)
            if path == (5, 0, 1):
                return self._package_uri(str(value[path]))
            self.values.update(value)
            return Message(code=Code.CHANGED)
        if req.code == Code.POST and path == (5, 0, 2):
            if self.values[(5, 0, 3)] != 2:
                return Message(code=Code.METHOD_NOT_ALLOWED)
            self._set((5, 0, 3), 3)
            asyncio.get_running_loop().create_task(self._reboot())
            return Message(code=Code.CHANGED)
        return Message(code=Code.METHOD_NOT_ALLOWED)

    def _set(self, path: tuple[int, ...], value: Any) -> None:
        self.values[path] = value
        for opath, (token, seq) in list(self.observers.items()):
            if codec.under(path, opath):
                self.observers[opath] = (token, seq + 1)
                msg = Message(code=Code.CONTENT, content_format=codec.SENML_CBOR, observe=seq + 1,
                              payload=codec.encode(codec.SENML_CBOR, self._content(opath), opath))
                msg.mtype, msg.mid, msg.token = Type.NON, self._next_mid(), token
                self._send(msg)

    def bump(self) -> None:
        """An inference happened: its count carries the time (ns) for latency measurements."""
        self._set((33100, 0, 11), time.time_ns())

    # -- Object 5 --------------------------------------------------------------------
    def _package_uri(self, uri: str) -> Message:
        if uri == "":
            self._set((5, 0, 5), 0)
            self._set((5, 0, 3), 0)
            return Message(code=Code.CHANGED)
        if self.values[(5, 0, 3)] != 0:
            return Message(code=Code.METHOD_NOT_ALLOWED)
        self._set((5, 0, 5), 0)
        self._set((5, 0, 3), 1)
        asyncio.get_running_loop().create_task(self._download(uri))
        return Message(code=Code.CHANGED)

    async def _download(self, uri: str) -> None:
        dest = self.workdir / f"{self.endpoint}.bin"
        try:
            await asyncio.get_running_loop().run_in_executor(
                _POOL, lambda: download(uri, dest, max_bytes=16 << 20))
        except DownloadError as exc:
            self._set((5, 0, 5), int(exc.result))
            self._set((5, 0, 3), 0)
            return
        self._set((5, 0, 3), 2)

    async def _reboot(self) -> None:
        await asyncio.sleep(0.1)
        self.observers.clear()
        self.values.update({(3, 0, 3): "2.0.0", (5, 0, 3): 0, (5, 0, 5): int(FwResult.success)})
        await self.register()


async def start_devices(n: int, server: tuple[str, int], workdir: Path, *, prefix: str = "sim",
                        concurrency: int = 200, lifetime: int = 600,
                        progress: Callable[[int], None] | None = None,
                        kind: type[SimDevice] = SimDevice) -> tuple[list[SimDevice], float]:
    """Bind and register ``n`` devices (of class ``kind``); returns them and the seconds
    registration took."""
    loop = asyncio.get_running_loop()
    devices = []
    for i in range(n):
        dev = kind(f"{prefix}-{i:05d}", server, workdir, lifetime)
        await loop.create_datagram_endpoint(lambda d=dev: d, local_addr=("127.0.0.1", 0))
        devices.append(dev)
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(dev: SimDevice) -> None:
        nonlocal done
        async with sem:
            await dev.register()
        done += 1
        if progress and done % 1000 == 0:
            progress(done)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(d) for d in devices))
    return devices, time.perf_counter() - t0


def close_devices(devices: list[SimDevice]) -> None:
    for d in devices:
        if d.transport is not None:
            d.transport.close()

"""The LwM2M client against servers it did not come with: block sizes it is told, retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SmallBlockServer(asyncio.DatagramProtocol):
    """A registration endpoint that takes at most 64 bytes per request (4.13 + Block1 SZX 2,
    or only Size1) and assembles Block1 transfers."""

    def __init__(self, *, size1_only: bool = False) -> None:
        self.size1_only = size1_only
        self.body = bytearray()
        self.requests: list[Message] = []
        self.registered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        req = Message.decode(data)
        if not req.code.is_request():
            return
        self.requests.append(req)
        b1 = req.opt.block1
        if len(req.payload) > 64 or (b1 is not None and b1.size_exponent > 2):
            resp = Message(code=Code.REQUEST_ENTITY_TOO_LARGE)
            resp.opt.size1 = 64
            if not self.size1_only:
                resp.opt.block1 = BlockOption.BlockwiseTuple(0, False, 2)
        elif b1 is not None and b1.more:
            self.body += req.payload
            resp = Message(code=Code.CONTINUE)
            resp.opt.block1 = b1
        else:
            self.body += req.payload
            resp = Message(code=Code.CREATED, location_path=("rd", "abc"))
            resp.opt.block1 = b1
            if not self.registered.done():
                self.registered.set_result(bytes(self.body))
        resp.mtype, resp.mid, resp.token = Type.ACK, req.mid, req.token
        self.transport.sendto(resp.encode(), addr)


@pytest.mark.parametrize("size1_only", [False, True])
async def test_registration_goes_block_wise_at_the_size_the_server_asks_for(size1_only: bool) -> None:
    loop = asyncio.get_running_loop()
    server = SmallBlockServer(size1_only=size1_only)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    objects = [Instance(3, 0, {0: "TinyMLaaS"}), *(Instance(33100, i, {}) for i in range(4))]
    client = LwM2MClient("small-server", f"coap://127.0.0.1:{port}", objects)
    try:
        await client.start()
        body = await asyncio.wait_for(server.registered, 5)
        await asyncio.wait_for(client.registered.wait(), 5)
        assert body.startswith(b"</>;rt=")
        assert len(body) > 64 and client.location == ("rd", "abc") and client.block_szx == 2
        first, *blocks = server.requests
        assert first.opt.block1 is None and first.payload == body  # tried whole first
        assert [r.opt.block1.block_number for r in blocks if r.opt.block1] == list(range(len(blocks)))
        assert blocks[0].opt.size1 == len(body)
    finally:
        await client.stop(deregister=False)
        transport.close()


async def test_registration_retries_back_off_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    transport.close()  # nothing listens: ICMP port unreachable at once
    client = LwM2MClient("nobody-home", f"coap://127.0.0.1:{port}", [], retry_max_s=8)
    monkeypatch.setattr("tinymlaas.edge.lwm2m.client.asyncio.sleep", sleep)
    await client.start()
    while len(waits) < 6:
        await real_sleep(0.01)
    await client.stop(deregister=False)
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= w <= cap for w, cap in zip(waits, caps, strict=False)), waits
    assert len(set(waits)) > 1 and client.last_error

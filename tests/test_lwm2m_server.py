"""The LwM2M server against the LwM2M client, over real UDP on loopback, in one process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
from tinymlaas.errors import DeviceError, DeviceUnreachable, NotFound
from tinymlaas.lwm2m.server import LwM2MServer

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


FAST = LwM2MSettings(port=0, ack_timeout_s=0.2, max_retransmit=1, request_timeout_s=5)


@pytest.fixture
async def server() -> AsyncIterator[LwM2MServer]:
    srv = LwM2MServer(FAST)
    await srv.start()
    yield srv
    await srv.stop()


def device_objects(big: int = 3000) -> list[Instance]:
    return [
        Instance(3, 0, {0: "TinyMLaaS", 1: "x86-tflm", 2: "sn-1", 3: "1.0.0", 11: {0: 0}, 13: 5,
                        16: "U", 21: 16384}),
        Instance(33100, 0, {0: 65536, 2: "x86-64", 4: {0: "none"}, 9: bytes(range(256)) * (big // 256),
                            10: b"", 11: 0}),
    ]


async def connect(server: LwM2MServer, ep: str = "dev-1", **kw: Any) -> LwM2MClient:
    client = LwM2MClient(ep, server.uri, kw.pop("objects", None) or device_objects(), **kw)
    await client.start()
    await asyncio.wait_for(client.registered.wait(), 5)
    return client


async def test_registration_lists_objects_versions_and_binding(server: LwM2MServer) -> None:
    client = await connect(server, lifetime=60)
    (dev,) = server.devices()
    assert dev["online"] and dev["endpoint"] == "dev-1" and dev["lwm2m"] == "1.1"
    assert dev["objects"] == {1: [0], 3: [0], 33100: [0]}
    assert dev["versions"][3] == "1.1" and dev["lifetime"] == 60 and dev["binding"] == "U"
    await client.stop()
    await asyncio.sleep(0.1)
    (dev,) = server.devices()
    assert not dev["online"] and dev["offline_reason"] == "de-registered"


@pytest.mark.parametrize("fmt", [codec.SENML_CBOR, codec.SENML_JSON, codec.TLV])
async def test_read_in_every_format_and_write_blockwise(server: LwM2MServer, fmt: int) -> None:
    client = await connect(server)
    values = await server.read("dev-1", "/3/0", fmt=fmt)
    assert values[(3, 0, 1)] == "x86-tflm" and values[(3, 0, 11, 0)] == 0
    big = await server.read_value("dev-1", "/33100/0/9")  # 3 KiB: Block2 from the device
    assert big == bytes(range(256)) * 11
    await server.write("dev-1", "/33100/0/9", b"\x07" * 5000)  # Block1 to the device
    assert client.instance(33100).values[9] == b"\x07" * 5000
    await server.write("dev-1", "/3/0/13", 42)
    assert await server.read_value("dev-1", "/3/0/13") == 42
    await client.stop()


async def test_errors_name_the_device_and_path(server: LwM2MServer) -> None:
    client = await connect(server)
    with pytest.raises(NotFound, match=r"/3/0/99 on device 'dev-1'"):
        await server.read("dev-1", "/3/0/99")
    with pytest.raises(DeviceError, match=r"4\.05 Method Not Allowed"):
        await server.execute("dev-1", "/3/0/0")
    with pytest.raises(DeviceError, match=r"4\.05 Method Not Allowed"):
        await server.write("dev-1", "/3/0/0", "new maker")
    with pytest.raises(NotFound, match="no device 'ghost'"):
        await server.read("ghost", "/3/0")
    await client.stop()


async def test_vanished_or_silent_device_is_unreachable(server: LwM2MServer) -> None:
    client = await connect(server)
    assert client.ctx is not None
    await client.ctx.shutdown()  # the device vanishes without de-registering
    client.ctx = None
    with pytest.raises(DeviceUnreachable, match="unreachable"):  # ICMP port unreachable
        await server.read("dev-1", "/3/0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # now it swallows requests
        silent.bind(("127.0.0.1", client.port))
        with pytest.raises(DeviceUnreachable, match="did not acknowledge Read /3/0 after 1 retrans"):
            await server.read("dev-1", "/3/0")
    await client.stop(deregister=False)


async def test_lifetime_expiry_marks_offline_and_update_keeps_alive(server: LwM2MServer) -> None:
    alive = await connect(server, "alive", lifetime=1)
    dying = await connect(server, "dying", lifetime=1)
    await dying.stop(deregister=False)
    await asyncio.sleep(2.5)
    state = {d["endpoint"]: d for d in server.devices()}
    assert state["alive"]["online"]
    assert not state["dying"]["online"] and state["dying"]["offline_reason"] == "lifetime expired"
    with pytest.raises(DeviceUnreachable, match="offline"):
        await server.read("dying", "/3/0")
    await alive.stop()


async def test_same_endpoint_again_replaces_the_registration(server: LwM2MServer) -> None:
    first = await connect(server, "twin")
    await first.stop(deregister=False)  # e.g. the device rebooted
    second = await connect(server, "twin")
    (dev,) = server.devices()
    assert dev["address"].endswith(f":{second.port}")
    assert await server.read_value("twin", "/3/0/2") == "sn-1"
    await second.stop()


async def test_observe_with_attributes_then_cancel(server: LwM2MServer) -> None:
    client = await connect(server)
    await server.write_attributes("dev-1", "/3/0/13", pmin=0, pmax=0.3)
    obs = await server.observe("dev-1", "/3/0/13")
    client.instance(3).set(13, 6)
    assert (await obs.wait_for(lambda v: v.get((3, 0, 13)) == 6, 3))[(3, 0, 13)] == 6
    before = obs.notifications
    await asyncio.sleep(1.0)  # pmax: notifications without a change
    assert obs.notifications >= before + 2
    obs.cancel()
    await asyncio.sleep(1.0)  # the next notification is answered with a reset
    assert not client.site.observations
    await client.stop()


async def test_step_attribute_gates_notifications(server: LwM2MServer) -> None:
    client = await connect(server)
    await server.write_attributes("dev-1", "/33100/0/11", st=10)
    obs = await server.observe("dev-1", "/33100/0/11")
    tinyml = client.instance(33100)
    tinyml.set(11, 3)
    await asyncio.sleep(0.3)
    assert obs.value[(33100, 0, 11)] == 0
    tinyml.set(11, 12)
    await obs.wait_for(lambda v: v.get((33100, 0, 11)) == 12, 3)
    obs.cancel()
    await client.stop()


async def test_discover_create_delete(server: LwM2MServer) -> None:
    client = await connect(server)
    client.factories[9] = lambda iid: Instance(9, iid, {0: "", 1: ""})
    links = await server.discover("dev-1", "/3/0")
    assert any(link.target == "/3/0/11" and link.attrs.get("dim") == "1" for link in links)
    assert any(link.target == "/3/0/4" for link in links)  # executable Reboot
    await server.write_attributes("dev-1", "/3/0/13", pmin=2)
    links = await server.discover("dev-1", "/3/0/13")
    assert links[0].attrs.get("pmin") == "2"
    iid = await server.create("dev-1", 9, {8: True})
    assert client.instance(9, iid).values[8] is True
    await asyncio.sleep(0.2)
    assert 9 in server.devices()[0]["objects"]  # the Update carried the new object list
    await server.delete("dev-1", f"/9/{iid}")
    with pytest.raises(NotFound):
        await server.read("dev-1", f"/9/{iid}")
    await client.stop()


async def test_a_forgotten_client_registers_again_on_its_next_update(server: LwM2MServer) -> None:
    client = await connect(server, "phoenix", lifetime=60)
    first = server.registry.online("phoenix")
    server.registry.remove(first, "lifetime expired")  # as if it had been silent too long
    client.trigger_update()
    await server.registry.wait_for(lambda: server.registry.devices["phoenix"].online, 5)
    assert server.registry.online("phoenix").id != first.id
    await asyncio.wait_for(client.registered.wait(), 5)
    assert client.registrations == 2
    await client.stop()


async def test_a_lost_notification_is_made_up_for_by_a_read(server: LwM2MServer) -> None:
    client = await connect(server)
    obs = await server.observe("dev-1", "/3/0/13")
    client.instance(3).values[13] = 99  # changed without a notification (as if it were lost)
    value = await obs.wait_for(lambda v: v.get((3, 0, 13)) == 99, timeout=5, poll_s=0.2)
    assert value[(3, 0, 13)] == 99
    obs.cancel()
    await client.stop()


class SmallBlocks(asyncio.DatagramProtocol):
    """A raw device that answers Reads in 64-byte blocks and records the requests."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[Any] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        from aiocoap import Message
        from aiocoap.numbers.codes import Code
        from aiocoap.numbers.types import Type
        from aiocoap.optiontypes import BlockOption

        req = Message.decode(data)
        if not req.code.is_request():
            if req.code == Code.CREATED:
                self.registered.set_result(req)
            return
        self.requests.append(req)
        num = req.opt.block2.block_number if req.opt.block2 else 0
        part = self.body[num * 64:(num + 1) * 64]
        resp = Message(code=Code.CONTENT, content_format=codec.OPAQUE, payload=part)
        resp.opt.block2 = BlockOption.BlockwiseTuple(num, (num + 1) * 64 < len(self.body), 2)
        resp.mtype, resp.mid, resp.token = Type.ACK, req.mid, req.token
        self.transport.sendto(resp.encode(), addr)


async def test_block_wise_starts_at_the_block_size_the_device_showed(server: LwM2MServer) -> None:
    from aiocoap import Message
    from aiocoap.numbers.codes import Code
    from aiocoap.numbers.types import Type

    loop = asyncio.get_running_loop()
    body = bytes(range(200))
    dev = SmallBlocks(body)
    dev.registered = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: dev, local_addr=("127.0.0.1", 0))
    try:
        reg = Message(code=Code.POST, uri_path=("rd",), uri_query=("ep=small", "lt=60", "lwm2m=1.1"),
                      payload=b"</33100/0>", content_format=codec.LINK_FORMAT)
        reg.mtype, reg.mid, reg.token = Type.CON, 1, b"r1"
        transport.sendto(reg.encode(), ("127.0.0.1", server.port))
        await asyncio.wait_for(dev.registered, 5)
        assert await server.read_value("small", "/33100/0/9") == body  # 4 blocks of 64
        assert server.registry.online("small").block_szx == 2
        dev.requests.clear()
        assert await server.read_value("small", "/33100/0/9") == body
        first = dev.requests[0].opt.block2  # the next transfer asks for 64-byte blocks at once
        assert first is not None and first.size_exponent == 2 and first.block_number == 0
        assert [r.opt.accept for r in dev.requests] == [codec.OPAQUE] * 4  # always an Accept
    finally:
        transport.close()


class Silent(LwM2MClient):
    """A 1.1 client that announces no content format (so the server must find one)."""

    def object_links(self) -> list[Any]:
        links = super().object_links()
        return [links[0].__class__("/", {"rt": "oma.lwm2m"}), *links[1:]]


async def test_formats_follow_what_the_client_announced(server: LwM2MServer) -> None:
    """A stock 1.1 client announcing only SenML JSON is never asked for SenML CBOR."""
    client = await connect(server, "json-only", content_formats=(codec.SENML_JSON,))
    asked: list[tuple[int | None, tuple[str, ...]]] = []
    handle = client.handle

    async def spy(request: Any) -> Any:
        asked.append((request.opt.accept or request.opt.content_format, request.opt.uri_path))
        return await handle(request)

    client.handle = spy  # type: ignore[method-assign]
    assert server.registry.online("json-only").announced == [codec.SENML_JSON]
    assert (await server.read("json-only", "/3/0"))[(3, 0, 1)] == "x86-tflm"
    assert await server.read_value("json-only", "/3/0/2") == "sn-1"  # one value: plain text
    assert await server.read_value("json-only", "/33100/0/9") == bytes(range(256)) * 11  # opaque
    await server.write("json-only", "/3/0", {(3, 0, 13): 7}, replace=False)
    obs = await server.observe("json-only", "/33100/0")
    client.instance(33100).set(11, 5)
    await obs.wait_for(lambda v: v.get((33100, 0, 11)) == 5, 3)
    obs.cancel()
    assert [a for a, _ in asked] == [codec.SENML_JSON, codec.TEXT, codec.OPAQUE, codec.SENML_JSON,
                                     codec.SENML_JSON]
    await client.stop()


async def test_a_refused_format_is_retried_once_with_the_next_and_remembered(server: LwM2MServer) -> None:
    client = Silent("quiet", server.uri, device_objects(), content_formats=(codec.SENML_JSON,))
    await client.start()
    await asyncio.wait_for(client.registered.wait(), 5)
    assert (await server.read("quiet", "/3/0"))[(3, 0, 0)] == "TinyMLaaS"  # CBOR: 4.06, then JSON
    assert server.registry.devices["quiet"].refused_formats == {codec.SENML_CBOR}
    assert server.formats_for(server.registry.online("quiet"))[0] == codec.SENML_JSON
    await client.stop()
    tlv = Silent("tlv-only", server.uri, device_objects(), content_formats=(codec.TLV,))
    await tlv.start()
    await asyncio.wait_for(tlv.registered.wait(), 5)
    with pytest.raises(DeviceError, match="none of the content formats offered for Read /3/0 "
                                          r"\(application/senml\+cbor and application/senml\+json\)"):
        await server.read("tlv-only", "/3/0")  # one retry only
    assert (await server.read("tlv-only", "/3/0"))[(3, 0, 0)] == "TinyMLaaS"  # remembered: TLV now
    await tlv.stop()

"""Interop: our LwM2M server and client against an independent implementation.

The other side is lwm2m-node-lib (Telefónica's LwM2M client and server for Node.js, from
npm; ``ci/interop``: package.json + package-lock.json, installed by ``ci/setup.sh``),
driven through two small scripts over JSON lines. Loopback only. Both directions:

* its client registers with our server, is read, written, executed and observed, updates
  and de-registers;
* our client registers with its server and answers its reads, writes and executes.

What lwm2m-node-lib lacks is said where it matters, and checked in our own peer tests
instead (tests/test_lwm2m_server.py, test_lwm2m_dtls.py, test_lwm2m_queue.py): it speaks
LwM2M 1.0 with plain text only (no TLV or SenML, so it leaves instance and object reads
unanswered), no
DTLS, no queue mode, no Send, no Create/Delete, and announces no content formats.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m import codec
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
from tinymlaas.lwm2m.server import LwM2MServer

pytestmark = [pytest.mark.lwm2m, pytest.mark.interop, pytest.mark.anyio]
INTEROP = Path(__file__).resolve().parents[1] / "ci" / "interop"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Node:
    """One lwm2m-node-lib script: commands in, events out (JSON lines)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, script: str, *args: str) -> Node:
        node = shutil.which("node")
        if node is None or not (INTEROP / "node_modules" / "lwm2m-node-lib").is_dir():
            pytest.fail("the interop suite needs Node.js and ci/interop/node_modules: run `make setup`")
        proc = await asyncio.create_subprocess_exec(node, "--no-warnings", str(INTEROP / script), *args,
                                                    cwd=INTEROP,
                                                    stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def expect(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """The next event of this kind (an error event fails the test)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"lwm2m-node-lib exited before '{event}': {self.events}")
                got = json.loads(line)
                self.events.append(got)
                if got["event"] == event:
                    return got
                if got["event"] == "error" and event != "error":
                    raise AssertionError(f"lwm2m-node-lib: {got}")

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


@pytest.fixture
async def server() -> AsyncIterator[LwM2MServer]:
    srv = LwM2MServer(LwM2MSettings(port=0, ack_timeout_s=0.5, max_retransmit=2, request_timeout_s=10))
    await srv.start()
    yield srv
    await srv.stop()


async def test_its_client_registers_is_managed_updates_and_deregisters(server: LwM2MServer) -> None:
    node = await Node.start("client.js", "127.0.0.1", str(server.port), "node-client")
    try:
        await node.expect("registered")
        await server.registry.wait_for(lambda: "node-client" in server.registry.devices, 5)
        (dev,) = server.devices()
        assert dev["online"] and dev["lwm2m"] == "1.0" and dev["binding"] == "U"
        assert 3 in dev["objects"] and dev["objects"][3] == [0]

        # Read: one resource at a time. lwm2m-node-lib has no TLV or SenML, so it leaves instance
        # reads (/3/0) unanswered, as it does every request it has an error for (a missing
        # resource too); both are in tests/test_lwm2m_server.py.
        assert await server.read_value("node-client", "/3/0/0") == "Telefonica I+D"
        assert await server.read_value("node-client", "/3/0/3") == "1.4.0"

        # Write (plain text, what a 1.0 client takes for one value), then read it back.
        await server.write("node-client", "/3/0/13", 1700000042)
        assert (await node.expect("write")) == {"event": "write", "path": "/3/0/13", "value": "1700000042"}
        assert await server.read_value("node-client", "/3/0/13") == 1700000042

        # Execute (Reboot), with and without arguments.
        await server.execute("node-client", "/3/0/4")
        assert (await node.expect("execute"))["path"] == "/3/0/4"

        # Observe: its notifications are plain text without a content format.
        obs = await server.observe("node-client", "/3/0/13")
        node.send(cmd="set", object="/3/0", resource="13", value="1700000099")
        value = await obs.wait_for(lambda v: v.get((3, 0, 13)) == 1700000099, 10, poll_s=30)
        assert value[(3, 0, 13)] == 1700000099 and obs.notifications >= 2
        obs.cancel()

        # Registration Update, then De-register.
        before = server.registry.online("node-client").updated_at
        node.send(cmd="update")
        await node.expect("updated")
        assert server.registry.online("node-client").updated_at > before
        node.send(cmd="unregister")
        await node.expect("unregistered")
        await server.registry.wait_for(lambda: not server.registry.devices["node-client"].online, 5)
        assert server.devices()[0]["offline_reason"] == "de-registered"
    finally:
        await node.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_our_client_registers_with_its_server_and_answers_it() -> None:
    port = _free_udp_port()
    node = await Node.start("server.js", str(port))
    client = None
    try:
        await node.expect("listening")
        device = Instance(3, 0, {0: "TinyMLaaS", 1: "x86-tflm", 3: "1.0.0", 13: 5, 16: "U"})
        rebooted: list[str] = []

        class Device(Instance):
            async def execute(self, rid: int, args: str) -> None:
                rebooted.append(args)

        device = Device(3, 0, device.values)
        client = LwM2MClient("tinymlaas-client", f"coap://127.0.0.1:{port}", [device], lifetime=60)
        await client.start()
        reg = await node.expect("registered")
        assert reg["endpoint"] == "tinymlaas-client" and reg["version"] == "1.1"
        # Our object list announces our formats; lwm2m-node-lib keeps it as it came.
        assert f'ct="{codec.SENML_CBOR} {codec.SENML_JSON} {codec.TLV}"' in reg["payload"]
        assert "</3/0>" in reg["payload"]
        await asyncio.wait_for(client.registered.wait(), 5)

        node.send(cmd="read", device="tinymlaas-client", path=[3, 0, 0])
        assert (await node.expect("read"))["value"] == "TinyMLaaS"
        node.send(cmd="write", device="tinymlaas-client", path=[3, 0, 13], value="42")
        await node.expect("write")
        assert device.values[13] == 42
        node.send(cmd="read", device="tinymlaas-client", path=[3, 0, 13])
        assert (await node.expect("read"))["value"] == "42"
        node.send(cmd="execute", device="tinymlaas-client", path=[3, 0, 4], args="")
        await node.expect("execute")
        assert rebooted == [""]
        node.send(cmd="discover", device="tinymlaas-client", path=[3, 0])
        assert "</3/0/0>" in (await node.expect("discover"))["value"]
        client.trigger_update()
        assert (await node.expect("updated"))["endpoint"] == "tinymlaas-client"
        await client.stop()  # de-registers
        client = None
        assert (await node.expect("unregistered"))["endpoint"] == "tinymlaas-client"

        # Observe: its server asks for plain text; the first value answers, then a change notifies.
        # Last: its server observes through node-coap's proxy, which does not acknowledge our
        # confirmable notifications, so our next request would wait (NSTART 1) for that
        # notification's retransmissions to end.
        client = LwM2MClient("tinymlaas-observed", f"coap://127.0.0.1:{port}", [device], lifetime=60)
        await client.start()
        await node.expect("registered")
        node.send(cmd="observe", device="tinymlaas-observed", path=[3, 0, 13])
        assert (await node.expect("observe"))["value"] == "42"
        device.set(13, 43)
        assert (await node.expect("notify")) == {"event": "notify", "path": [3, 0, 13], "value": "43"}
    finally:
        if client is not None:
            await client.stop(deregister=False)
        await node.close()

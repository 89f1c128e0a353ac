"""DTLS 1.2 with a pre-shared key: provisioned devices register over coaps:// and are read,
written, executed and observed over the session they opened; others are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.bridge import McuSpec
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient, load_psk
from tinymlaas.errors import Conflict, DeviceUnreachable
from tinymlaas.lwm2m.security import PskStore, write_psk
from tinymlaas.lwm2m.server import LwM2MServer
from tinymlaas.models import TRUST_FILE, DeviceCredentials, JoinInfo
from tinymlaas.orchestrators.lwm2m import LwM2MOrchestrator

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def psk_server(tmp_path: Path) -> AsyncIterator[tuple[LwM2MServer, PskStore]]:
    store = PskStore(tmp_path / "server-psk")
    srv = LwM2MServer(LwM2MSettings(port=0, coaps_port=0, security="psk", ack_timeout_s=0.3,
                                    max_retransmit=1, request_timeout_s=5), store)
    await srv.start()
    yield srv, store
    await srv.stop()


class Rebooter(Instance):
    def __init__(self) -> None:
        super().__init__(3, 0, {0: "TinyMLaaS", 3: "1.0", 11: {0: 0}, 13: 1, 16: "U"})
        self.rebooted = 0

    async def execute(self, rid: int, args: str) -> None:
        self.rebooted += 1


async def start(srv: LwM2MServer, ep: str, psk: tuple[bytes, bytes], uri: str | None = None) -> LwM2MClient:
    client = LwM2MClient(ep, uri or srv.uri, [Rebooter()], psk=psk, retry_max_s=0.5)
    await client.start()
    return client


async def test_a_provisioned_device_is_managed_over_its_dtls_session(
        psk_server: tuple[LwM2MServer, PskStore], tmp_path: Path) -> None:
    srv, store = psk_server
    material = store.provision("dev-psk")
    assert (tmp_path / "server-psk" / "dev-psk.json").stat().st_mode & 0o077 == 0
    device_copy = write_psk(tmp_path / "device" / "psk.json", material)
    assert device_copy.stat().st_mode & 0o077 == 0
    assert srv.uri.startswith("coaps://127.0.0.1:")
    client = await start(srv, "dev-psk", load_psk(device_copy))
    await asyncio.wait_for(client.registered.wait(), 10)
    (dev,) = srv.devices()
    assert dev["secure"] is True and dev["online"]
    # Every server-initiated operation travels over the session the device opened.
    assert (await srv.read("dev-psk", "/3/0"))[(3, 0, 0)] == "TinyMLaaS"
    await srv.write("dev-psk", "/3/0/13", 42)
    assert client.instance(3).values[13] == 42
    await srv.execute("dev-psk", "/3/0/4")
    assert client.instance(3).rebooted == 1  # type: ignore[attr-defined]
    obs = await srv.observe("dev-psk", "/3/0/13")
    client.instance(3).set(13, 7)
    assert (await obs.wait_for(lambda v: v.get((3, 0, 13)) == 7, 3))[(3, 0, 13)] == 7
    obs.cancel()
    client.trigger_update()  # the registration update goes over the same session
    await asyncio.sleep(0.3)
    assert srv.registry.online("dev-psk").updated_at > dev["registered_at"]
    with pytest.raises(Conflict):
        store.provision("dev-psk")
    await client.stop()
    await asyncio.sleep(0.2)
    assert not srv.devices()[0]["online"] and srv.devices()[0]["offline_reason"] == "de-registered"


async def test_devices_without_the_right_key_cannot_register(
        psk_server: tuple[LwM2MServer, PskStore], caplog: pytest.LogCaptureFixture) -> None:
    srv, store = psk_server
    mine = store.provision("dev-a")
    store.provision("dev-b")
    clients: list[LwM2MClient] = []
    try:
        wrong = await start(srv, "dev-a", (b"dev-a", b"\x00" * 16))  # handshake fails
        other = await start(srv, "dev-b", (b"dev-a", bytes.fromhex(mine["psk_key_hex"])))  # a's key
        plain = LwM2MClient("dev-c", srv.coap_uri, [Rebooter()], retry_max_s=0.5)
        await plain.start()
        clients += [wrong, other, plain]
        await asyncio.sleep(2)
        assert srv.devices() == []
        assert "4.03 Forbidden these credentials do not belong to endpoint 'dev-b'" in str(other.last_error)
        assert "4.01 Unauthorized registration needs DTLS with a pre-shared key" in str(plain.last_error)
    finally:
        for c in clients:
            await c.stop(deregister=False)


async def test_a_revoked_key_ends_the_registration(psk_server: tuple[LwM2MServer, PskStore]) -> None:
    srv, store = psk_server
    material = store.provision("dev-r")
    client = await start(srv, "dev-r", (b"dev-r", bytes.fromhex(material["psk_key_hex"])))
    await asyncio.wait_for(client.registered.wait(), 10)
    store.revoke("dev-r")
    srv.registry.remove(srv.registry.online("dev-r"), "credentials revoked")
    client.trigger_update()  # 4.04 -> it registers again over its old session: refused now
    await asyncio.sleep(1.5)
    with pytest.raises(DeviceUnreachable, match="credentials revoked"):
        await srv.read("dev-r", "/3/0")
    await client.stop(deregister=False)


def test_psk_files_round_trip(tmp_path: Path) -> None:
    store = PskStore(tmp_path / "s")
    material = store.provision("ep-1")
    again = PskStore(tmp_path / "s")  # a restart loads the keys
    assert again.lookup(b"ep-1") == (bytes.fromhex(material["psk_key_hex"]), "ep-1")
    assert load_psk(write_psk(tmp_path / "d" / "psk.json", material)) == (
        b"ep-1", bytes.fromhex(material["psk_key_hex"]))




def test_a_device_started_beside_the_service_gets_its_key_and_the_flags(tmp_path: Path) -> None:
    """The orchestrator's attach: the key file in the device's folder, --psk for the agents."""
    store = PskStore(tmp_path / "server")
    creds = DeviceCredentials.model_validate(store.provision("ep-9"))
    creds.signing_key = "c2lnbmluZyBrZXk="
    join = JoinInfo(plugin="lwm2m", security="psk", uri="coaps://127.0.0.1:5684")
    attach = LwM2MOrchestrator.attach(join, api_url="http://127.0.0.1:8000", endpoint="ep-9",
                                      credentials=creds, folder=tmp_path / "device")
    assert attach.security == "psk" and attach.how == "registered over DTLS (PSK)"
    assert attach.args("/credentials")[-4:] == ["--psk", "/credentials/psk.json",
                                                "--trust", f"/credentials/{TRUST_FILE}"]
    assert (tmp_path / "device" / "psk" / TRUST_FILE).read_text().strip() == creds.signing_key
    key = bytes.fromhex(creds.secret("psk_key_hex"))
    assert load_psk(tmp_path / "device" / "psk" / "psk.json") == (b"ep-9", key)


async def test_a_board_behind_a_bridge_registers_with_the_key_in_its_credentials(
        psk_server: tuple[LwM2MServer, PskStore], tmp_path: Path) -> None:
    """``--mcu EP,BOARD,FLASH,CREDENTIALS`` with the folder the orchestrator's attach wrote
    (psk.json), as BridgeProcess.fronting passes it: the board's endpoint joins over DTLS."""
    srv, store = psk_server
    creds = DeviceCredentials.model_validate(store.provision("mcu-psk"))
    join = JoinInfo(plugin="lwm2m", security="psk", uri=srv.uri)
    attach = LwM2MOrchestrator.attach(join, api_url="http://127.0.0.1:8000", endpoint="mcu-psk",
                                      credentials=creds, folder=tmp_path / "mcu-psk")
    spec = McuSpec.parse(f"mcu-psk,board.toml,flash,{attach.credentials}")
    assert spec.lwm2m_security == McuSpec.parse(
        f"mcu-psk,board.toml,flash,{attach.credentials}/psk.json").lwm2m_security
    client = LwM2MClient("mcu-psk", srv.uri, [Rebooter()], retry_max_s=0.5, **spec.lwm2m_security)
    await client.start()
    try:
        await asyncio.wait_for(client.registered.wait(), 10)
        assert srv.registry.online("mcu-psk").identity == "mcu-psk"
    finally:
        await client.stop()

"""OSCORE: provisioned devices register and are managed; others are refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tinymlaas.config import LwM2MSettings
from tinymlaas.edge.lwm2m.client import Instance, LwM2MClient
from tinymlaas.errors import Conflict
from tinymlaas.lwm2m.security import CredentialStore, write_context
from tinymlaas.lwm2m.server import LwM2MServer

pytestmark = [pytest.mark.lwm2m, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def secure(tmp_path: Path) -> AsyncIterator[tuple[LwM2MServer, CredentialStore]]:
    store = CredentialStore(tmp_path / "server-oscore")
    srv = LwM2MServer(LwM2MSettings(port=0, security="oscore", ack_timeout_s=0.2, max_retransmit=1),
                      store)
    await srv.start()
    yield srv, store
    await srv.stop()
    store.close()


def device_context(tmp_path: Path, material: dict[str, str], name: str = "dev") -> object:
    from aiocoap.oscore import FilesystemSecurityContext

    return FilesystemSecurityContext(str(write_context(tmp_path / name, material, role="device")))


async def start(srv: LwM2MServer, ep: str, security: object) -> LwM2MClient:
    client = LwM2MClient(ep, srv.uri, [Instance(3, 0, {0: "TinyMLaaS", 3: "1.0", 11: {0: 0}, 16: "U"})],
                         security=security, retry_max_s=0.5)
    await client.start()
    return client


async def test_provisioned_device_registers_and_is_managed_over_oscore(
        secure: tuple[LwM2MServer, CredentialStore], tmp_path: Path) -> None:
    srv, store = secure
    material = store.provision("dev-ok")
    secret = tmp_path / "server-oscore" / "dev-ok" / "secret.json"
    assert secret.stat().st_mode & 0o077 == 0
    client = await start(srv, "dev-ok", device_context(tmp_path, material))
    await asyncio.wait_for(client.registered.wait(), 5)
    assert srv.devices()[0]["secure"] is True
    assert await srv.read_value("dev-ok", "/3/0/0") == "TinyMLaaS"  # server -> device, protected
    await srv.write("dev-ok", "/3/0/13", 7)
    await client.stop()


async def test_an_answer_that_fails_oscore_is_the_devices_error_and_a_read_is_asked_again() -> None:
    """An unprotected or replayed answer (a device whose context was just reset) was a 500: it is the
    device's error (502), and a read, which is safe to repeat, is asked once more."""
    from types import SimpleNamespace

    from aiocoap.oscore import NotAProtectedMessage

    from tinymlaas.errors import DeviceError
    from tinymlaas.lwm2m.server import UnacceptableAnswer

    srv = LwM2MServer(LwM2MSettings(port=0))
    reg = SimpleNamespace(endpoint="dev", address="127.0.0.1:1")
    failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    failed.set_exception(NotAProtectedMessage("unprotected 4.01", None))
    with pytest.raises(UnacceptableAnswer, match=r"answered Read /3/0/0 with a message that could not be "
                                                 r"accepted \(NotAProtectedMessage") as exc:
        await srv._await(reg, failed, "Read /3/0/0")  # type: ignore[arg-type]
    assert isinstance(exc.value, DeviceError) and exc.value.status == 502

    asked: list[str] = []

    async def negotiate(*args: object) -> object:
        asked.append("read")
        raise UnacceptableAnswer("device 'dev' answered Read /3/0/0 with a message that could not be "
                                 "accepted")
    srv.negotiate = negotiate  # type: ignore[method-assign]
    srv.ready = lambda *a: asyncio.sleep(0, reg)  # type: ignore[method-assign]
    with pytest.raises(UnacceptableAnswer):
        await srv.read("dev", "/3/0/0", fmt=0)
    assert asked == ["read", "read"]


async def test_no_wrong_or_foreign_credentials_are_refused(
        secure: tuple[LwM2MServer, CredentialStore], tmp_path: Path) -> None:
    srv, store = secure
    good = store.provision("dev-a")
    store.provision("dev-b")
    wrong = {**good, "secret_hex": "00" * 32}
    clients = [
        await start(srv, "dev-none", None),  # plain CoAP
        await start(srv, "dev-a", device_context(tmp_path, wrong, "wrong")),  # right id, wrong key
        await start(srv, "dev-b", device_context(tmp_path, good, "foreign")),  # dev-a's key, dev-b's name
    ]
    await asyncio.sleep(1.5)
    assert srv.devices() == []
    errors = [c.last_error or "" for c in clients]
    assert "4.01" in errors[0]
    assert "4.00 Bad Request Decryption failed" in errors[1]
    assert "4.03" in errors[2]
    for c in clients:
        await c.stop(deregister=False)


async def test_unprotected_requests_to_a_secure_device_are_refused(tmp_path: Path) -> None:
    """A device with credentials answers only its server's protected requests."""
    store = CredentialStore(tmp_path / "s")
    material = store.provision("dev")
    client = LwM2MClient("dev", "coap://127.0.0.1:9", [], security=device_context(tmp_path, material))
    await client.start()
    import aiocoap

    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{client.port}/3/0")
        resp = await asyncio.wait_for(ctx.request(msg).response, 5)
        assert str(resp.code) == "4.01 Unauthorized"
    finally:
        await ctx.shutdown()
        await client.stop(deregister=False)
        store.close()


def test_provisioning_refuses_duplicates_and_rotates(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "s")
    first = store.provision("dev")
    with pytest.raises(Conflict):
        store.provision("dev")
    second = store.provision("dev", replace=True)
    assert second["secret_hex"] != first["secret_hex"]
    assert json.loads((tmp_path / "s" / "dev" / "settings.json").read_text())["recipient-id_hex"] == \
        second["device_id_hex"]
    store.close()
    again = CredentialStore(tmp_path / "s")  # a restarted server loads what it had
    assert again.endpoints() == ["dev"]
    again.close()

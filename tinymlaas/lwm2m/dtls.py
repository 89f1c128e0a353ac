"""DTLS 1.2 with a pre-shared key for the LwM2M server: aiocoap's tinydtls server transport,
fixed at the boundary.

aiocoap 0.4.17's DTLS server (``aiocoap.transports.tinydtls_server``, on the DTLSSocket
wrapper of tinydtls) answers requests, but LwM2M needs more of it:

* **Server-initiated requests.** Its ``recognize_remote`` is inherited from the plain
  UDP server and recognises only plain addresses, so a Read/Write/Execute/Observe to a
  device that registered over DTLS finds no transport ("no remote"). Here the interface
  recognises the DTLS sessions it holds; a request to such a remote is written into the
  session the device opened (``_AddressDTLS.send``), and the answer comes back through it.
* **Its port.** It binds the given port plus one (CoAPS next to CoAP); here it binds the
  configured CoAPS port exactly (0: any free one, as the tests use).
* **Key lookup.** aiocoap scans a CredentialsMap for the identity; here the keys are a
  dictionary by PSK identity (:class:`~tinymlaas.lwm2m.security.PskStore`), and the
  identity the device proved is the ``authenticated_claims`` of its remote.

Only this module touches aiocoap's private DTLS classes; the rest of the server sees a
transport whose remotes name the device they authenticated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinymlaas.errors import TinyMLaaSError

#: PSK identity -> (key, the endpoint it belongs to); None for an unknown identity.
KeyLookup = Callable[[bytes], "tuple[bytes, str] | None"]


class _Keys:
    """What aiocoap's per-session ``SecurityStore`` asks: ``find_dtls_psk(identity)``."""

    def __init__(self, lookup: KeyLookup) -> None:
        self.lookup = lookup

    def find_dtls_psk(self, identity: bytes) -> tuple[bytes, str]:
        found = self.lookup(bytes(identity))
        if found is None:
            raise KeyError(identity)
        return found


def _interface_class() -> Any:
    try:
        from aiocoap.transports import tinydtls_server
    except ImportError as exc:  # DTLSSocket is built at set-up (ci/setup.sh)
        raise TinyMLaaSError(f"LwM2M security 'psk' needs DTLSSocket (aiocoap's tinydtls): {exc}") from exc

    class DTLSServer(tinydtls_server.MessageInterfaceTinyDTLSServer):  # type: ignore[misc]
        @classmethod
        async def create_server(cls, bind: tuple[str, int], ctx: Any, log: Any, loop: Any,
                                server_credentials: Any) -> Any:
            self = cls(ctx, log, loop)
            self._pool = await self._serversocket.create(bind, log, loop, self)
            self._pool._server_credentials = server_credentials
            return self

        async def recognize_remote(self, remote: Any) -> bool:
            if not isinstance(remote, tinydtls_server._AddressDTLS) or remote._protocol is not self._pool:
                return False
            return self._pool._connections.get(remote._underlying_address.address) is remote

        @property
        def port(self) -> int:
            return int(self._pool._transport.get_extra_info("sockname")[1])

    return DTLSServer


async def add_dtls_server(ctx: Any, bind: tuple[str, int], lookup: KeyLookup) -> int:
    """Add a DTLS-PSK server transport on ``bind`` to an aiocoap server context; returns its
    UDP port. Requests to its remotes (the server's own) travel over their sessions."""
    cls = _interface_class()
    made: list[Any] = []

    async def construct(mman: Any) -> Any:
        iface = await cls.create_server(bind, mman, log=ctx.log, loop=ctx.loop,
                                        server_credentials=_Keys(lookup))
        made.append(iface)
        return iface

    await ctx._append_tokenmanaged_messagemanaged_transport(construct)
    return int(made[0].port)


def dtls_identity(remote: Any) -> str | None:
    """The endpoint whose key a DTLS remote proved (None for any other remote)."""
    if getattr(remote, "scheme", None) != "coaps":
        return None
    claims = getattr(remote, "authenticated_claims", None) or [None]
    return claims[0] if isinstance(claims[0], str) else None

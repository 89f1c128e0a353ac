"""Where an LwM2M device escalates an uncertain inference: ``POST /tinyml/escalate?ep=NAME`` on the
server, the raw input tensor as the payload (opaque), the cloud's answer as JSON. A request of the
device's own, as registration is (LwM2M Send would carry it, but answers nothing): with OSCORE the
sender must hold the endpoint's credentials, without it the request must come from the address the
endpoint registered from."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap import resource
from aiocoap.numbers.codes import Code

from tinymlaas.edge.lwm2m import codec
from tinymlaas.errors import TinyMLaaSError
from tinymlaas.models import Escalation

if TYPE_CHECKING:
    from tinymlaas.lwm2m.server import LwM2MServer

PATH = ("tinyml", "escalate")
#: The service's error families as CoAP response codes.
_CODES = {400: Code.BAD_REQUEST, 403: Code.FORBIDDEN, 404: Code.NOT_FOUND, 409: Code.CONFLICT,
          413: Code.REQUEST_ENTITY_TOO_LARGE, 422: Code.UNPROCESSABLE_ENTITY, 502: Code.BAD_GATEWAY,
          504: Code.GATEWAY_TIMEOUT}


class EscalationResource(resource.Resource):
    def __init__(self, server: LwM2MServer, answer: Callable[[str, bytes], Awaitable[Escalation]]) -> None:
        super().__init__()
        self.server = server
        self.answer = answer

    def _sender(self, request: aiocoap.Message) -> str:
        """The registered endpoint that sent this request; refused otherwise."""
        query = dict(q.split("=", 1) for q in request.opt.uri_query if "=" in q)
        ep = str(query.get("ep", ""))
        try:
            reg = self.server.registry.online(ep)
        except TinyMLaaSError:
            raise coap_error.NotFound(f"no registered endpoint '{ep}'") from None
        if self.server.security:
            if not self.server.same_identity(request, reg):
                raise coap_error.Forbidden(f"these credentials do not belong to endpoint '{ep}'")
        elif str(request.remote.hostinfo) != reg.address:
            raise coap_error.Forbidden(f"endpoint '{ep}' registered from another address")
        return ep

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        ep = self._sender(request)
        if request.opt.content_format not in (None, codec.OPAQUE):
            raise coap_error.UnsupportedContentFormat("the input tensor is opaque (42)")
        try:
            answer = await self.answer(ep, bytes(request.payload))
        except TinyMLaaSError as exc:
            return aiocoap.Message(code=_CODES.get(exc.status, Code.INTERNAL_SERVER_ERROR),
                                   payload=exc.message.encode())
        body: dict[str, Any] = answer.model_dump()
        return aiocoap.Message(code=Code.CHANGED, content_format=50, payload=json.dumps(body).encode())

"""One handler for the whole error family, answering RFC 9457 problem+json, and the
``responses`` declarations that put those answers into the OpenAPI schema."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tinymlaas.errors import TinyMLaaSError, TooLarge, Unauthenticated

PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details: what went wrong, in one sentence (``detail``)."""

    type: str = Field(examples=["urn:tinymlaas:error:not_found"])
    title: str
    status: int
    detail: str
    details: dict[str, Any] | None = Field(None, description="machine-readable specifics, when any")


_WHY = {
    400: "the request cannot be read",
    401: "no or unknown credentials",
    403: "not allowed",
    404: "no such resource",
    409: "conflicts with the current state",
    413: "the body is too large",
    422: "invalid input (names the field or the problem)",
    500: "the service failed (a plugin, a build or an emulator)",
    502: "the device answered with an error",
    504: "the device did not answer",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error answers a route can give."""
    return {code: {"model": Problem, "description": _WHY[code],
                   "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for code in codes}


async def tinymlaas_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TinyMLaaSError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(exc.to_problem(), status_code=exc.status, media_type=PROBLEM, headers=headers)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}"
    if first.get("type") == "json_invalid":
        at = first["loc"][-1] if isinstance(first["loc"][-1], int) else "?"
        reason = (first.get("ctx") or {}).get("error", first["msg"])
        detail = f"the request body is not valid JSON ({reason} at character {at})"
    body = Problem(type="urn:tinymlaas:error:invalid_input", title="invalid input", status=422,
                   detail=detail,
                   details={"errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors]})
    return JSONResponse(body.model_dump(), status_code=422, media_type=PROBLEM)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (no such route, method not allowed, a body it cannot parse)."""
    assert isinstance(exc, StarletteHTTPException)
    words = {404: "no such resource", 405: "method not allowed"}
    body = Problem(type=f"urn:tinymlaas:error:http_{exc.status_code}",
                   title=words.get(exc.status_code, "bad request"), status=exc.status_code,
                   detail=str(exc.detail))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=exc.status_code, media_type=PROBLEM,
                        headers=getattr(exc, "headers", None))


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413 before it is read whole: at once
    when its Content-Length says so, or as soon as a chunked body passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # answer now; the route sees the client go away
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(ClientDisconnect):
            await self.app(scope, counted, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = TooLarge(f"the request body is over the limit of {self.limit:,} bytes").to_problem()
        await JSONResponse(problem, status_code=413, media_type=PROBLEM)(scope, receive, send)


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_exception_handler(TinyMLaaSError, tinymlaas_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(BodyLimit, limit=max_body_bytes)

"""One handler for the whole error family, answering RFC 9457 problem+json, and the
``responses`` declarations that put those answers into the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tinymlaas.errors import TinyMLaaSError, Unauthenticated

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
    body = Problem(type="urn:tinymlaas:error:invalid_input", title="invalid input", status=422,
                   detail=f"{where}: {first['msg']}",
                   details={"errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors]})
    return JSONResponse(body.model_dump(), status_code=422, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TinyMLaaSError, tinymlaas_error)
    app.add_exception_handler(RequestValidationError, validation_error)

"""One handler for the whole error family, answering RFC 9457 problem+json."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tinymlaas.errors import TinyMLaaSError

PROBLEM = "application/problem+json"


async def tinymlaas_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TinyMLaaSError)
    return JSONResponse(exc.to_problem(), status_code=exc.status, media_type=PROBLEM)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    body = {
        "type": "urn:tinymlaas:error:invalid_input",
        "title": "invalid input",
        "status": 422,
        "detail": f"{where}: {first['msg']}",
        "details": {"errors": [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]},
    }
    return JSONResponse(body, status_code=422, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TinyMLaaSError, tinymlaas_error)
    app.add_exception_handler(RequestValidationError, validation_error)

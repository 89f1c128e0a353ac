"""Requests about a device registered with another service instance go to that instance.

Only what needs the device's live registration is routed (its detail with capabilities read
now, an inference, a firmware or model update, the stream of its results, relayed as it comes);
the registry's records are shared through the database and answered by any instance. A routed
request carries the caller's own credentials and is marked, so it is never routed twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import unquote

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from tinymlaas.api.handlers import PROBLEM
from tinymlaas.errors import DeviceUnreachable
from tinymlaas.services.cluster import Membership

ROUTED_BY = "x-tinymlaas-routed-by"
_LIVE = {"GET": re.compile(r"^/devices/(?P<ep>[^/]+)(?P<stream>/results)?$"),
         "POST": re.compile(r"^/devices/(?P<ep>[^/]+)/(?:infer|firmware|model)$")}
_DROP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}
TIMEOUT_S = 300.0


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def to_the_devices_instance(request: Request,
                                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        membership: Membership | None = getattr(request.app.state, "membership", None)
        pattern = _LIVE.get(request.method)
        found = pattern.match(request.url.path) if pattern else None
        if membership is None or found is None or ROUTED_BY in request.headers:
            return await call_next(request)
        target = await asyncio.to_thread(membership.route, unquote(found["ep"]))
        if target is None:
            return await call_next(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        headers[ROUTED_BY] = membership.name
        if found.groupdict().get("stream"):
            return await _relay(request, target, headers)
        try:
            async with httpx.AsyncClient(base_url=target, timeout=TIMEOUT_S) as client:
                reply = await client.request(request.method, request.url.path, params=request.query_params,
                                             content=await request.body(), headers=headers)
        except httpx.HTTPError as exc:
            problem = DeviceUnreachable(f"the instance this device is registered with ({target}) does not "
                                        f"answer: {type(exc).__name__}")
            return JSONResponse(problem.to_problem(), status_code=problem.status, media_type=PROBLEM)
        return Response(reply.content, status_code=reply.status_code,
                        headers={k: v for k, v in reply.headers.items() if k.lower() not in _DROP})


async def _relay(request: Request, target: str, headers: dict[str, str]) -> Response:
    """A stream from the device's instance, passed on as it comes (an SSE stream never ends by
    itself: it ends when either side closes)."""
    client = httpx.AsyncClient(base_url=target, timeout=httpx.Timeout(TIMEOUT_S, read=None))
    try:
        reply = await client.send(client.build_request(request.method, request.url.path,
                                                       params=request.query_params, headers=headers),
                                  stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        problem = DeviceUnreachable(f"the instance this device is registered with ({target}) does not "
                                    f"answer: {type(exc).__name__}")
        return JSONResponse(problem.to_problem(), status_code=problem.status, media_type=PROBLEM)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in reply.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the other instance went away: the stream ends here too
        finally:
            await reply.aclose()
            await client.aclose()

    return StreamingResponse(body(), status_code=reply.status_code,
                             headers={k: v for k, v in reply.headers.items() if k.lower() not in _DROP})

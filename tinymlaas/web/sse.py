"""Server-sent events for pages: htmx's SSE extension swaps the HTML each event carries.

A stream lasts until the page goes away (or, for one job, until it ends: :data:`DONE`). A
stream the service ends would be an error in the page, so the service bounds its shutdown
instead (uvicorn's ``timeout_graceful_shutdown``). If the connection drops, the browser
reconnects by itself (``retry``) and every connection starts with the current state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

RETRY_MS = 1000
#: How long the service waits for open streams when it stops (they do not end by themselves).
SHUTDOWN_GRACE_S = 3


def event(name: str, html: str) -> str:
    """One event; every line of the HTML is a ``data:`` line (the browser joins them)."""
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n\n"


#: The last event of a stream that is over (the page's ``sse-close`` names it).
DONE = event("done", "")


def stream(request: Request, poll: Callable[[], Awaitable[list[str]]], *,
           every_s: float = 1.0) -> StreamingResponse:
    """Calls ``poll`` every ``every_s`` and sends the events it returns (none: nothing changed);
    the stream ends after :data:`DONE`."""

    async def events() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        while not await request.is_disconnected():
            out = await poll()
            for e in out:
                yield e
            if DONE in out:
                return
            await asyncio.sleep(every_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

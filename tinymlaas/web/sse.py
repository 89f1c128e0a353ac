"""Server-sent events for pages: htmx's SSE extension swaps the HTML each event carries.

A stream lasts at most ``MAX_S`` and the browser reconnects by itself (``retry``), so no
stream holds the service open at shutdown for long; every (re)connection starts with the
current state, so nothing is missed in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

MAX_S = 25.0
RETRY_MS = 1000


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
        end = time.monotonic() + MAX_S
        while time.monotonic() < end and not await request.is_disconnected():
            out = await poll()
            for e in out:
                yield e
            if DONE in out:
                return
            await asyncio.sleep(every_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

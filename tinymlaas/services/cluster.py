"""Several service instances on one database: who is alive, and which instance a device is
registered with.

A device's LwM2M registration (its address, its OSCORE context and sequence numbers) lives in
the process it registered with, so it is not shared: a request about a device registered with
another live instance is routed to that instance's API (:mod:`tinymlaas.api.routing`). The
device registry (records, history, tags) is shared through the database, so a device that
re-registers with another instance after its own died is managed there, history and all.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from tinymlaas.errors import NotFound
from tinymlaas.plugins.base import Orchestrator
from tinymlaas.store import Store, now

log = logging.getLogger(__name__)


class Membership:
    """This instance among the others: announced at start, alive while it beats, gone at stop."""

    def __init__(self, store: Store, orchestrator: Orchestrator, name: str, api_url: str,
                 beat_s: float) -> None:
        self.store, self.orchestrator = store, orchestrator
        self.name, self.api_url, self.beat_s = name, api_url, beat_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.store.instances.announce, self.name, self.api_url)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="instance-beat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self.store.instances.leave, self.name)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.beat_s)
            try:
                await asyncio.to_thread(self.store.instances.beat, self.name)
            except Exception:  # the database may be away for a moment: try again next beat
                log.exception("instance %s: beat failed", self.name)

    def route(self, endpoint: str) -> str | None:
        """The API of the live instance ``endpoint`` is registered with, when that is not this
        one; None: serve it here (connected here, never registered, or its instance is gone)."""
        try:
            self.orchestrator.device(endpoint)
            return None
        except NotFound:
            pass
        home = self.store.instances.home(endpoint)
        if home is None or home == self.name:
            return None
        other = self.store.instances.get(home)
        if other is None or now() - other.seen_at > timedelta(seconds=3 * self.beat_s):
            return None
        return other.api_url

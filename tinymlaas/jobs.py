"""Long work off the event loop: each job runs its service in a thread.

``submit`` records the job and returns at once (the API answers 202 with the
job id); the job's state, step and progress are kept in the store, so
``GET /jobs/{id}`` shows them while it runs and after the process restarts.

``submit`` may be called from the loop or from any thread (sync API routes run
in a thread pool): the job is always started on the loop the runner was made on.

Two lanes: CPU-bound work (training, builds) runs in threads, ``concurrency``
at a time; waiting work (deployments: the device does the work) runs as
coroutines on the loop, ``io_concurrency`` at a time, so a fleet rollout is
neither serialized behind a build nor limited by the thread pool.

A job submitted as ``cancellable`` can be cancelled: a coroutine job is cancelled
on the loop; a thread job's next ``progress`` call raises :class:`JobCancelled`
(threads cannot be stopped from outside, so such a job reports progress often
and cleans up as it unwinds, e.g. kills its child process).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tinymlaas.errors import Conflict, TinyMLaaSError
from tinymlaas.models import Job, JobState
from tinymlaas.plugins.base import Progress
from tinymlaas.store import Store

log = logging.getLogger(__name__)

JobFn = Callable[[Progress], dict[str, Any]]
AsyncJobFn = Callable[[Progress], Awaitable[dict[str, Any]]]
_PROGRESS_EVERY_S = 0.25


class JobCancelled(Exception):
    """Raised by a cancelled job's progress callback, so the job unwinds."""


class JobRunner:
    def __init__(self, store: Store, concurrency: int = 1, io_concurrency: int = 64) -> None:
        """Made on the loop that will run the jobs (the API's lifespan)."""
        self.store = store
        self._loop = asyncio.get_running_loop()
        self._sem = asyncio.Semaphore(concurrency)
        self._io_sem = asyncio.Semaphore(io_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Cancellable jobs not yet ended: their cancel flag, and their task once spawned.
        self._cancel: dict[str, threading.Event] = {}
        self._coroutine_tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, job: Job, fn: JobFn, *, cancellable: bool = False) -> Job:
        """A blocking job, run in a thread."""
        return self._start(job, lambda p: asyncio.to_thread(fn, p), self._sem, cancellable, False)

    def submit_async(self, job: Job, fn: AsyncJobFn, *, cancellable: bool = False) -> Job:
        """A job that mostly waits (on devices), run on the loop."""
        return self._start(job, fn, self._io_sem, cancellable, True)

    def cancel(self, job_id: str) -> Job:
        """Ask a cancellable job to stop; it ends in state ``cancelled`` (from any thread)."""
        flag = self._cancel.get(job_id)
        if flag is None:
            job = self.store.job(job_id)  # NotFound for an unknown id
            if job.state in (JobState.succeeded, JobState.failed, JobState.cancelled):
                raise Conflict(f"job '{job_id}' has already ended ({job.state.value})")
            raise Conflict(f"a {job.kind} job cannot be cancelled")
        flag.set()
        task = self._coroutine_tasks.get(job_id)
        if task is not None:
            self._loop.call_soon_threadsafe(task.cancel)
        return self.store.job(job_id)

    def _start(self, job: Job, fn: AsyncJobFn, sem: asyncio.Semaphore, cancellable: bool,
               coroutine: bool) -> Job:
        if cancellable:
            self._cancel[job.id] = threading.Event()

        def spawn() -> None:
            task = self._loop.create_task(self._run(job.id, fn, sem), name=f"job-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if cancellable and coroutine:
                self._coroutine_tasks[job.id] = task

        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            spawn()
        else:
            self._loop.call_soon_threadsafe(spawn)
        return job

    async def _run(self, job_id: str, fn: AsyncJobFn, sem: asyncio.Semaphore) -> None:
        flag = self._cancel.get(job_id)
        try:
            async with sem:
                await self._run_held(job_id, fn, flag)
        except asyncio.CancelledError:
            if flag is None or not flag.is_set():
                raise
            self.store.update_job(job_id, state=JobState.cancelled, error="cancelled")
        finally:
            self._cancel.pop(job_id, None)
            self._coroutine_tasks.pop(job_id, None)

    async def _run_held(self, job_id: str, fn: AsyncJobFn, flag: threading.Event | None) -> None:
        if flag is not None and flag.is_set():
            self.store.update_job(job_id, state=JobState.cancelled, error="cancelled before it started")
            return
        self.store.update_job(job_id, state=JobState.running)
        last, last_step = 0.0, ""

        def progress(step: str, fraction: float) -> None:
            """Stored at once when the step changes (a waiting step must show while it waits);
            repeats of one step are throttled."""
            nonlocal last, last_step
            if flag is not None and flag.is_set():
                raise JobCancelled(job_id)
            if step != last_step or time.monotonic() - last >= _PROGRESS_EVERY_S:
                last, last_step = time.monotonic(), step
                self.store.update_job(job_id, step=step, progress=min(max(fraction, 0.0), 1.0))

        try:
            result = await fn(progress)
        except JobCancelled:
            self.store.update_job(job_id, state=JobState.cancelled, error="cancelled")
        except TinyMLaaSError as exc:
            self.store.update_job(job_id, state=JobState.failed, error=exc.message)
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("job %s crashed", job_id)
            self.store.update_job(job_id, state=JobState.failed,
                                  error=f"internal error: {type(exc).__name__}: {exc}")
        else:
            self.store.update_job(job_id, state=JobState.succeeded, progress=1.0, step="done",
                                  result=result)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let running jobs finish before shutdown; cancellable ones are asked to stop first."""
        for job_id in list(self._cancel):
            self.cancel(job_id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

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

Beyond one machine: training, evaluation and build jobs are submitted as a :class:`TaskCall` (a
task by name with JSON arguments, registered with :func:`task`) through :meth:`JobRunner.submit_task`:
this runner runs it in a thread; :class:`tinymlaas.distributed.BrokerRunner`, with the same
interface, sends it to worker processes. Either way the store is the source of truth: every job a
runner holds has a lease it renews (``lease_s``), a cancel is asked through the store when the job
is not this process's, and any runner reaps the jobs whose lease ran out (a dead instance's or
worker's): sent again while attempts are left, else failed with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinymlaas.errors import Conflict, InvalidInput, TinyMLaaSError
from tinymlaas.models import Job, JobState
from tinymlaas.models_workers import Reaped, TaskCall
from tinymlaas.plugins.base import Progress
from tinymlaas.store import Store

if TYPE_CHECKING:
    from tinymlaas.config import Settings

log = logging.getLogger(__name__)

JobFn = Callable[[Progress], dict[str, Any]]
AsyncJobFn = Callable[[Progress], Awaitable[dict[str, Any]]]
_PROGRESS_EVERY_S = 0.25


class JobCancelled(Exception):
    """Raised by a cancelled job's progress callback, so the job unwinds."""


TaskFn = Callable[["Store", "Settings", dict[str, Any], Progress], dict[str, Any]]
#: Told when the reaper fails a job of the task for good (e.g. the training record follows).
AbandonFn = Callable[["Store", dict[str, Any], str], None]
#: Told when the reaper takes a job of the task from its dead runner, before it is sent again or
#: failed: removes what the dead attempt left running on this machine; answers how much.
ReapedFn = Callable[["Settings", dict[str, Any]], int]


@dataclass(frozen=True)
class Task:
    fn: TaskFn
    on_abandon: AbandonFn | None = None
    on_reaped: ReapedFn | None = None


TASKS: dict[str, Task] = {}
#: The modules that register tasks: a worker imports them all before it takes a message.
TASK_MODULES = ("tinymlaas.services.builds", "tinymlaas.services.training", "tinymlaas.services.evaluation")


def task(name: str, *, on_abandon: AbandonFn | None = None,
         on_reaped: ReapedFn | None = None) -> Callable[[TaskFn], TaskFn]:
    """Register a function a job can run by name, in this process or in a worker."""
    def register(fn: TaskFn) -> TaskFn:
        TASKS[name] = Task(fn, on_abandon, on_reaped)
        return fn
    return register


def clear_leftovers(settings: Settings, reaped: list[Reaped]) -> None:
    """What the reaped jobs' dead attempts left running here (their tasks say how to find it)."""
    for r in reaped:
        entry = TASKS.get(r.call.task) if r.call else None
        if r.call is not None and entry is not None and entry.on_reaped is not None:
            try:
                removed = entry.on_reaped(settings, r.call.args)
            except Exception:  # a cleanup must not stop the reaping
                log.exception("job %s: removing what its dead attempt left failed", r.job_id)
                continue
            if removed:
                log.warning("job %s: removed %d leftover(s) of its dead attempt", r.job_id, removed)


def run_task(store: Store, settings: Settings, call: TaskCall, progress: Progress) -> dict[str, Any]:
    entry = TASKS.get(call.task)
    if entry is None:
        raise InvalidInput(f"no task '{call.task}' (known: {', '.join(sorted(TASKS))})")
    return entry.fn(store, settings, call.args, progress)


def outcome(exc: BaseException | None, result: dict[str, Any] | None, job_id: str) -> dict[str, Any]:
    """The job's last write: the same words whichever process ran it."""
    if isinstance(exc, JobCancelled):
        return {"state": JobState.cancelled.value, "error": "cancelled"}
    if isinstance(exc, TinyMLaaSError):
        return {"state": JobState.failed.value, "error": exc.message}
    if exc is not None:  # a bug must still end the job, visibly
        log.error("job %s crashed", job_id, exc_info=exc)
        return {"state": JobState.failed.value, "error": f"internal error: {type(exc).__name__}: {exc}"}
    return {"state": JobState.succeeded.value, "progress": 1.0, "step": "done", "result": result}


def abandon(store: Store, reaped: list[Reaped]) -> None:
    """Tell the tasks of the jobs failed for good, so their own records end too."""
    for r in reaped:
        entry = TASKS.get(r.call.task) if r.call else None
        if not r.retry and r.call is not None and entry is not None and entry.on_abandon is not None:
            entry.on_abandon(store, r.call.args, r.reason)


class JobRunner:
    """The in-process runner: the embedded default, and the seam's first implementation."""

    def __init__(self, store: Store, concurrency: int = 1, io_concurrency: int = 64, *,
                 settings: Settings | None = None, owner: str = "local", lease_s: float = 30.0) -> None:
        """Made on the loop that will run the jobs (the API's lifespan). ``settings``: what tasks
        run with; ``owner``: the name this process holds its jobs' leases under."""
        self.store = store
        self.settings = settings
        self.owner, self.lease_s = owner, lease_s
        self._loop = asyncio.get_running_loop()
        self._sem = asyncio.Semaphore(concurrency)
        self._io_sem = asyncio.Semaphore(io_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Cancellable jobs not yet ended: their cancel flag, and their task once spawned.
        self._cancel: dict[str, threading.Event] = {}
        self._coroutine_tasks: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()  # jobs of this runner not yet ended: their leases are renewed
        self._beat = self._loop.create_task(self._heartbeat(), name="job-leases")

    def submit_task(self, job: Job, call: TaskCall, *, cancellable: bool = False) -> Job:
        """Distributable work: here, in a thread (a worker's runner sends it instead)."""
        settings = self.settings
        if settings is None:
            raise RuntimeError("this runner was made without settings, so it cannot run tasks")
        return self.submit(job, lambda p: run_task(self.store, settings, call, p), cancellable=cancellable)

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
            if self.store.leases.request_cancel(job_id):  # another process's: its runner is told
                return self.store.job(job_id)
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
        self.store.leases.track(job.id, self.owner, self.lease_s, cancellable=cancellable)
        self._held.add(job.id)

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
            self._held.discard(job_id)
            self.store.leases.release(job_id)

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
        except Exception as exc:
            self.store.update_job(job_id, **outcome(exc, None, job_id))
        else:
            self.store.update_job(job_id, **outcome(None, result, job_id))

    async def _heartbeat(self) -> None:
        """Renew this runner's leases, pass on cancels asked elsewhere, reap dead runners' jobs."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                asked = await asyncio.to_thread(self.store.leases.renew, self.owner, list(self._held),
                                                self.lease_s)
                for job_id in asked:
                    if job_id in self._cancel:
                        self.cancel(job_id)
                await asyncio.to_thread(self.reap)
            except Exception:  # the database may be away for a moment: try again next beat
                log.exception("renewing job leases failed")

    def reap(self) -> list[Reaped]:
        """Fail the jobs of runners that stopped answering (this runner cannot send tasks)."""
        reaped = self.store.leases.reap(can_send=False)
        abandon(self.store, reaped)
        return reaped

    async def drain(self, timeout: float = 30.0) -> None:
        """Let running jobs finish before shutdown; cancellable ones are asked to stop first."""
        for job_id in list(self._cancel):
            self.cancel(job_id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        self._beat.cancel()

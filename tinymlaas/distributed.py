"""Jobs on worker processes: Dramatiq over Redis.

With ``cluster.broker_url`` set, the service's runner is a :class:`BrokerRunner`: a training,
evaluation or build job (a :class:`~tinymlaas.models_workers.TaskCall`) is recorded in the store
with its lease and sent to the broker as (job id, attempt); ``tinymlaas worker`` processes, on this
machine or others sharing the database and the data directory (artifacts, signing key), claim it,
run it with their own Docker engine and write state, step, progress and outcome to the store,
exactly as the in-process runner does, so the API shows a job the same way either way.

Dramatiq delivers each message to one worker and hands a dead worker's unacknowledged messages to
another; the store decides whether a delivery may run (:meth:`JobLeases.claim`), so a message
delivered twice runs once. A worker renews its leases every third of ``cluster.lease_s``; when a
worker dies, the first process that reaps (a worker or an instance) sends the job again while
attempts are left, else fails it with the reason.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from typing import Any, ClassVar

from tinymlaas.config import Settings
from tinymlaas.errors import TinyMLaaSError
from tinymlaas.jobs import TASK_MODULES, JobCancelled, JobRunner, abandon, clear_leftovers, outcome, run_task
from tinymlaas.models import Job, JobState
from tinymlaas.models_workers import Claim, Reaped, TaskCall
from tinymlaas.store import Store

log = logging.getLogger(__name__)

QUEUE = "jobs"
ACTOR = "tinymlaas.job"
NAMESPACE = "tinymlaas"
_PROGRESS_EVERY_S = 0.25


class BrokerUnavailable(TinyMLaaSError):
    """The broker does not answer: the job could not be handed to a worker."""

    status: ClassVar[int] = 503
    exit_code: ClassVar[int] = 12
    code: ClassVar[str] = "broker_unavailable"


class JobQueue:
    """Messages to the workers' queue (the sending side needs no actor)."""

    def __init__(self, broker_url: str) -> None:
        from dramatiq.brokers.redis import RedisBroker

        # No Dramatiq middleware: no retries on an error (a failed build is failed, not retried),
        # no time limit (builders and trainings have their own); dead workers are our reaper's.
        self.broker = RedisBroker(url=broker_url, namespace=NAMESPACE,  # type: ignore[no-untyped-call]
                                  middleware=[])
        self.broker.declare_queue(QUEUE)
        self.url = broker_url

    def send(self, job_id: str, attempt: int) -> None:
        import dramatiq
        import redis

        try:
            self.broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name=ACTOR, args=(job_id, attempt),
                                                 kwargs={}, options={}))
        except (redis.RedisError, dramatiq.errors.ConnectionError) as exc:
            raise BrokerUnavailable(f"the job broker does not answer ({type(exc).__name__}: {exc})") from exc

    def held(self) -> set[tuple[str, int]]:
        """(job id, attempt) of every message the broker holds for the workers: queued, or
        delivered and not yet acknowledged (a worker acknowledges when its job has ended)."""
        import dramatiq
        import redis

        try:
            raw = self.broker.client.hvals(f"{NAMESPACE}:{QUEUE}.msgs")
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the job broker does not answer ({type(exc).__name__}: {exc})") from exc
        out = set()
        for data in raw:
            try:
                job_id, attempt = dramatiq.Message.decode(data if isinstance(data, bytes) else
                                                          str(data).encode()).args
                out.add((str(job_id), int(attempt)))
            except (ValueError, TypeError, dramatiq.errors.DecodeError):
                continue  # not a message of ours
        return out

    def close(self) -> None:
        self.broker.close()


class BrokerRunner(JobRunner):
    """The seam's second implementation: tasks go to workers; waiting work (deployments, which
    need this instance's device connections) still runs here."""

    def __init__(self, store: Store, settings: Settings, broker_url: str, **kwargs: Any) -> None:
        super().__init__(store, settings=settings, **kwargs)
        self.queue = JobQueue(broker_url)
        self.attempts = settings.cluster.attempts

    def submit_task(self, job: Job, call: TaskCall, *, cancellable: bool = False) -> Job:
        self.store.leases.enqueue(job.id, call, cancellable=cancellable, max_attempts=self.attempts)
        try:
            self.queue.send(job.id, 1)
        except BrokerUnavailable as exc:
            self.store.update_job(job.id, state=JobState.failed, error=exc.message)
            raise
        return self.store.job(job.id)

    def reap(self) -> list[Reaped]:
        assert self.settings is not None  # a BrokerRunner is made with them
        return reap_and_resend(self.store, self.queue, self.lease_s, self.settings)

    async def drain(self, timeout: float = 30.0) -> None:
        await super().drain(timeout)
        self.queue.close()


def reap_and_resend(store: Store, queue: JobQueue, lease_s: float, settings: Settings) -> list[Reaped]:
    """Jobs whose worker died: what their attempt left running here removed, then sent again or
    failed; jobs waiting for a worker longer than a lease whose message the broker lost: sent
    again."""
    reaped = store.leases.reap(can_send=True)
    clear_leftovers(settings, reaped)
    for r in reaped:
        if r.retry:
            log.warning("job %s: %s; sending attempt %d", r.job_id, r.reason, r.attempt)
            queue.send(r.job_id, r.attempt)
        else:
            log.warning("job %s failed: %s", r.job_id, r.reason)
    abandon(store, reaped)
    lost = store.leases.resend_unheld(queue.held, lease_s)
    for r in lost:
        log.warning("job %s: %s", r.job_id, r.reason)
        queue.send(r.job_id, r.attempt)
    return reaped + lost


class Worker:
    """One worker process: Dramatiq threads run the jobs it claims; its main loop renews their
    leases, passes on cancels and reaps dead runners' jobs."""

    def __init__(self, settings: Settings, name: str, broker_url: str, threads: int = 1) -> None:
        import dramatiq

        for module in TASK_MODULES:
            importlib.import_module(module)
        self.settings, self.name = settings, name
        self.lease_s = settings.cluster.lease_s
        self.store = Store(settings.db_url, settings.artifacts_dir)
        self.queue = JobQueue(broker_url)
        self._running: dict[str, tuple[int, threading.Event]] = {}
        self._lock = threading.Lock()
        dramatiq.Actor(self.perform, broker=self.queue.broker, actor_name=ACTOR, queue_name=QUEUE,
                       priority=0, options={})
        self._worker = dramatiq.Worker(self.queue.broker, worker_threads=threads)
        # Take a message only for a free thread: a busy worker leaves the next job to an idle one.
        self._worker.queue_prefetch = threads

    def perform(self, job_id: str, attempt: int) -> None:
        """Dramatiq's actor: run attempt ``attempt`` of a job if the store says it is ours."""
        claim = self.store.leases.claim(job_id, attempt, self.name, self.lease_s)
        if claim is None:
            log.info("job %s attempt %d is not to run (already claimed, reaped, cancelled or ended)",
                     job_id, attempt)
            return
        log.info("job %s (%s) attempt %d: running", job_id, claim.call.task, attempt)
        flag = threading.Event()
        with self._lock:
            self._running[job_id] = (attempt, flag)
        try:
            fields = self._run(claim, flag)
        finally:
            with self._lock:
                self._running.pop(job_id, None)
        if self.store.leases.finish(job_id, self.name, attempt, **fields):
            log.info("job %s attempt %d: %s", job_id, attempt, fields["state"])
        else:
            log.warning("job %s attempt %d ended after it was reaped; its outcome is dropped",
                        job_id, attempt)

    def _run(self, claim: Claim, flag: threading.Event) -> dict[str, Any]:
        last = 0.0

        def progress(step: str, fraction: float) -> None:
            nonlocal last
            if flag.is_set():
                raise JobCancelled(claim.job_id)
            if time.monotonic() - last >= _PROGRESS_EVERY_S:
                last = time.monotonic()
                self.store.update_job(claim.job_id, step=step, progress=min(max(fraction, 0.0), 1.0))

        try:
            result = run_task(self.store, self.settings, claim.call, progress)
        except Exception as exc:
            return outcome(exc, None, claim.job_id)
        return outcome(None, result, claim.job_id)

    def beat(self) -> None:
        """Renew this worker's leases, pass on cancels, reap (and send again) dead runners' jobs."""
        with self._lock:
            running = dict(self._running)
        for job_id in self.store.leases.renew(self.name, list(running), self.lease_s):
            running[job_id][1].set()
        reap_and_resend(self.store, self.queue, self.lease_s, self.settings)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: take jobs; then finish the running ones (leases still renewed)."""
        self._worker.start()
        log.info("worker %s takes jobs from %s", self.name, self.queue.url)
        beating = threading.Event()

        def heartbeat() -> None:
            while not beating.wait(self.lease_s / 3):
                try:
                    self.beat()
                except Exception:  # the database or broker may be away for a moment
                    log.exception("worker %s: renewing leases failed", self.name)

        beater = threading.Thread(target=heartbeat, name="leases", daemon=True)
        beater.start()
        stop.wait()
        log.info("worker %s stops: finishing its running jobs", self.name)
        self._worker.stop()
        beating.set()
        beater.join()
        self.queue.close()
        self.store.close()


def serve_worker(settings: Settings, name: str, threads: int) -> None:
    """``tinymlaas worker``: run until SIGTERM or SIGINT."""
    if not settings.cluster.broker_url:
        from tinymlaas.errors import InvalidInput

        raise InvalidInput("a worker needs a broker: set TINYMLAAS_CLUSTER__BROKER_URL (redis://...)")
    worker = Worker(settings, name, settings.cluster.broker_url, threads)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.run(stop)

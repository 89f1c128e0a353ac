"""Work shared by several processes: job leases and the service instances on one database.

A job runner (a service instance for its in-process jobs, a worker for the jobs it claimed)
holds a lease on each job it runs and renews it; a job whose lease ran out lost its runner and is
sent again (a task another process can run, attempts left) or failed with the reason, by whichever
process reaps first. The store is the source of truth: a message delivered twice, or a worker
that comes back after its job was reaped, changes nothing (each claim and each end is checked
against the attempt it belongs to).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from tinymlaas.errors import Conflict
from tinymlaas.models import JobState
from tinymlaas.models_workers import Claim, Instance, Reaped, TaskCall
from tinymlaas.store.tables import Base, JobRow

if TYPE_CHECKING:
    from tinymlaas.store import Store

ENDED = (JobState.succeeded.value, JobState.failed.value, JobState.cancelled.value)
UNFINISHED = (JobState.queued.value, JobState.running.value)


class JobLeaseRow(Base):
    __tablename__ = "job_leases"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    #: The task to send again (a job of a worker); None: an in-process job (its closure died with it).
    task: Mapped[dict[str, Any] | None]
    cancellable: Mapped[bool] = mapped_column(default=False)
    owner: Mapped[str | None] = mapped_column(String, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    lease_until: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)


class InstanceRow(Base):
    __tablename__ = "service_instances"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_url: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class DeviceHomeRow(Base):
    __tablename__ = "device_homes"

    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime]


def _now() -> datetime:
    from tinymlaas.store import now

    return now()


class JobLeases:
    """Who runs which job until when; cancels asked from any process."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def track(self, job_id: str, owner: str, lease_s: float, *, cancellable: bool) -> None:
        """An in-process job of ``owner``: failed by any instance if ``owner`` stops renewing."""
        with self.store.tx() as db:
            db.add(JobLeaseRow(job_id=job_id, task=None, cancellable=cancellable, owner=owner,
                               attempts=1, max_attempts=1,
                               lease_until=_now() + timedelta(seconds=lease_s)))

    def enqueue(self, job_id: str, call: TaskCall, *, cancellable: bool, max_attempts: int) -> None:
        """A job for a worker: its task is kept so that it can be sent again."""
        with self.store.tx() as db:
            db.add(JobLeaseRow(job_id=job_id, task=call.model_dump(mode="json"), cancellable=cancellable,
                               owner=None, attempts=0, max_attempts=max_attempts, lease_until=None))

    def claim(self, job_id: str, attempt: int, owner: str, lease_s: float) -> Claim | None:
        """Attempt ``attempt`` of a queued job is ``owner``'s; None: not this attempt's to run
        (delivered twice, reaped and sent again, cancelled, or already ended)."""
        with self.store.tx() as db:
            lease = db.get(JobLeaseRow, job_id, with_for_update=True)
            job = db.get(JobRow, job_id, with_for_update=True)
            if lease is None or job is None or lease.task is None or job.state != JobState.queued.value \
                    or lease.attempts != attempt - 1:
                return None
            t = _now()
            lease.owner, lease.attempts, lease.lease_until = owner, attempt, t + timedelta(seconds=lease_s)
            job.state, job.updated_at = JobState.running.value, t
            return Claim(job_id=job_id, attempt=attempt, call=TaskCall.model_validate(lease.task))

    def renew(self, owner: str, job_ids: list[str], lease_s: float) -> set[str]:
        """Extend ``owner``'s leases on ``job_ids``; answers those asked to stop."""
        if not job_ids:
            return set()
        mine: ColumnElement[bool] = (JobLeaseRow.owner == owner) & JobLeaseRow.job_id.in_(job_ids)
        with self.store.tx() as db:
            db.execute(update(JobLeaseRow).where(mine)
                       .values(lease_until=_now() + timedelta(seconds=lease_s)))
            return set(db.scalars(select(JobLeaseRow.job_id).where(mine, JobLeaseRow.cancel_requested)))

    def finish(self, job_id: str, owner: str, attempt: int, **fields: Any) -> bool:
        """End a job with ``fields`` (state, error, result, ...) if ``owner`` still holds this
        attempt; False: it was reaped meanwhile and its outcome belongs to another attempt."""
        with self.store.tx() as db:
            lease = db.get(JobLeaseRow, job_id, with_for_update=True)
            if lease is None or lease.owner != owner or lease.attempts != attempt:
                return False
            lease.owner, lease.lease_until = None, None
            db.execute(update(JobRow).where(JobRow.id == job_id).values(**fields, updated_at=_now()))
            return True

    def release(self, job_id: str) -> None:
        """An in-process job ended (its runner wrote the outcome): nothing left to renew."""
        with self.store.tx() as db:
            db.execute(update(JobLeaseRow).where(JobLeaseRow.job_id == job_id)
                       .values(owner=None, lease_until=None))

    def request_cancel(self, job_id: str) -> bool:
        """Ask the job's runner, wherever it is, to stop; a queued job of a worker is cancelled at
        once (no worker will claim it). False: the job has no lease (nobody could be asked)."""
        with self.store.tx() as db:
            lease = db.get(JobLeaseRow, job_id, with_for_update=True)
            job = db.get(JobRow, job_id, with_for_update=True)
            if lease is None or job is None:
                return False
            if job.state in ENDED:
                raise Conflict(f"job '{job_id}' has already ended ({job.state})")
            if not lease.cancellable:
                raise Conflict(f"a {job.kind} job cannot be cancelled")
            if job.state == JobState.queued.value and lease.task is not None:
                job.state, job.error = JobState.cancelled.value, "cancelled before it started"
                job.updated_at = _now()
            else:
                lease.cancel_requested = True
            return True

    def reap(self, *, can_send: bool) -> list[Reaped]:
        """Jobs whose runner's lease ran out: back to queued to be sent again (a worker's task with
        attempts left, and only by a process that can send), else failed with the reason."""
        t = _now()
        out: list[Reaped] = []
        with self.store.tx() as db:
            rows = db.execute(
                select(JobLeaseRow, JobRow).join(JobRow, JobRow.id == JobLeaseRow.job_id)
                .where(JobLeaseRow.owner.is_not(None), JobLeaseRow.lease_until < t,
                       JobRow.state.in_(UNFINISHED))
                .with_for_update(skip_locked=True)).all()
            for lease, job in rows:
                silent = (t - lease.lease_until).total_seconds() if lease.lease_until else 0.0
                who = "worker" if lease.task is not None else "service instance"
                reason = (f"its {who} '{lease.owner}' stopped answering during attempt {lease.attempts} "
                          f"of {lease.max_attempts} (lease expired {silent:.0f} s ago)")
                retry = lease.task is not None and lease.attempts < lease.max_attempts
                if retry and not can_send:
                    continue
                lease.owner, lease.lease_until = None, None
                if retry:
                    job.state, job.step, job.progress = JobState.queued.value, f"retrying: {reason}", 0.0
                else:
                    job.state, job.error = JobState.failed.value, reason
                job.updated_at = t
                out.append(Reaped(job_id=job.id, attempt=lease.attempts + 1, retry=retry, reason=reason,
                                  call=TaskCall.model_validate(lease.task) if lease.task else None))
        return out

    def resend_unheld(self, held: Callable[[], set[tuple[str, int]]], older_than_s: float) -> list[Reaped]:
        """Workers' jobs queued for longer than ``older_than_s`` whose message the broker no longer
        holds (``held()``: the (job, attempt) pairs of the messages it does, asked only when such
        jobs exist; a Redis that lost its data, say): their step says so; the caller sends them
        again. A message that was not lost after all is delivered twice, and the second delivery's
        claim finds the attempt taken."""
        t = _now()
        out: list[Reaped] = []
        with self.store.tx() as db:
            rows = db.execute(
                select(JobLeaseRow, JobRow).join(JobRow, JobRow.id == JobLeaseRow.job_id)
                .where(JobLeaseRow.task.is_not(None), JobLeaseRow.owner.is_(None),
                       JobRow.state == JobState.queued.value,
                       JobRow.updated_at < t - timedelta(seconds=older_than_s))
                .with_for_update(skip_locked=True)).all()
            holds = held() if rows else set()
            for lease, job in rows:
                attempt = lease.attempts + 1
                if (job.id, attempt) in holds:
                    continue
                reason = f"the broker lost the message of attempt {attempt}; sent again"
                job.step, job.updated_at = reason, t
                out.append(Reaped(job_id=job.id, attempt=attempt, retry=True, reason=reason,
                                  call=TaskCall.model_validate(lease.task)))
        return out

    def fail_local(self, owner: str | None, reason: str) -> int:
        """At an instance's start: its in-process jobs of before can never finish. ``owner``
        None: the only instance on this database, so every in-process job (and every job of
        before leases) is its own. Jobs of workers are left to the workers and the reaper."""
        with self.store.tx() as db:
            remote = select(JobLeaseRow.job_id).where(JobLeaseRow.task.is_not(None))
            mine = select(JobLeaseRow.job_id).where(JobLeaseRow.task.is_(None), JobLeaseRow.owner == owner)
            which = JobRow.id.not_in(remote) if owner is None else JobRow.id.in_(mine)
            result = db.execute(update(JobRow).where(JobRow.state.in_(UNFINISHED), which)
                                .values(state=JobState.failed.value, error=reason, updated_at=_now()))
            return int(getattr(result, "rowcount", 0) or 0)


class Instances:
    """Service instances sharing this database, and the instance each device is registered with."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def announce(self, name: str, api_url: str) -> None:
        t = _now()
        with self.store.tx() as db:
            row = db.get(InstanceRow, name)
            if row is None:
                db.add(InstanceRow(name=name, api_url=api_url, started_at=t, seen_at=t))
            else:
                row.api_url, row.started_at, row.seen_at = api_url, t, t

    def beat(self, name: str) -> None:
        with self.store.tx() as db:
            db.execute(update(InstanceRow).where(InstanceRow.name == name).values(seen_at=_now()))

    def leave(self, name: str) -> None:
        with self.store.tx() as db:
            db.execute(delete(InstanceRow).where(InstanceRow.name == name))

    def all(self) -> list[Instance]:
        with self.store.read() as db:
            return [Instance(name=r.name, api_url=r.api_url, started_at=r.started_at, seen_at=r.seen_at)
                    for r in db.scalars(select(InstanceRow).order_by(InstanceRow.name))]

    def get(self, name: str) -> Instance | None:
        with self.store.read() as db:
            r = db.get(InstanceRow, name)
            return None if r is None else Instance(name=r.name, api_url=r.api_url, started_at=r.started_at,
                                                   seen_at=r.seen_at)

    def set_homes(self, endpoints: list[str], instance: str) -> None:
        """``endpoints`` registered with ``instance`` (the last registration wins)."""
        with self.store.tx() as db:
            for endpoint in endpoints:
                row = db.get(DeviceHomeRow, endpoint)
                if row is None:
                    db.add(DeviceHomeRow(endpoint=endpoint, instance=instance, since=_now()))
                elif row.instance != instance:
                    row.instance, row.since = instance, _now()

    def mark_offline(self, instance: str) -> None:
        """At an instance's start: the devices that were registered with it are not connected."""
        from tinymlaas.store.devices import DeviceRow

        with self.store.tx() as db:
            db.execute(update(DeviceRow).where(DeviceRow.endpoint.in_(
                select(DeviceHomeRow.endpoint).where(DeviceHomeRow.instance == instance)))
                .values(online=False))

    def home(self, endpoint: str) -> str | None:
        with self.store.read() as db:
            row = db.get(DeviceHomeRow, endpoint)
            return None if row is None else row.instance

"""Job leases: the store decides who runs which attempt, so duplicate deliveries, late workers and
dead runners cannot leave a job running forever or run it twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tinymlaas.errors import Conflict
from tinymlaas.models import JobState
from tinymlaas.models_workers import TaskCall
from tinymlaas.store import Store

CALL = TaskCall(task="build", args={"build_id": "b1"})


def test_one_claim_per_attempt_and_a_late_worker_changes_nothing(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")
    job = store.new_job("build")
    store.leases.enqueue(job.id, CALL, cancellable=False, max_attempts=2)
    claim = store.leases.claim(job.id, 1, "w1", lease_s=0.2)
    assert claim is not None and claim.call == CALL and store.job(job.id).state == JobState.running
    assert store.leases.claim(job.id, 1, "w2", lease_s=5) is None  # delivered twice: runs once
    assert store.leases.renew("w1", [job.id], lease_s=0.2) == set()
    time.sleep(0.3)  # w1 stops renewing
    [reaped] = store.leases.reap(can_send=True)
    assert (reaped.job_id, reaped.attempt, reaped.retry) == (job.id, 2, True) and reaped.call == CALL
    assert "worker 'w1' stopped answering during attempt 1 of 2" in reaped.reason
    assert store.job(job.id).state == JobState.queued and store.job(job.id).step.startswith("retrying")
    assert store.leases.claim(job.id, 2, "w2", lease_s=0.2) is not None
    assert not store.leases.finish(job.id, "w1", 1, state="succeeded")  # w1 came back: too late
    time.sleep(0.3)
    [last] = store.leases.reap(can_send=True)
    assert not last.retry and store.job(job.id).state == JobState.failed
    assert "attempt 2 of 2" in (store.job(job.id).error or "")
    store.close()


def test_only_a_process_that_can_send_retries(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")
    job = store.new_job("build")
    store.leases.enqueue(job.id, CALL, cancellable=False, max_attempts=2)
    store.leases.claim(job.id, 1, "w1", lease_s=0.1)
    time.sleep(0.2)
    assert store.leases.reap(can_send=False) == [] and store.job(job.id).state == JobState.running
    local = store.new_job("deploy-firmware")
    store.leases.track(local.id, "api-1", 0.1, cancellable=False)
    store.update_job(local.id, state=JobState.running)
    time.sleep(0.2)
    [dead] = store.leases.reap(can_send=False)  # an instance's own job cannot be sent anywhere
    assert dead.job_id == local.id and not dead.retry
    assert "service instance 'api-1' stopped answering" in (store.job(local.id).error or "")
    store.close()


def test_queued_jobs_whose_message_is_gone_are_sent_again_once_a_lease_has_passed(
        database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")
    held, lost, running = store.new_job("build"), store.new_job("build"), store.new_job("build")
    for job in (held, lost, running):
        store.leases.enqueue(job.id, CALL, cancellable=False, max_attempts=2)
    store.leases.claim(running.id, 1, "w1", lease_s=30)
    assert store.leases.resend_unheld(lambda: {(held.id, 1)}, older_than_s=0.2) == []  # too young to judge
    time.sleep(0.3)
    [again] = store.leases.resend_unheld(lambda: {(held.id, 1)}, older_than_s=0.2)
    assert (again.job_id, again.attempt, again.retry, again.call) == (lost.id, 1, True, CALL)
    assert store.job(lost.id).state == JobState.queued
    assert store.job(lost.id).step == "the broker lost the message of attempt 1; sent again"
    assert store.leases.resend_unheld(lambda: {(held.id, 1)}, older_than_s=0.2) == []  # just sent
    assert store.leases.claim(lost.id, 1, "w2", lease_s=30) is not None  # the new message runs it
    store.close()


def test_cancel_through_the_store(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")
    queued, running, fixed = (store.new_job("train") for _ in range(3))
    for job in (queued, running):
        store.leases.enqueue(job.id, CALL, cancellable=True, max_attempts=1)
    store.leases.enqueue(fixed.id, CALL, cancellable=False, max_attempts=1)
    assert store.leases.request_cancel(queued.id)
    assert store.job(queued.id).state == JobState.cancelled
    assert store.leases.claim(queued.id, 1, "w1", 5) is None  # no worker runs a cancelled job
    store.leases.claim(running.id, 1, "w1", 5)
    assert store.leases.request_cancel(running.id)
    assert store.leases.renew("w1", [running.id], 5) == {running.id}  # its worker is told
    with pytest.raises(Conflict, match="cannot be cancelled"):
        store.leases.request_cancel(fixed.id)
    with pytest.raises(Conflict, match="already ended"):
        store.leases.request_cancel(queued.id)
    assert not store.leases.request_cancel(store.new_job("x").id)  # nobody to ask
    store.close()


def test_an_instance_fails_only_its_own_jobs_at_start(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")
    mine, other, remote, legacy = (store.new_job("k") for _ in range(4))
    store.leases.track(mine.id, "api-1", 30, cancellable=False)
    store.leases.track(other.id, "api-2", 30, cancellable=False)
    store.leases.enqueue(remote.id, CALL, cancellable=False, max_attempts=1)
    assert store.leases.fail_local("api-1", "restarted") == 1
    assert [store.job(j.id).state for j in (mine, other, remote, legacy)] == [
        JobState.failed, JobState.queued, JobState.queued, JobState.queued]
    assert store.leases.fail_local(None, "restarted") == 2  # the only instance: all but the workers'
    assert store.job(remote.id).state == JobState.queued
    store.close()

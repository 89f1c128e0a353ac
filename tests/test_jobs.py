"""Jobs end visibly: success with a result, failure with the error's message."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tinymlaas.errors import BuildFailed
from tinymlaas.jobs import JobRunner
from tinymlaas.models import JobState
from tinymlaas.plugins.base import Progress
from tinymlaas.store import Store


def _run(store: Store, fn) -> str:  # noqa: ANN001 - any job function
    async def go() -> str:
        runner = JobRunner(store)
        job = runner.submit(store.new_job("t"), fn)
        await runner.drain()
        return job.id

    return asyncio.run(go())


def test_success_failure_and_crash(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "a")

    def ok(progress: Progress) -> dict:
        progress("half", 0.5)
        return {"answer": 42}

    def refused(progress: Progress) -> dict:
        raise BuildFailed("the linker said no")

    def crashed(progress: Progress) -> dict:
        return {}["missing"]

    good = store.job(_run(store, ok))
    assert (good.state, good.progress, good.result) == (JobState.succeeded, 1.0, {"answer": 42})
    bad = store.job(_run(store, refused))
    assert (bad.state, bad.error, bad.result) == (JobState.failed, "the linker said no", None)
    boom = store.job(_run(store, crashed))
    assert boom.state == JobState.failed and boom.error.startswith("internal error: KeyError")
    store.close()


def test_waiting_jobs_have_their_own_lane(database_url: str, tmp_path: Path) -> None:
    """A deployment waiting on a device does not hold up a build, nor the other way round."""
    store = Store(database_url, tmp_path / "a")
    order: list[str] = []

    async def go() -> tuple[str, str]:
        runner = JobRunner(store, concurrency=1, io_concurrency=8)
        device_done = asyncio.Event()

        async def deploy(progress: Progress) -> dict:
            order.append("deploy waits")
            await device_done.wait()
            order.append("deploy done")
            return {}

        def build(progress: Progress) -> dict:
            order.append("build")
            return {}

        waiting = runner.submit_async(store.new_job("deploy"), deploy)
        built = runner.submit(store.new_job("build"), build)
        while store.job(built.id).state != JobState.succeeded:
            await asyncio.sleep(0.01)
        device_done.set()
        await runner.drain()
        return waiting.id, built.id

    waiting, built = asyncio.run(go())
    assert order == ["deploy waits", "build", "deploy done"]
    assert store.job(waiting).state == store.job(built).state == JobState.succeeded
    store.close()


def test_a_new_step_is_stored_at_once_repeats_are_throttled(database_url: str, tmp_path: Path) -> None:
    """Steps that follow each other quickly (reading, then a long download) all show."""
    store = Store(database_url, tmp_path / "a")
    seen: list[str | None] = []

    async def go() -> str:
        runner = JobRunner(store, io_concurrency=1)
        shown = asyncio.Event()

        async def deploy(progress: Progress) -> dict:
            progress("reading the device", 0.02)
            progress("device downloads the package", 0.1)  # 0 ms later: a new step
            seen.append(store.job(job.id).step)
            for i in range(50):  # the same step, often: throttled
                progress("device downloads the package", 0.1 + i / 1000)
            shown.set()
            return {}

        job = runner.submit_async(store.new_job("deploy"), deploy)
        await shown.wait()
        await runner.drain()
        return job.id

    asyncio.run(go())
    assert seen == ["device downloads the package"]
    store.close()

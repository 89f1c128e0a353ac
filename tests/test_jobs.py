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


def test_success_failure_and_crash(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", tmp_path / "a")

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

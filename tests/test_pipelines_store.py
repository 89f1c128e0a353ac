"""Pipeline runs and stages in the store, on SQLite and PostgreSQL: created with their stages,
changed stage by stage, re-run from the failed stage, failed by a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.models import JobState
from tinymlaas.store import Store, now, pipelines


def test_a_run_keeps_its_stages_and_is_re_run_from_the_failed_one(database_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipelines, "MAX_LOG_LINES", 3)
    store = Store(database_url, tmp_path / "artifacts")
    try:
        job = store.new_job("pipeline")
        run = store.pipelines.create(run_id="r1", name="iris-lab", filename="p.yaml", source="name: x\n",
                                     job_id=job.id, created_by="op", stages=["dataset", "train", "compile"])
        assert [s.name for s in run.stages] == ["dataset", "train", "compile"]
        assert run.state == "running" and run.attempt == 1 and {s.state for s in run.stages} == {"pending"}

        store.pipelines.stage("r1", "dataset", state="succeeded", attempt=1, started_at=now(), ended_at=now(),
                              artifacts={"dataset": "iris", "version": 2}, line="locked iris:2")
        train = store.pipelines.stage("r1", "train", state="running", attempt=1, job_id="j-train")
        assert train.job_ids == ["j-train"]
        for i in range(5):
            store.pipelines.stage("r1", "train", line=f"epoch {i}")
        store.pipelines.stage("r1", "train", state="failed", error="the trainer exited with 1")
        store.pipelines.set("r1", state="failed", error="train: the trainer exited with 1")
        with pytest.raises(ValueError, match="not stage fields"):
            store.pipelines.stage("r1", "train", job_ids=[])

        again = store.pipelines.rerun("r1", store.new_job("pipeline").id)
        assert again.attempt == 2 and again.state == "running" and again.error is None
        dataset, train, compile_ = again.stages
        assert dataset.state == "succeeded" and dataset.artifacts == {"dataset": "iris", "version": 2}
        assert train.state == "pending" and train.error is None and train.job_ids == ["j-train"]
        assert train.log == ["epoch 2", "epoch 3", "epoch 4"]  # the newest kept
        assert compile_.state == "pending"
        with pytest.raises(Conflict, match="only a failed or cancelled run"):
            store.pipelines.rerun("r1", job.id)

        store.pipelines.stage("r1", "train", state="running", attempt=2)
        assert store.pipelines.fail_unfinished("the service restarted") == 0  # its driver job still runs
        store.update_job(store.pipelines.get("r1").job_id, state=JobState.failed, error="restarted")
        assert store.pipelines.fail_unfinished("the service restarted") == 1
        after = store.pipelines.get("r1")
        assert after.state == "failed" and after.stages[1].state == "failed"
        assert after.stages[1].error == "the service restarted" and after.stages[2].state == "pending"
        assert [r.id for r in store.pipelines.all()] == ["r1"]
        with pytest.raises(NotFound):
            store.pipelines.get("nope")
    finally:
        store.close()

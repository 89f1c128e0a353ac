"""A service that died mid-work finds nothing half-done when it starts again."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tinymlaas.builders.container import INPUT_LABEL
from tinymlaas.models import JobState
from tinymlaas.services.recovery import recover
from tinymlaas.store import Store


def test_jobs_fail_and_deployments_end_with_a_code_and_words(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url, tmp_path / "artifacts")
    job = store.new_job("deploy-firmware")
    store.update_job(job.id, state=JobState.running, step="device downloads the package")
    dep = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=job.id,
                               build_id=None)
    model_dep = store.add_deployment(endpoint="d2", kind="model", package_sha256="b" * 64, job_id=None,
                                     build_id=None)
    (tmp_path / "work" / "b1" / "module").mkdir(parents=True)
    recover(store, tmp_path)
    assert store.job(job.id).state == JobState.failed
    fw, mod = store.deployment(dep.id), store.deployment(model_dep.id)
    assert (fw.succeeded, fw.result_code, fw.result) == (False, 8, "firmware update failed")
    assert (mod.succeeded, mod.result_code) == (False, 57)
    assert "service restarted during the update" in fw.detail
    assert store.unfinished_deployments() == [] and not (tmp_path / "work").exists()
    store.close()


@pytest.mark.docker
def test_builder_containers_of_an_interrupted_build_are_removed(tmp_path: Path) -> None:
    from tinymlaas.images import BASE_TAG, docker_client

    client = docker_client()
    mine = client.containers.run(BASE_TAG, ["sleep", "300"], detach=True, network_mode="none",
                                 labels={INPUT_LABEL: str(tmp_path / "work" / "b1" / "module")})
    other = client.containers.run(BASE_TAG, ["sleep", "300"], detach=True, network_mode="none",
                                  labels={INPUT_LABEL: "/somewhere/else/work/b1/module"})
    try:
        store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "artifacts")
        recover(store, tmp_path)
        store.close()
        ids = {c.id for c in client.containers.list(all=True)}
        assert mine.id not in ids and other.id in ids  # another service's builds are left alone
    finally:
        for c in (mine, other):
            with contextlib.suppress(Exception):
                c.remove(force=True)

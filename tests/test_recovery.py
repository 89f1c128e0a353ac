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


def _built(store: Store, version: str, model_sha: str) -> str:
    from tinymlaas.models import CompilerInfo, ModelInfo, ModuleMemory, StoredFirmware, StoredModule

    info = ModelInfo(sha256=model_sha, bytes=1, ops=[], operators=0, inputs=[], outputs=[])
    model = store.add_model("m", model_sha.encode(), source="t", info=info)
    build = store.add_build(job_id=store.new_job("build").id, model_id=model.id, target="x86-tflm",
                            compiler=None, options={}, builder="docker", version=version)
    store.finish_build(build.id, module=StoredModule(
        name="m", kind="tflm-bundle", target="x86-tflm", model_sha256=model_sha, ops=[], inputs=[],
        outputs=[], compiler=CompilerInfo(name="tflm", version="1"), memory=ModuleMemory()),
        firmware=StoredFirmware(board="x86-tflm", version=version, model_sha256=model_sha,
                                image="firmware.pyz", image_sha256="c" * 64, files={}, sizes={}, headroom={}))
    return build.id


def test_a_failed_record_is_corrected_when_the_device_runs_what_it_sent(database_url: str,
                                                                          tmp_path: Path) -> None:
    from tinymlaas.services.deployments import reconcile

    store = Store(database_url, tmp_path / "artifacts")
    _built(store, "1.0.0", "1" * 64)
    b2 = _built(store, "2.0.0", "2" * 64)
    old = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                               build_id=b2)
    latest = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                                  build_id=b2)
    recover(store, tmp_path)  # both closed as failed: the service stopped during them
    assert reconcile(store, "d1", "1.0.0", "1" * 64) is None  # it still runs 1.0.0: right
    fixed = reconcile(store, "d1", "2.0.0", "2" * 64)
    assert fixed is not None and fixed.id == latest.id
    assert (fixed.succeeded, fixed.result_code, fixed.reconciled) == (True, 1, True)
    assert fixed.firmware_after == "2.0.0" and "later reported" in fixed.detail
    assert store.deployment(old.id).succeeded is False  # only the latest is judged
    assert reconcile(store, "d1", "2.0.0", "2" * 64) is None  # nothing left to correct
    store.close()

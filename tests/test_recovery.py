"""A service that died mid-work finds nothing half-done when it starts again."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tinymlaas.builders.container import INPUT_LABEL
from tinymlaas.models import DeviceCapabilities, JobState
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


def test_a_record_corrected_from_a_trial_image_fails_again_when_the_device_rolls_back(
        database_url: str, tmp_path: Path) -> None:
    from tinymlaas.services.deployments import reconcile

    store = Store(database_url, tmp_path / "artifacts")
    _built(store, "1.0.0", "1" * 64)
    b2 = _built(store, "2.0.0", "2" * 64)
    running = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                                   build_id=b2)
    assert reconcile(store, "d1", "2.0.0", "2" * 64) is None  # its job is still waiting: the job decides
    recover(store, tmp_path)
    assert reconcile(store, "d1", "2.0.0", "2" * 64) is not None  # the new image came up (on trial)
    back = reconcile(store, "d1", "1.0.0", "1" * 64)  # ... and was rolled back
    assert back is not None and back.id == running.id
    assert (back.succeeded, back.result_code, back.result) == (False, 8, "firmware update failed")
    assert back.reconciled and back.firmware_after == "1.0.0" and "runs 1.0.0 again" in back.detail
    store.close()


def test_a_record_the_job_saw_confirmed_is_not_judged_again(database_url: str, tmp_path: Path) -> None:
    from tinymlaas.models import UpdateOutcome
    from tinymlaas.services.deployments import reconcile

    store = Store(database_url, tmp_path / "artifacts")
    b2 = _built(store, "2.0.0", "2" * 64)
    dep = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                               build_id=b2)
    store.finish_deployment(dep.id, UpdateOutcome(endpoint="d1", kind="firmware", package_sha256="a" * 64,
                                                  succeeded=True, result_code=1))
    assert reconcile(store, "d1", "3.0.0", "3" * 64) is None  # updated since by someone else
    assert store.deployment(dep.id).succeeded is True
    store.close()


class _Orchestrator:
    """What the registry asks an orchestrator in these tests: what a device reports it runs."""

    def __init__(self, runs: dict[str, tuple[str, str]]) -> None:
        self.runs = runs
        self.events: object = None

    async def capabilities(self, endpoint: str) -> DeviceCapabilities:
        version, model = self.runs[endpoint]
        return DeviceCapabilities(endpoint=endpoint, firmware_version=version, model_sha256=model)


@pytest.mark.parametrize("protocol", ["reads its capabilities", "carries its status"])
def test_the_registry_reconciles_when_a_device_joins_or_reports(database_url: str, tmp_path: Path,
                                                                 protocol: str) -> None:
    """LwM2M devices join without facts (the registry reads them); polling devices carry them."""
    import asyncio

    from tinymlaas.config import DeviceSettings, Settings
    from tinymlaas.fleet.models import DeviceFacts
    from tinymlaas.services.registry import DeviceRegistry

    store = Store(database_url, tmp_path / "artifacts")
    _built(store, "1.0.0", "1" * 64)
    b2 = _built(store, "2.0.0", "2" * 64)
    dep = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                               build_id=b2)
    recover(store, tmp_path)  # the service stopped during the update
    orchestrator = _Orchestrator({"d1": ("2.0.0", "2" * 64)})

    async def main() -> None:
        registry = DeviceRegistry(store, orchestrator, DeviceSettings(), Settings().targets_dir)  # type: ignore[arg-type]
        await registry.start()
        if protocol == "reads its capabilities":
            registry.joined("d1")
        else:
            registry.joined("d1", DeviceFacts(firmware_version="1.0.0", model_sha256="1" * 64))
            registry.seen("d1", DeviceFacts(firmware_version="1.0.0", model_sha256="1" * 64))
            await asyncio.sleep(0.2)
            assert store.deployment(dep.id).succeeded is False  # it still ran 1.0.0
            registry.seen("d1", DeviceFacts(firmware_version="2.0.0", model_sha256="2" * 64))
        for _ in range(100):
            if store.deployment(dep.id).succeeded:
                break
            await asyncio.sleep(0.05)
        await registry.stop()

    asyncio.run(main())
    fixed = store.deployment(dep.id)
    assert (fixed.succeeded, fixed.result_code, fixed.reconciled) == (True, 1, True)
    store.close()


class _QuietDevice(_Orchestrator):
    """A device that took the update, but went quiet before it said how the update ended."""

    async def deploy_firmware(self, endpoint: str, package: object, **_: object) -> None:
        from tinymlaas.errors import DeviceUnreachable

        raise DeviceUnreachable(f"device '{endpoint}' did not come back within 60 s after the update")


async def _deploy(store: Store, orchestrator: _QuietDevice, dep_id: str) -> str:
    """A deploy job's body with the registry listening; the error it ends with."""
    from tinymlaas.config import DeviceSettings, Settings
    from tinymlaas.errors import DeviceError
    from tinymlaas.models import Package
    from tinymlaas.plugins.base import no_progress
    from tinymlaas.services.deployments import run_deployment
    from tinymlaas.services.registry import DeviceRegistry

    registry = DeviceRegistry(store, orchestrator, DeviceSettings(), Settings().targets_dir)  # type: ignore[arg-type]
    await registry.start()
    try:
        await run_deployment(store, orchestrator, store.deployment(dep_id),  # type: ignore[arg-type]
                             Package(sha256="a" * 64, size=1, kind="firmware"), download_base="",
                             fallback=None, progress=no_progress, registry=registry)
    except DeviceError as exc:
        return exc.message
    finally:
        await registry.stop()
    return "no error"


@pytest.mark.parametrize("took", [True, False])
def test_a_deployment_whose_job_gave_up_gets_a_code_then_what_the_device_runs(
        database_url: str, tmp_path: Path, took: bool) -> None:
    import asyncio

    store = Store(database_url, tmp_path / "artifacts")
    b2 = _built(store, "2.0.0", "2" * 64)
    dep = store.add_deployment(endpoint="d1", kind="firmware", package_sha256="a" * 64, job_id=None,
                               build_id=b2)
    orchestrator = _QuietDevice({"d1": ("2.0.0", "2" * 64) if took else ("1.0.0", "1" * 64)})
    assert "did not come back" in asyncio.run(_deploy(store, orchestrator, dep.id))
    ended = store.deployment(dep.id)  # a code and words, then checked against what the device runs
    assert ended.detail.startswith("device 'd1' did not come back")
    if took:
        assert (ended.succeeded, ended.result_code, ended.reconciled) == (True, 1, True)
    else:
        assert (ended.succeeded, ended.result, ended.reconciled) == (False, "firmware update failed", False)
    store.close()

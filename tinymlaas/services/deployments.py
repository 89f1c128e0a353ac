"""Deploy use cases: a build's firmware (FOTA) or model (SOTA) to one device, as a job.

The orchestrator lives on the API's event loop, and so do deployment jobs (the
device does the work; the service waits). Blocking work (packing a module)
runs in a thread. A build the device cannot run (another board, CPU or runtime
than it reports) is refused before any job starts. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Literal

from tinymlaas.edge.lwm2m.vocab import FwResult, SwResult, fw_result_words, sw_result_words
from tinymlaas.edge.package import pack
from tinymlaas.errors import DeviceError, DeviceUnreachable, InvalidInput, TinyMLaaSError
from tinymlaas.fleet.models import DeviceFacts
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Board, Build, Deployment, Job, Package, StoredModule, UpdateOutcome
from tinymlaas.plugins.base import Orchestrator, Progress, no_progress
from tinymlaas.signing import Signer
from tinymlaas.store import Store

if TYPE_CHECKING:
    from tinymlaas.services.registry import DeviceRegistry

log = logging.getLogger(__name__)

#: The file of a compiled (C) module that holds its model data: what a model-only update writes.
MODEL_DATA = "model_data.bin"


def firmware_package(store: Store, build: Build, signer: Signer) -> Package:
    """The build's OS image as devices get it: signed (made now for a build older than that)."""
    fw = build.firmware
    if fw is None:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no firmware to deploy")
    sha = fw.package_sha256 or sign_artifact(store, signer, fw.image_artifact)
    return Package(sha256=sha, size=store.artifacts.size(sha), kind="firmware",
                   name=f"{fw.board} firmware", version=fw.version, model_sha256=fw.model_sha256)


def module_package(store: Store, build: Build, signer: Signer) -> Package:
    """The build's inference module as devices get it (SOTA): packed and signed."""
    module = build.module
    if module is None:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no module to deploy")
    sha = module.package_sha256 or store.artifacts.put_bytes(
        signer.sign(pack_module(store, module, store.model(build.model_id).sha256)))
    return Package(sha256=sha, size=store.artifacts.size(sha), kind="module", name=module.name,
                   version=module.model_sha256[:12], model_sha256=module.model_sha256)


def sign_artifact(store: Store, signer: Signer, sha256: str) -> str:
    """Sign a stored artifact (whose bytes must still be what their hash says) and store that."""
    data = store.artifacts.get(sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InvalidInput(f"artifact {sha256[:12]} is corrupted at rest; it is not signed nor sent")
    return store.artifacts.put_bytes(signer.sign(data))


def pack_module(store: Store, module: StoredModule, model_sha256: str) -> bytes:
    """What a device swaps, with the module's manifest: the .tflite for an interpreter module,
    the model-data blob (the firmware's model region) for compiled C."""
    manifest = module.model_dump(mode="json", exclude={"artifacts", "package_sha256"})
    model = store.artifacts.get(model_sha256).read_bytes()
    if module.kind != "c-source":
        return pack(manifest, "model.tflite", model)
    if MODEL_DATA in module.artifacts:
        payload = store.artifacts.get(module.artifacts[MODEL_DATA]).read_bytes()
    else:  # built before modules carried their model data
        payload = _model_data(model, manifest)
    return pack(manifest, MODEL_DATA, payload)


def _model_data(model: bytes, manifest: dict[str, Any]) -> bytes:
    """The compiled module's model-data section (weights, biases, requantization)."""
    from tinymlaas.compilers.aot import compile_source

    options = (manifest.get("compiler") or {}).get("options") or {}
    out = compile_source(model, name=manifest["name"], in_place=options.get("in_place", True))
    blob = out.lowered.data.blob()
    if manifest.get("data_sha256") and hashlib.sha256(blob).hexdigest() != manifest["data_sha256"]:
        raise InvalidInput("recompiling the model does not reproduce the module's model data; "
                           "build it again with this service's compiler")
    return blob


#: Module kinds a device runs in an interpreter, and the runtime it must report for them
#: (compiled modules are part of a board's firmware: the board decides).
INTERPRETERS = {"tflm-bundle": "tflite-micro"}


def incompatibilities(build: Build, board: Board, kind: Literal["firmware", "model"],
                      device: DeviceFacts, endpoint: str) -> list[str]:
    """Why ``device`` cannot run ``build`` (board, CPU, runtime), each naming both sides; none if it can."""
    what = f"build '{build.id}'"
    if device.board is None and device.cpu is None:
        return [f"device '{endpoint}' reports no board or CPU, so {what} for '{build.target}' "
                "cannot be checked against it"]
    found = []
    if device.board is not None and device.board != build.target:
        found.append(f"{what} is for board '{build.target}' but device '{endpoint}' reports board "
                     f"'{device.board}'")
    if device.cpu is not None and device.cpu != board.cpu:
        found.append(f"{what} is for CPU '{board.cpu}' but device '{endpoint}' reports CPU '{device.cpu}'")
    runtime = INTERPRETERS.get(build.module.kind) if build.module is not None else None
    if kind == "model" and runtime and device.runtime and not device.runtime.startswith(runtime):
        found.append(f"{what} is a model for the '{runtime}' runtime but device '{endpoint}' runs "
                     f"'{device.runtime}'")
    return found


def check_compatible(build: Build, board: Board, kind: Literal["firmware", "model"], device: DeviceFacts,
                     endpoint: str) -> None:
    """Refuse, before anything is sent, a build the device cannot run."""
    found = incompatibilities(build, board, kind, device, endpoint)
    if found:
        raise InvalidInput("; ".join(found), build=build.id, build_board=build.target, endpoint=endpoint,
                           device_board=device.board, device_cpu=device.cpu, device_runtime=device.runtime)


def packages(store: Store, build: Build, kind: Literal["firmware", "model"], signer: Signer
             ) -> tuple[Package, Package | None]:
    """What to send for a build (blocking): the OS image; or the module, with the image as the
    fallback of a device that cannot swap models."""
    package = firmware_package(store, build, signer)
    if kind == "model":
        return module_package(store, build, signer), package
    return package, None


def start_deployment(store: Store, orchestrator: Orchestrator, runner: JobRunner, signer: Signer, *,
                     kind: Literal["firmware", "model"], endpoint: str, build_id: str | None,
                     artifact: str | None, download_base: str,
                     registry: DeviceRegistry | None = None) -> tuple[Deployment, Job]:
    """Check the device, what to send and (with the registry) that the device can run it, then
    update the device as a job (blocking: call it off the event loop; the API's routes run in a
    thread pool)."""
    if not orchestrator.device(endpoint).online:
        raise DeviceUnreachable(f"device '{endpoint}' is offline")
    fallback = None
    if build_id is not None:
        build = store.build(build_id)
        if registry is not None:
            check_compatible(build, registry.board(build.target), kind, registry.facts_now(endpoint),
                             endpoint)
        package, fallback = packages(store, build, kind, signer)
    elif artifact is not None and kind == "firmware":  # a package in the store, sent as it is
        package = Package(sha256=artifact, size=store.artifacts.size(artifact), kind="firmware")
    else:
        raise InvalidInput("give 'build' (a finished build), or 'artifact' for a firmware image")
    job = store.new_job(f"deploy-{kind}")
    dep = store.add_deployment(endpoint=endpoint, kind=kind, package_sha256=package.sha256, job_id=job.id,
                               build_id=build_id)
    runner.submit_async(job, lambda p: run_deployment(store, orchestrator, dep, package,
                                                      download_base=download_base, fallback=fallback,
                                                      progress=p, registry=registry))
    return dep, job


def reconcile(store: Store, endpoint: str, firmware_version: str | None,
              model_sha256: str | None) -> Deployment | None:
    """Make the latest deployment to a device agree with what the device reports it runs.

    An update whose job died (the service stopped, the device went quiet, a power cut) is
    recorded as failed; if the device later runs exactly what that update sent, it took it:
    the record says so. A record corrected that way was judged from a report of an image
    that may still be on trial; if the device later reports something else (it rolled back),
    the record says failed again. Only the latest deployment is judged (an older failure
    stays a failure even if a later update brought the same version), and only once it has
    ended: a running deployment's job reads the device's own result.
    """
    latest = store.deployments(endpoint, limit=1)
    dep = latest[0] if latest else None
    if dep is None or dep.succeeded is None or dep.build_id is None:
        return None
    if dep.succeeded and not dep.reconciled:  # the job saw the device confirm it
        return None
    build = store.build(dep.build_id)
    if build.firmware is None or build.module is None:
        return None
    took = (model_sha256 == build.module.model_sha256 if dep.kind == "model"
            else (firmware_version, model_sha256) == (build.firmware.version, build.firmware.model_sha256))
    if took == dep.succeeded:
        return None
    firmware = dep.kind == "firmware"
    if took:
        code: int = FwResult.success if firmware else SwResult.installed
        detail = f"{dep.detail}; the device later reported it runs the update"
    else:
        code = FwResult.update_failed if firmware else SwResult.install_failure
        runs = firmware_version if firmware else (model_sha256 or "")[:12]
        detail = f"{dep.detail}; the device then reported it runs {runs or 'something else'} again"
    words = fw_result_words if firmware else sw_result_words
    outcome = UpdateOutcome.model_validate({
        **dep.model_dump(include=set(UpdateOutcome.model_fields)),
        "succeeded": took, "result_code": code, "result": words(code), "reconciled": True,
        "firmware_after": firmware_version, "model_sha256": model_sha256,
        "detail": detail.lstrip("; ")})
    store.finish_deployment(dep.id, outcome)
    log.info("deployment %s to %s reconciled: the device %s what it sent", dep.id, endpoint,
             "runs" if took else "does not run")
    return store.deployment(dep.id)


async def update_device(orchestrator: Orchestrator, endpoint: str, kind: Literal["firmware", "model"],
                        package: Package, *, download_base: str, fallback: Package | None,
                        progress: Progress = no_progress) -> UpdateOutcome:
    """One device's FOTA or SOTA through the orchestrator (the device does the work, we wait)."""
    if kind == "firmware":
        return await orchestrator.deploy_firmware(endpoint, package, download_base=download_base,
                                                  progress=progress)
    return await orchestrator.deploy_model(endpoint, package, download_base=download_base,
                                           fallback_firmware=fallback, progress=progress)


def facts_after(outcome: UpdateOutcome) -> DeviceFacts:
    """What a device runs after an update, as the outcome read it."""
    return DeviceFacts(firmware_version=outcome.firmware_after, model_sha256=outcome.model_sha256)


async def run_deployment(store: Store, orchestrator: Orchestrator, deployment: Deployment,
                         package: Package, *, download_base: str, fallback: Package | None,
                         progress: Progress, registry: DeviceRegistry | None = None) -> dict[str, Any]:
    """Body of a deploy job (on the API's loop: the device does the work, we wait). However it
    ends, the record gets a result code and words; a failed one is then checked against what
    the device runs (it may have taken the update after all: it went quiet, then came back)."""
    try:
        outcome = await update_device(orchestrator, deployment.endpoint, deployment.kind, package,
                                      download_base=download_base, fallback=fallback, progress=progress)
    except TinyMLaaSError as exc:
        outcome = failed_outcome(deployment, exc.message)
    await asyncio.to_thread(store.finish_deployment, deployment.id, outcome)
    if not outcome.succeeded:
        if registry is not None:
            await registry.recheck(deployment.endpoint)
        raise DeviceError(f"{deployment.kind} update of '{deployment.endpoint}' failed: "
                          f"{outcome.detail or outcome.result}")
    if registry is not None:
        registry.updated(deployment.endpoint, build_id=deployment.build_id, facts=facts_after(outcome))
    return {"deployment": deployment.id, **outcome.model_dump(mode="json")}


def failed_outcome(deployment: Deployment, why: str) -> UpdateOutcome:
    """An update that ended without the device's word on it (it went quiet, the job gave up)."""
    firmware = deployment.kind == "firmware"
    code: int = FwResult.update_failed if firmware else SwResult.device_error
    return UpdateOutcome(endpoint=deployment.endpoint, kind=deployment.kind,
                         package_sha256=deployment.package_sha256, succeeded=False, result_code=code,
                         result=(fw_result_words if firmware else sw_result_words)(code), detail=why)

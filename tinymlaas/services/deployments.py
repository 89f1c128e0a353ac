"""Deploy use cases: a build's firmware (FOTA) or model (SOTA) to one device, as a job.

The orchestrator lives on the API's event loop, and so do deployment jobs (the
device does the work; the service waits). Blocking work (packing a module)
runs in a thread. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Literal

from tinymlaas.edge.lwm2m.vocab import FwResult, SwResult, fw_result_words, sw_result_words
from tinymlaas.edge.package import pack
from tinymlaas.errors import DeviceError, DeviceUnreachable, InvalidInput
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Build, Deployment, Job, Package, StoredModule, UpdateOutcome
from tinymlaas.plugins.base import Orchestrator, Progress
from tinymlaas.signing import Signer
from tinymlaas.store import Store

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


def start_deployment(store: Store, orchestrator: Orchestrator, runner: JobRunner, signer: Signer, *,
                     kind: Literal["firmware", "model"], endpoint: str, build_id: str | None,
                     artifact: str | None, download_base: str) -> tuple[Deployment, Job]:
    """Check the device and what to send, then update the device as a job (blocking: call it
    off the event loop; the API's routes run in a thread pool)."""
    if not orchestrator.device(endpoint).online:
        raise DeviceUnreachable(f"device '{endpoint}' is offline")
    fallback = None
    if build_id is not None:
        build = store.build(build_id)
        package = firmware_package(store, build, signer)
        if kind == "model":  # the firmware stays the fallback for a device that cannot swap models
            package, fallback = module_package(store, build, signer), package
    elif artifact is not None and kind == "firmware":  # a package in the store, sent as it is
        package = Package(sha256=artifact, size=store.artifacts.size(artifact), kind="firmware")
    else:
        raise InvalidInput("give 'build' (a finished build), or 'artifact' for a firmware image")
    job = store.new_job(f"deploy-{kind}")
    dep = store.add_deployment(endpoint=endpoint, kind=kind, package_sha256=package.sha256,
                               job_id=job.id, build_id=build_id)
    runner.submit_async(job, lambda p: run_deployment(store, orchestrator, dep, package,
                                                      download_base=download_base, fallback=fallback,
                                                      progress=p))
    return dep, job


def reconcile(store: Store, endpoint: str, firmware_version: str | None,
              model_sha256: str | None) -> Deployment | None:
    """Make the latest deployment to a device agree with what the device reports it runs.

    An update whose job died (the service stopped, the device went quiet, a power cut) is
    recorded as failed; if the device later runs exactly what that update sent, it took it:
    the record says so. Only the latest deployment is judged: an older failure stays a failure
    even if a later update brought the same version.
    """
    latest = store.deployments(endpoint, limit=1)
    if not latest or latest[0].succeeded or latest[0].build_id is None:
        return None
    dep, build = latest[0], store.build(latest[0].build_id)
    if build.firmware is None or build.module is None:
        return None
    took = (model_sha256 == build.module.model_sha256 if dep.kind == "model"
            else (firmware_version, model_sha256) == (build.firmware.version, build.firmware.model_sha256))
    if not took:
        return None
    ok = FwResult.success if dep.kind == "firmware" else SwResult.installed
    words = fw_result_words if dep.kind == "firmware" else sw_result_words
    outcome = UpdateOutcome.model_validate({
        **dep.model_dump(include=set(UpdateOutcome.model_fields)),
        "succeeded": True, "result_code": int(ok), "result": words(ok), "reconciled": True,
        "firmware_after": firmware_version, "model_sha256": model_sha256,
        "detail": f"{dep.detail}; the device later reported it runs the update".lstrip("; ")})
    store.finish_deployment(dep.id, outcome)
    log.info("deployment %s to %s reconciled: the device runs what it sent", dep.id, endpoint)
    return store.deployment(dep.id)


async def run_deployment(store: Store, orchestrator: Orchestrator, deployment: Deployment,
                         package: Package, *, download_base: str, fallback: Package | None,
                         progress: Progress) -> dict[str, Any]:
    """Body of a deploy job (on the API's loop: the device does the work, we wait)."""
    if deployment.kind == "firmware":
        outcome = await orchestrator.deploy_firmware(deployment.endpoint, package,
                                                     download_base=download_base, progress=progress)
    else:
        outcome = await orchestrator.deploy_model(deployment.endpoint, package, download_base=download_base,
                                                  fallback_firmware=fallback, progress=progress)
    await asyncio.to_thread(store.finish_deployment, deployment.id, outcome)
    if not outcome.succeeded:
        raise DeviceError(f"{deployment.kind} update of '{deployment.endpoint}' failed: "
                          f"{outcome.detail or outcome.result}")
    return {"deployment": deployment.id, **outcome.model_dump(mode="json")}

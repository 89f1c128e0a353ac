"""Deploy use cases: a build's firmware (FOTA) or model (SOTA) to one device, as a job.

The orchestrator lives on the API's event loop, and so do deployment jobs (the
device does the work; the service waits). Blocking work (packing a module)
runs in a thread. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Literal

from tinymlaas.edge.package import pack
from tinymlaas.errors import DeviceError, DeviceUnreachable, InvalidInput
from tinymlaas.jobs import JobRunner
from tinymlaas.models import Build, Deployment, Job, Package
from tinymlaas.plugins.base import Orchestrator, Progress
from tinymlaas.store import Store

#: The file of a compiled (C) module that holds its model data: what a model-only update writes.
MODEL_DATA = "model_data.bin"


def firmware_package(store: Store, build: Build) -> Package:
    fw = build.firmware
    if fw is None:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no firmware to deploy")
    sha = fw.image_artifact
    return Package(sha256=sha, size=store.artifacts.size(sha), kind="firmware",
                   name=f"{fw.board} firmware", version=fw.version, model_sha256=fw.model_sha256)


def module_package(store: Store, build: Build) -> Package:
    """The build's inference module packed for SOTA, stored by its hash.

    The payload is what the device swaps: the .tflite for an interpreter module,
    the model-data blob (the firmware's model region) for compiled C.
    """
    module = build.module
    if module is None:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no module to deploy")
    manifest = module.model_dump(mode="json", exclude={"artifacts"})
    model = store.artifacts.get(store.model(build.model_id).sha256).read_bytes()
    if module.kind == "c-source":
        if MODEL_DATA in module.artifacts:
            payload = store.artifacts.get(module.artifacts[MODEL_DATA]).read_bytes()
        else:  # built before modules carried their model data
            payload = _model_data(model, manifest)
        name = MODEL_DATA
    else:
        name, payload = "model.tflite", model
    data = pack(manifest, name, payload)
    sha = store.artifacts.put_bytes(data)
    return Package(sha256=sha, size=len(data), kind="module", name=module.name,
                   version=module.model_sha256[:12], model_sha256=module.model_sha256)


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


def start_deployment(store: Store, orchestrator: Orchestrator, runner: JobRunner, *,
                     kind: Literal["firmware", "model"], endpoint: str, build_id: str | None,
                     artifact: str | None, download_base: str) -> tuple[Deployment, Job]:
    """Check the device and what to send, then update the device as a job (blocking: call it
    off the event loop; the API's routes run in a thread pool)."""
    if not orchestrator.device(endpoint).online:
        raise DeviceUnreachable(f"device '{endpoint}' is offline")
    fallback = None
    if build_id is not None:
        build = store.build(build_id)
        package = firmware_package(store, build)
        if kind == "model":  # the firmware stays the fallback for a device that cannot swap models
            package, fallback = module_package(store, build), package
    elif artifact is not None and kind == "firmware":
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

"""Deploy use cases: a build's firmware (FOTA) or model (SOTA) to one device, as a job.

The orchestrator lives on the API's event loop; jobs run in threads, so a job
hands the update to that loop and waits for it. No FastAPI here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tinymlaas.edge.package import pack
from tinymlaas.errors import DeviceError, InvalidInput
from tinymlaas.models import Deployment, Package
from tinymlaas.plugins.base import Orchestrator, Progress
from tinymlaas.store import BuildRecord, Store


def firmware_package(store: Store, build: BuildRecord) -> Package:
    fw = build.firmware
    if not fw:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no firmware to deploy")
    sha = fw["artifacts"][fw["image"]]
    return Package(sha256=sha, size=store.artifacts.get(sha).stat().st_size, kind="firmware",
                   name=f"{fw['board']} firmware", version=fw["version"], model_sha256=fw["model_sha256"])


def module_package(store: Store, build: BuildRecord) -> Package:
    """The build's inference module packed for SOTA, stored by its hash.

    The payload is what the device swaps: the .tflite for an interpreter module,
    the model-data blob (the firmware's model region) for compiled C.
    """
    module = build.module
    if not module:
        raise InvalidInput(f"build '{build.id}' has not finished; there is no module to deploy")
    manifest = {k: v for k, v in module.items() if k != "artifacts"}
    model = store.artifacts.get(store.model(build.model_id).sha256).read_bytes()
    if manifest["kind"] == "c-source":
        name, payload = "model_data.bin", _model_data(model, manifest)
    else:
        name, payload = "model.tflite", model
    data = pack(manifest, name, payload)
    sha = store.artifacts.put_bytes(data)
    return Package(sha256=sha, size=len(data), kind="module", name=manifest["name"],
                   version=manifest["model_sha256"][:12], model_sha256=manifest["model_sha256"])


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
    store.finish_deployment(deployment.id, outcome)
    if not outcome.succeeded:
        raise DeviceError(f"{deployment.kind} update of '{deployment.endpoint}' failed: "
                          f"{outcome.detail or outcome.result}")
    return {"deployment": deployment.id, **outcome.model_dump(mode="json")}

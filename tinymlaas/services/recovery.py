"""What a service finds at start after it died: nothing half-done stays half-done.

Jobs that were queued or running in this process are failed with the reason; deployments that
have no outcome get one (a code and words: the update's result is unknown until the device next
reports, when the device reports what it runs); builder
containers of interrupted builds and their work folders are removed.

One of several instances sharing a database and data directory (``instance`` named) fails only
its own in-process jobs and closes only deployments whose job has ended: the other instances'
work, the workers' jobs and the shared work folder are theirs (the reaper fails or retries the
jobs of a process that died and never came back).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from tinymlaas.builders.container import INPUT_LABEL
from tinymlaas.edge.lwm2m.vocab import FwResult, SwResult, fw_result_words, sw_result_words
from tinymlaas.models import JobState, UpdateOutcome
from tinymlaas.store import Store

log = logging.getLogger(__name__)
RESTARTED = "the service restarted during the update"


def recover(store: Store, data_dir: Path, instance: str | None = None) -> None:
    jobs = store.leases.fail_local(instance, "the service restarted while the job ran")
    store.pipelines.fail_unfinished("the service restarted while the pipeline ran; re-run it from this stage")
    deployments = store.unfinished_deployments()
    if instance is not None:
        deployments = [d for d in deployments if d.job_id is not None and store.job(d.job_id).state
                       not in (JobState.queued, JobState.running)]
    for dep in deployments:
        code = FwResult.update_failed if dep.kind == "firmware" else SwResult.device_error
        words = fw_result_words if dep.kind == "firmware" else sw_result_words
        store.finish_deployment(dep.id, UpdateOutcome(
            endpoint=dep.endpoint, kind=dep.kind, package_sha256=dep.package_sha256, succeeded=False,
            result_code=int(code), result=words(code),
            detail=f"{RESTARTED}; what the device runs will be checked when it next reports"))
    containers = 0
    if instance is None:
        containers = remove_builders(data_dir / "work")
        shutil.rmtree(data_dir / "work", ignore_errors=True)
    if jobs or deployments or containers:
        log.warning("recovered from a stop: %d job(s) failed, %d deployment(s) closed, "
                    "%d builder container(s) removed", jobs, len(deployments), containers)


def remove_builders(work: Path, prefix: str = "") -> int:
    """Builder containers on this machine's engine that build from this service's work folder (from
    its folders whose name starts with ``prefix``): an interrupted build's."""
    try:
        from tinymlaas.images import docker_client

        client = docker_client()
    except Exception:  # no Docker engine here: no builder containers either
        return 0
    import docker

    removed = 0
    root = str(work.resolve())
    # The list's own labels: inspecting each one races with builds that end meanwhile.
    for container in client.api.containers(all=True, filters={"label": INPUT_LABEL}):
        if str((container.get("Labels") or {}).get(INPUT_LABEL, "")).startswith(f"{root}/{prefix}"):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container["Id"], force=True)
                removed += 1
    return removed

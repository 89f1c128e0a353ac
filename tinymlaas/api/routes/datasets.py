"""Datasets: create, upload samples (files or an archive, streamed to disk), label, browse,
versions, and collecting the inputs devices run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from tinymlaas.api.deps import OrchestratorDep, RunnerDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.datasets.models import (
    Changed,
    Collector,
    CollectRequest,
    Dataset,
    DatasetCreate,
    DatasetDetail,
    DatasetUpdate,
    DatasetVersion,
    LabelRequest,
    Sample,
    SamplePage,
    Split,
    UploadResult,
)
from tinymlaas.models import Job
from tinymlaas.services import datasets as service

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
def create_dataset(body: DatasetCreate, store: StoreDep, user: Scientist) -> Dataset:
    """A dataset: its task (image, time-series, tabular) and what its samples are (shape, dtype, classes)."""
    return service.create(store, body)


@router.get("")
def list_datasets(store: StoreDep, user: Viewer) -> list[Dataset]:
    return store.datasets.all()


@router.get("/{ref}", responses=problems(404))
def read_dataset(ref: str, store: StoreDep, user: Viewer) -> DatasetDetail:
    """By id or name (its head version), or ``name:version``: counts per label and split, and versions."""
    return service.detail(store, ref)


@router.patch("/{ref}", responses=problems(404, 409, 422))
def update_dataset(ref: str, body: DatasetUpdate, store: StoreDep, user: Scientist) -> Dataset:
    return service.update(store, ref, body)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409))
def delete_dataset(ref: str, store: StoreDep, user: Scientist) -> Response:
    service.delete(store, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{ref}/samples", responses=problems(404, 422))
def upload_samples(
    ref: str,
    store: StoreDep,
    user: Scientist,
    files: Annotated[
        list[UploadFile],
        File(
            description="PNG/JPEG, WAV, CSV, NPY files, or zip/tar archives of them (a folder named like a "
            "class labels its files)"
        ),
    ],
    label: Annotated[str | None, Form(description="the label of every sample in this upload")] = None,
) -> UploadResult:
    """Add samples; each bad one is refused with its reason, the rest are kept (the answer lists both)."""
    return service.upload(store, ref, [(f.filename or "upload", f.file) for f in files], label=label)


@router.get("/{ref}/samples", responses=problems(404, 422))
def browse_samples(
    ref: str,
    store: StoreDep,
    user: Viewer,
    label: str | None = None,
    unlabelled: bool = False,
    split: Split | None = None,
    source: Annotated[str | None, Query(description="samples whose source starts with this")] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SamplePage:
    return service.browse(
        store, ref, label=label, unlabelled=unlabelled, split=split, source=source, offset=offset, limit=limit
    )


@router.patch("/{ref}/samples", responses=problems(404, 422))
def label_samples(ref: str, body: LabelRequest, store: StoreDep, user: Scientist) -> Changed:
    """Label one or many samples (``label: null`` unlabels them); all or none."""
    return service.set_label(store, ref, body.samples, body.label)


@router.get("/{ref}/samples/{sample_id}", responses=problems(404))
def read_sample(ref: str, sample_id: str, store: StoreDep, user: Viewer) -> Sample:
    return service.sample(store, ref, sample_id)


@router.get("/{ref}/samples/{sample_id}/data", response_class=Response, responses=problems(404, 422))
def sample_data(
    ref: str,
    sample_id: str,
    store: StoreDep,
    user: Viewer,
    format: Annotated[str, Query(pattern="^(npy|png)$")] = "npy",
) -> Response:
    """The sample as .npy (its dataset's shape and dtype), or as PNG for images."""
    data, media = service.sample_data(store, ref, sample_id, format)
    return Response(data, media_type=media)


@router.delete("/{ref}/samples/{sample_id}", responses=problems(404))
def remove_sample(ref: str, sample_id: str, store: StoreDep, user: Scientist) -> Changed:
    return service.remove(store, ref, [sample_id])


@router.get("/{ref}/versions", responses=problems(404))
def list_versions(ref: str, store: StoreDep, user: Viewer) -> list[DatasetVersion]:
    """Every version: locked once a model was made from it, with the models and the counts."""
    return store.datasets.versions(store.datasets.get(ref).id)


@router.post("/{ref}/collect", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 409, 422))
async def collect(
    ref: str, body: CollectRequest, store: StoreDep, orch: OrchestratorDep, runner: RunnerDep, user: Scientist
) -> Collector:
    """Add the inputs of a device's next inferences, unlabelled: ``count`` of them, or ``continuous``.
    On the loop: it asks the orchestrator whether the device exists."""
    return service.start_collecting(store, orch, runner, ref, body)


@router.get("/{ref}/collectors", responses=problems(404))
def list_collectors(ref: str, store: StoreDep, user: Viewer) -> list[Collector]:
    return service.collectors(store, ref)


@router.delete("/{ref}/collectors/{endpoint}", responses=problems(404, 409))
def stop_collector(ref: str, endpoint: str, store: StoreDep, runner: RunnerDep, user: Scientist) -> Job:
    return service.stop_collecting(store, runner, ref, endpoint)

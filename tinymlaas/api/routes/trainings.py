"""Training runs with settings, bringing your own Keras model, and each model version's lineage and
variants (int8 and float .tflite, the Keras model)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import FileResponse

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.datasets.models import Lineage, Training, TrainingSettings, Variant
from tinymlaas.models import Job
from tinymlaas.services import training as service
from tinymlaas.services.builds import MAX_MODEL_BYTES

router = APIRouter(tags=["training"])


@router.post("/trainings", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 409, 422))
def start_training(
    body: TrainingSettings, store: StoreDep, settings: SettingsDep, runner: RunnerDep, user: Scientist
) -> Training:
    """Train a model template on a dataset version (locked from now on) as a job; each epoch's loss
    and accuracy appear here and in the job's step; the result is one model version with lineage."""
    return service.start_training(store, settings, runner, body)


@router.get("/trainings")
def list_trainings(store: StoreDep, user: Viewer) -> list[Training]:
    return store.datasets.trainings()


@router.get("/trainings/{training_id}", responses=problems(404))
def read_training(training_id: str, store: StoreDep, user: Viewer) -> Training:
    return store.datasets.training(training_id)


@router.post("/trainings/{training_id}/cancel", responses=problems(404, 409))
def cancel_training(training_id: str, store: StoreDep, runner: RunnerDep, user: Scientist) -> Training:
    """Stop a training: its TensorFlow process is killed and nothing is registered."""
    return service.cancel_training(store, runner, training_id)


@router.post("/models/import", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def import_model(
    store: StoreDep,
    settings: SettingsDep,
    runner: RunnerDep,
    user: Scientist,
    file: Annotated[UploadFile, File(description=".keras, .h5, or a SavedModel folder zipped")],
    name: Annotated[str, Form(min_length=1, max_length=100)],
    dataset: Annotated[
        str | None, Form(description="calibrates int8 (training split); evaluated on its test split")
    ] = None,
    quantize: Annotated[str, Form(pattern="^(int8|float)$")] = "int8",
) -> Job:
    """Bring your own Keras model: converted to full-integer int8 (or float) TFLite as a job."""
    return service.start_import(
        store,
        settings,
        runner,
        name=name,
        filename=file.filename or "model",
        body=file.file,
        dataset=dataset,
        quantize=quantize,
        limit=MAX_MODEL_BYTES,
    )


@router.get("/models/{ref}/lineage", responses=problems(404))
def read_lineage(ref: str, store: StoreDep, user: Viewer) -> Lineage:
    """Where a model version came from: dataset version, settings, seed, metrics, variants."""
    return service.lineage(store, ref)


@router.get("/models/{ref}/variants/{variant}", response_class=FileResponse, responses=problems(404))
def download_variant(ref: str, variant: Variant, store: StoreDep, user: Viewer) -> FileResponse:
    """The int8 or float .tflite of a model version, or its Keras model."""
    path, filename = service.variant_file(store, ref, variant)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)

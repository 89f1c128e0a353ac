"""Model registry: upload, train from the zoo, list, download, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.models import Job, Model
from tinymlaas.services.builds import MAX_MODEL_BYTES, start_training, upload_model

router = APIRouter(prefix="/models", tags=["models"])


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="a zoo recipe (GET /zoo)")
    seed: int | None = Field(None, ge=0)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(413, 422))
def create_model(
    store: StoreDep,
    user: Scientist,
    file: Annotated[UploadFile, File(description=".tflite flatbuffer")],
    name: Annotated[str, Form(min_length=1, max_length=100)],
) -> Model:
    """Register a model version (validated first: a file that is not a model is never stored)."""
    return upload_model(store, name, file.file, filename=file.filename or "model.tflite",
                        limit=MAX_MODEL_BYTES)


@router.post("/train", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def train_model(body: TrainRequest, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                user: Scientist) -> Job:
    """Train a zoo recipe and register the result, as a job."""
    return start_training(store, settings, runner, body.recipe, body.seed)


@router.get("")
def list_models(store: StoreDep, user: Viewer) -> list[Model]:
    return store.models()


@router.get("/{ref}", responses=problems(404))
def read_model(ref: str, store: StoreDep, user: Viewer) -> Model:
    """By id, ``name`` (latest version) or ``name:version``."""
    return store.model(ref)


@router.get("/{ref}/file", response_class=FileResponse, responses=problems(404))
def download_model(ref: str, store: StoreDep, user: Viewer) -> FileResponse:
    rec = store.model(ref)
    return FileResponse(store.artifacts.get(rec.sha256), media_type="application/octet-stream",
                        filename=f"{rec.name}-v{rec.version}.tflite")


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409))
def delete_model(ref: str, store: StoreDep, user: Scientist) -> Response:
    store.delete_model(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

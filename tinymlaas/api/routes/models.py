"""Model registry: upload, train from the zoo, list, download, delete."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.models import Job
from tinymlaas.services.builds import register_model, train_and_register
from tinymlaas.zoo import get_recipe

router = APIRouter(prefix="/models", tags=["models"])

MAX_MODEL_BYTES = 64 << 20


class TrainRequest(BaseModel):
    recipe: str
    seed: int | None = Field(None, ge=0)


@router.post("", status_code=status.HTTP_201_CREATED)
async def upload_model(
    store: StoreDep,
    file: Annotated[UploadFile, File(description=".tflite flatbuffer")],
    name: Annotated[str, Form(min_length=1, max_length=100)],
) -> dict[str, Any]:
    data = await file.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:
        from tinymlaas.errors import InvalidInput

        raise InvalidInput(f"model file is larger than {MAX_MODEL_BYTES} bytes")
    return asdict(register_model(store, name, data, source=f"upload:{file.filename}"))


@router.post("/train", status_code=status.HTTP_202_ACCEPTED)
async def train_model(body: TrainRequest, store: StoreDep, settings: SettingsDep,
                      runner: RunnerDep) -> Job:
    get_recipe(body.recipe)  # 404 now, not in the job
    job = store.new_job("train")
    return runner.submit(job, lambda p: train_and_register(store, settings, body.recipe, body.seed, p))


@router.get("")
def list_models(store: StoreDep) -> list[dict[str, Any]]:
    return [asdict(m) for m in store.models()]


@router.get("/{ref}")
def read_model(ref: str, store: StoreDep) -> dict[str, Any]:
    return asdict(store.model(ref))


@router.get("/{ref}/file")
def download_model(ref: str, store: StoreDep) -> FileResponse:
    rec = store.model(ref)
    return FileResponse(store.artifacts.get(rec.sha256), media_type="application/octet-stream",
                        filename=f"{rec.name}-v{rec.version}.tflite")


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(ref: str, store: StoreDep) -> None:
    store.delete_model(ref)

"""Toolchains registered at run time: partners' builder images, checked by their self-test."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from tinymlaas.api.deps import SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.fleet.models import Toolchain, ToolchainSpec
from tinymlaas.services import toolchains as service

router = APIRouter(prefix="/toolchains", tags=["toolchains"])
#: The largest image archive taken (a builder image with its toolchain is a few hundred MB).
MAX_ARCHIVE_BYTES = 4 << 30


@router.get("")
def list_toolchains(store: StoreDep, user: Viewer) -> list[Toolchain]:
    return store.toolchains.all()


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(404, 409, 422))
def register_toolchain(body: ToolchainSpec, store: StoreDep, settings: SettingsDep, user: Operator
                       ) -> Toolchain:
    """Register an image the local Docker engine has (nothing is pulled) for the boards it serves;
    it is accepted once its self-test passes and names every one of them."""
    return service.register_local(store, settings, body)


@router.post("/archive", status_code=status.HTTP_201_CREATED, responses=problems(409, 413, 422))
def upload_toolchain(store: StoreDep, settings: SettingsDep, user: Operator,
                     file: Annotated[UploadFile, File(description="a 'docker save' archive of one image")],
                     name: Annotated[str, Form()],
                     boards: Annotated[str, Form(description="the boards it serves, comma-separated")],
                     description: Annotated[str, Form()] = "") -> Toolchain:
    """Register the image of an uploaded ``docker save`` archive, once its self-test passes
    (a refused image is removed again)."""
    return service.register_archive(store, settings, name=name,
                                    boards=[b.strip() for b in boards.split(",") if b.strip()],
                                    description=description, archive=file.file,
                                    filename=file.filename or "image.tar", limit=MAX_ARCHIVE_BYTES)


@router.get("/{name}", responses=problems(404))
def read_toolchain(name: str, store: StoreDep, user: Viewer) -> Toolchain:
    return store.toolchains.get(name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def remove_toolchain(name: str, store: StoreDep, user: Operator) -> Response:
    service.remove(store, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

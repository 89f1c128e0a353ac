"""Builds: compile + build a registered model for a board, as a job."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Scientist, Viewer
from tinymlaas.models import Build, Job
from tinymlaas.services.builds import start_build

router = APIRouter(prefix="/builds", tags=["builds"])


class BuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model id, name (latest version) or name:version")
    target: str = Field(description="board name (GET /targets)")
    compiler: str | None = Field(None, description="compiler plugin; default: the board's first")
    options: dict[str, Any] = Field({}, description="the compiler's options (GET /compilers)")
    builder: str | None = Field(None, description="docker (the board's builder image; the default) or local")
    toolchain: str | None = Field(None, description="or a toolchain registered at run time (GET /toolchains)")
    version: str = Field("1.0.0", pattern=r"^[0-9A-Za-z.+-]{1,40}$", description="firmware version")


class BuildAccepted(BaseModel):
    build: Build
    job: Job


class BuildDetail(Build):
    job: Job


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problems(404, 422))
def create_build(body: BuildRequest, store: StoreDep, settings: SettingsDep, runner: RunnerDep,
                 user: Scientist) -> BuildAccepted:
    """Everything that can be refused (unknown model or board, bad option, a compiler that does not
    fit the board, a toolchain that does not serve it) is refused now with a 4xx; the build itself
    runs as a job."""
    build, job = start_build(store, settings, runner, model=body.model, target=body.target,
                             compiler=body.compiler, options=body.options, builder=body.builder,
                             version=body.version, toolchain=body.toolchain)
    return BuildAccepted(build=build, job=job)


@router.get("")
def list_builds(store: StoreDep, user: Viewer) -> list[Build]:
    return store.builds()


@router.get("/{build_id}", responses=problems(404))
def read_build(build_id: str, store: StoreDep, user: Viewer) -> BuildDetail:
    build = store.build(build_id)
    return BuildDetail(**build.model_dump(), job=store.job(build.job_id))

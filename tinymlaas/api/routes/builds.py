"""Builds: compile + build a registered model for a board, as a job."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from tinymlaas.api.deps import RunnerDep, SettingsDep, StoreDep
from tinymlaas.plugins.base import Builder
from tinymlaas.plugins.registry import compiler_for, get
from tinymlaas.services.builds import run_build
from tinymlaas.services.compile import make_compiler
from tinymlaas.targets import get_board

router = APIRouter(prefix="/builds", tags=["builds"])


class BuildRequest(BaseModel):
    model: str = Field(description="model id, name (latest version) or name:version")
    target: str
    compiler: str | None = None
    options: dict[str, Any] = {}
    builder: str = "docker"
    version: str = Field("1.0.0", pattern=r"^[0-9A-Za-z.+-]{1,40}$")


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_build(body: BuildRequest, store: StoreDep, settings: SettingsDep,
                       runner: RunnerDep) -> dict[str, Any]:
    # Everything that can be refused is refused now, with a 4xx, not in the job.
    model = store.model(body.model)
    board = get_board(settings.targets_dir, body.target)
    compiler_for(board, body.compiler)
    make_compiler(board, body.compiler, body.options)
    get("builders", body.builder, Builder)
    job = store.new_job("build")
    build = store.add_build(job_id=job.id, model_id=model.id, target=board.name,
                            compiler=body.compiler, options=body.options, builder=body.builder,
                            version=body.version)
    runner.submit(job, lambda p: run_build(store, settings, build, p))
    return {"build": asdict(build), "job": job.model_dump(mode="json")}


@router.get("")
def list_builds(store: StoreDep) -> list[dict[str, Any]]:
    return [asdict(b) for b in store.builds()]


@router.get("/{build_id}")
def read_build(build_id: str, store: StoreDep) -> dict[str, Any]:
    build = store.build(build_id)
    return {**asdict(build), "job": store.job(build.job_id).model_dump(mode="json")}

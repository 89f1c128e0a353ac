"""The pipelines' records: a problem in a file, a run and its stages (the job graph)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StageName = Literal["dataset", "train", "quantize", "compile", "deploy"]
StageState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
RunState = Literal["running", "succeeded", "failed", "cancelled"]


class PipelineProblem(BaseModel):
    """One thing wrong in a pipeline file, where it is (1-based line and column)."""

    line: int
    column: int
    field: str = Field(description="the dotted path of the field, e.g. compile.targets[1].board")
    message: str


class PipelineSource(BaseModel):
    """A pipeline file as sent to the service."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(max_length=100_000, description="the pipeline's YAML")
    filename: str = Field("pipeline.yaml", min_length=1, max_length=200, description="named in the problems")


class PipelinePlan(BaseModel):
    """A valid pipeline: what it will do."""

    name: str
    stages: list[StageName]
    model: str | None = Field(None, description="the existing model it compiles, if it trains none")
    dataset: str | None = Field(None, description="the dataset version it trains on (name:version)")
    targets: list[str]
    group: str | None = None
    devices: list[str] = Field([], description="the group's devices now")


class Stage(BaseModel):
    """One node of the job graph: its state, the jobs it ran, what it made, its log."""

    name: StageName
    state: StageState = "pending"
    attempt: int = Field(0, description="the run's attempt that last ran it")
    job_ids: list[str] = Field([], description="the service's jobs it ran (GET /jobs/{id})")
    artifacts: dict[str, Any] = Field({}, description="what it made: dataset version, model, builds, rollout")
    log: list[str] = []
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class PipelineRun(BaseModel):
    id: str
    name: str
    state: RunState
    attempt: int = Field(1, description="1, then one more for each re-run from the failed (or cancelled) "
                                        "stage")
    job_id: str = Field(description="the current attempt's job, which drives the stages")
    filename: str
    source: str
    created_by: str = ""
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    stages: list[Stage]

"""Pipeline runs and their stages: each stage's state, jobs, artifacts and log, kept as they change
so that a run reads the same after a restart and can be re-run from the stage that failed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.models import JobState
from tinymlaas.pipelines.models import PipelineRun, RunState, Stage, StageName, StageState
from tinymlaas.store.tables import Base, JobRow

if TYPE_CHECKING:
    from tinymlaas.store import Store

#: A stage keeps its newest log lines, at most this many.
MAX_LOG_LINES = 500


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    filename: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String, default="")
    error: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PipelineStageRow(Base):
    __tablename__ = "pipeline_stages"

    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    job_ids: Mapped[dict[str, Any]]
    artifacts: Mapped[dict[str, Any]]
    log: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


def _stage(r: PipelineStageRow) -> Stage:
    return Stage(name=cast(StageName, r.name), state=cast(StageState, r.state), attempt=r.attempt,
                 job_ids=r.job_ids["ids"], artifacts=r.artifacts, log=r.log["lines"], error=r.error,
                 started_at=r.started_at, ended_at=r.ended_at)


#: What the pipeline service changes on a run and on a stage.
RUN_FIELDS = frozenset({"state", "error"})
STAGE_FIELDS = frozenset({"state", "attempt", "artifacts", "error", "started_at", "ended_at"})


class Pipelines:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, *, run_id: str, name: str, filename: str, source: str, job_id: str, created_by: str,
               stages: list[StageName]) -> PipelineRun:
        from tinymlaas.store import now

        t = now()
        with self.store.tx() as db:
            db.add(PipelineRunRow(id=run_id, name=name, state="running", attempt=1, job_id=job_id,
                                  filename=filename, source=source, created_by=created_by, created_at=t,
                                  updated_at=t))
            db.flush()
            for i, stage in enumerate(stages):
                db.add(PipelineStageRow(run_id=run_id, position=i, name=stage, state="pending", attempt=0,
                                        job_ids={"ids": []}, artifacts={}, log={"lines": []}))
        return self.get(run_id)

    def _run(self, db: Session, run_id: str) -> PipelineRunRow:
        row = db.get(PipelineRunRow, run_id)
        if row is None:
            raise NotFound(f"no pipeline run '{run_id}'")
        return row

    def _stages(self, db: Session, run_id: str) -> list[PipelineStageRow]:
        return list(db.scalars(select(PipelineStageRow).where(PipelineStageRow.run_id == run_id)
                               .order_by(PipelineStageRow.position)))

    def _record(self, db: Session, row: PipelineRunRow) -> PipelineRun:
        return PipelineRun(id=row.id, name=row.name, state=cast(RunState, row.state), attempt=row.attempt,
                           job_id=row.job_id, filename=row.filename, source=row.source,
                           created_by=row.created_by, error=row.error, created_at=row.created_at,
                           updated_at=row.updated_at, stages=[_stage(s) for s in self._stages(db, row.id)])

    def get(self, run_id: str) -> PipelineRun:
        with self.store.read() as db:
            return self._record(db, self._run(db, run_id))

    def all(self, limit: int = 100) -> list[PipelineRun]:
        """The newest runs first."""
        with self.store.read() as db:
            rows = db.scalars(select(PipelineRunRow).order_by(PipelineRunRow.created_at.desc(),
                                                              PipelineRunRow.id).limit(limit))
            return [self._record(db, r) for r in rows]

    def set(self, run_id: str, **fields: Any) -> PipelineRun:
        from tinymlaas.store import now

        unknown = set(fields) - RUN_FIELDS
        if unknown:
            raise ValueError(f"not run fields: {sorted(unknown)}")
        with self.store.tx() as db:
            row = self._run(db, run_id)
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = now()
            return self._record(db, row)

    def _stage_row(self, db: Session, run_id: str, name: str) -> PipelineStageRow:
        row = db.scalars(select(PipelineStageRow).where(PipelineStageRow.run_id == run_id,
                                                        PipelineStageRow.name == name)).first()
        if row is None:
            raise NotFound(f"pipeline run '{run_id}' has no stage '{name}'")
        return row

    def stage(self, run_id: str, name: str, *, job_id: str | None = None, line: str | None = None,
              **fields: Any) -> Stage:
        """Change a stage: its fields, a job it started, a line for its log."""
        unknown = set(fields) - STAGE_FIELDS
        if unknown:
            raise ValueError(f"not stage fields: {sorted(unknown)}")
        with self.store.tx() as db:
            row = self._stage_row(db, run_id, name)
            for key, value in fields.items():
                setattr(row, key, value)
            if job_id is not None:
                row.job_ids = {"ids": [*row.job_ids["ids"], job_id]}
            if line is not None:
                row.log = {"lines": [*row.log["lines"], line][-MAX_LOG_LINES:]}
            return _stage(row)

    def rerun(self, run_id: str, job_id: str) -> PipelineRun:
        """The next attempt of a failed or cancelled run: its succeeded stages stay, the others start
        again."""
        from tinymlaas.store import now

        with self.store.tx() as db:
            row = self._run(db, run_id)
            if row.state not in ("failed", "cancelled"):
                raise Conflict(f"pipeline run '{run_id}' is {row.state}; only a failed or cancelled run "
                               "is re-run")
            row.attempt += 1
            row.state, row.job_id, row.error, row.updated_at = "running", job_id, None, now()
            for s in self._stages(db, run_id):
                if s.state != "succeeded":
                    s.state, s.error, s.started_at, s.ended_at = "pending", None, None, None
            return self._record(db, row)

    def fail_unfinished(self, reason: str) -> int:
        """Runs a stopped service left running (their driver job was failed at its start):
        failed, with the stage they were in (re-run them). Runs another instance drives stay."""
        from tinymlaas.store import now

        with self.store.tx() as db:
            dead = select(JobRow.id).where(JobRow.state == JobState.failed.value)
            rows = list(db.scalars(select(PipelineRunRow).where(PipelineRunRow.state == "running",
                                                                PipelineRunRow.job_id.in_(dead))))
            for row in rows:
                row.state, row.error, row.updated_at = "failed", reason, now()
                for s in self._stages(db, row.id):
                    if s.state == "running":
                        s.state, s.error, s.ended_at = "failed", reason, now()
            return len(rows)

"""Groups of devices and rollouts: the plan (waves, thresholds), its state, and every device's
part in it, kept so that a rollout survives a restart of the service and carries on."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import Float, ForeignKey, Index, Integer, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.fleet.models import (
    FINAL_STATES,
    Group,
    GroupSpec,
    Rollout,
    RolloutState,
    RolloutTarget,
    TargetState,
    WaveStatus,
)
from tinymlaas.models import Deployment, UpdateOutcome
from tinymlaas.store.tables import Base, DeploymentRow

if TYPE_CHECKING:
    from tinymlaas.store import Store


class GroupRow(Base):
    __tablename__ = "device_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String, default="")
    query: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class RolloutRow(Base):
    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, default="")
    group_name: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    builds: Mapped[dict[str, Any]]
    waves: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String, default="")
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    success_threshold: Mapped[float] = mapped_column(Float)
    error_threshold: Mapped[float] = mapped_column(Float)
    manual_approval: Mapped[bool]
    rollback: Mapped[bool]
    devices: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    download_base: Mapped[str] = mapped_column(String)
    created_by: Mapped[str] = mapped_column(String, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RolloutTargetRow(Base):
    __tablename__ = "rollout_targets"
    __table_args__ = (Index("rollout_targets_wave", "rollout_id", "wave", "state"),)

    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    board: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String(32))
    build_id: Mapped[str] = mapped_column(String)
    deployment_id: Mapped[str | None] = mapped_column(String)
    previous_build_id: Mapped[str | None] = mapped_column(String)
    rollback_deployment_id: Mapped[str | None] = mapped_column(String)
    detail: Mapped[str] = mapped_column(String, default="")
    updated_at: Mapped[datetime]


def _group(r: GroupRow) -> Group:
    return Group(name=r.name, description=r.description, created_at=r.created_at, **r.query)


def _target(r: RolloutTargetRow) -> RolloutTarget:
    return RolloutTarget(endpoint=r.endpoint, wave=r.wave, board=r.board, state=cast(TargetState, r.state),
                         build_id=r.build_id, deployment_id=r.deployment_id,
                         previous_build_id=r.previous_build_id,
                         rollback_deployment_id=r.rollback_deployment_id, detail=r.detail,
                         updated_at=r.updated_at)


#: The columns of a target the rollout engine changes as it goes.
TARGET_FIELDS = frozenset({"state", "deployment_id", "previous_build_id", "rollback_deployment_id", "detail"})
ROLLOUT_FIELDS = frozenset({"state", "reason", "current_wave", "waive"})


class Rollouts:
    """Groups, rollouts and their targets."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- groups --------------------------------------------------------------------------------
    def add_group(self, spec: GroupSpec) -> Group:
        from tinymlaas.store import now

        row = GroupRow(name=spec.name, description=spec.description, created_at=now(),
                       query=spec.model_dump(include={"tags", "board", "devices"}))
        try:
            with self.store.tx() as db:
                if db.get(GroupRow, spec.name) is not None:
                    raise Conflict(f"group '{spec.name}' exists")
                db.add(row)
        except IntegrityError:
            raise Conflict(f"group '{spec.name}' exists") from None
        return _group(row)

    def groups(self) -> list[Group]:
        with self.store.read() as db:
            return [_group(r) for r in db.scalars(select(GroupRow).order_by(GroupRow.name))]

    def group(self, name: str) -> Group:
        with self.store.read() as db:
            row = db.get(GroupRow, name)
            if row is None:
                raise NotFound(f"no group '{name}'")
            return _group(row)

    def delete_group(self, name: str) -> None:
        with self.store.tx() as db:
            row = db.get(GroupRow, name)
            if row is None:
                raise NotFound(f"no group '{name}'")
            active = db.scalar(select(func.count()).select_from(RolloutRow).where(
                RolloutRow.group_name == name, RolloutRow.state.not_in(list(FINAL_STATES))))
            if active:
                raise Conflict(f"group '{name}' has {active} rollout(s) under way")
            db.delete(row)

    # -- rollouts ------------------------------------------------------------------------------
    def create(self, *, rollout_id: str, name: str, group: str, kind: str, builds: dict[str, str],
               sizes: list[int], success_threshold: float, error_threshold: float, manual_approval: bool,
               rollback: bool, job_id: str, download_base: str, created_by: str,
               targets: list[tuple[str, int, str, str]]) -> Rollout:
        """A new rollout with its targets (endpoint, wave, board, build id), running from wave 0."""
        from tinymlaas.store import now

        t = now()
        with self.store.tx() as db:
            db.add(RolloutRow(id=rollout_id, name=name, group_name=group, kind=kind, builds=builds,
                              waves={"sizes": sizes}, state="running", reason="", current_wave=0,
                              success_threshold=success_threshold, error_threshold=error_threshold,
                              manual_approval=manual_approval, rollback=rollback, devices=len(targets),
                              job_id=job_id, download_base=download_base, created_by=created_by,
                              created_at=t, updated_at=t))
            db.flush()
            db.add_all(RolloutTargetRow(rollout_id=rollout_id, endpoint=ep, wave=wave, board=board,
                                        state="pending", build_id=build, detail="", updated_at=t)
                       for ep, wave, board, build in targets)
        return self.get(rollout_id)

    def _row(self, db: Session, rollout_id: str) -> RolloutRow:
        row = db.get(RolloutRow, rollout_id)
        if row is None:
            raise NotFound(f"no rollout '{rollout_id}'")
        return row

    def get(self, rollout_id: str) -> Rollout:
        with self.store.read() as db:
            row = self._row(db, rollout_id)
            return self._rollout(db, row)

    def download_base(self, rollout_id: str) -> str:
        with self.store.read() as db:
            return self._row(db, rollout_id).download_base

    @staticmethod
    def _rollout(db: Session, r: RolloutRow) -> Rollout:
        counts: dict[int, dict[str, int]] = {}
        for wave, target_state, n in db.execute(
                select(RolloutTargetRow.wave, RolloutTargetRow.state, func.count())
                .where(RolloutTargetRow.rollout_id == r.id)
                .group_by(RolloutTargetRow.wave, RolloutTargetRow.state)):
            counts.setdefault(wave, {})[target_state] = int(n)
        waves = []
        for i, size in enumerate(r.waves["sizes"]):
            c = counts.get(i, {})
            started = size - c.get("pending", 0)
            finished = started - c.get("running", 0)
            state: Literal["pending", "running", "done"] = \
                "done" if finished == size else "running" if started else "pending"
            waves.append(WaveStatus(index=i, size=size, state=state, counts=c,
                                    waived=i in r.waves.get("waived", [])))
        return Rollout(id=r.id, name=r.name, group=r.group_name, kind=r.kind,  # type: ignore[arg-type]
                       builds=r.builds, state=cast(RolloutState, r.state), reason=r.reason,
                       current_wave=r.current_wave, waves=waves, success_threshold=r.success_threshold,
                       error_threshold=r.error_threshold, manual_approval=r.manual_approval,
                       rollback=r.rollback, devices=r.devices, job_id=r.job_id, created_by=r.created_by,
                       created_at=r.created_at, updated_at=r.updated_at)

    def all(self, limit: int = 100) -> list[Rollout]:
        with self.store.read() as db:
            rows = db.scalars(select(RolloutRow).order_by(RolloutRow.created_at.desc()).limit(limit))
            return [self._rollout(db, r) for r in rows]

    def unfinished(self) -> list[str]:
        with self.store.read() as db:
            return list(db.scalars(select(RolloutRow.id).where(RolloutRow.state.not_in(list(FINAL_STATES)))
                                   .order_by(RolloutRow.created_at)))

    def set(self, rollout_id: str, **fields: Any) -> Rollout:
        from tinymlaas.store import now

        unknown = set(fields) - ROLLOUT_FIELDS
        if unknown:
            raise ValueError(f"rollouts have no column(s) {unknown}")
        with self.store.tx() as db:
            row = self._row(db, rollout_id)
            waive = fields.pop("waive", None)
            if waive is not None:  # an operator resumed this wave: its thresholds no longer hold it
                row.waves = {**row.waves, "waived": sorted({*row.waves.get("waived", []), int(waive)})}
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = now()
        return self.get(rollout_id)

    # -- targets -------------------------------------------------------------------------------
    def targets(self, rollout_id: str, *, wave: int | None = None, states: Iterable[str] | None = None,
                limit: int = 10_000, offset: int = 0) -> list[RolloutTarget]:
        query = select(RolloutTargetRow).where(RolloutTargetRow.rollout_id == rollout_id)
        if wave is not None:
            query = query.where(RolloutTargetRow.wave == wave)
        if states is not None:
            query = query.where(RolloutTargetRow.state.in_(list(states)))
        with self.store.read() as db:
            self._row(db, rollout_id)
            return [_target(r) for r in db.scalars(query.order_by(RolloutTargetRow.wave,
                                                                   RolloutTargetRow.endpoint)
                                                    .limit(limit).offset(offset))]

    def record(self, targets: dict[str, dict[str, dict[str, Any]]], deployments: list[Deployment],
               outcomes: list[tuple[str, UpdateOutcome]]) -> None:
        """What the rollouts did since the last write, in one transaction: targets' changes
        (rollout -> endpoint -> columns), the deployments they started and how those ended."""
        from tinymlaas.store import now

        t = now()
        with self.store.tx() as db:
            db.add_all(DeploymentRow(id=d.id, job_id=d.job_id, build_id=d.build_id, endpoint=d.endpoint,
                                     kind=d.kind, package_sha256=d.package_sha256, outcome=None,
                                     created_at=d.created_at) for d in deployments)
            db.flush()
            for dep_id, outcome in outcomes:
                db.execute(update(DeploymentRow).where(DeploymentRow.id == dep_id)
                           .values(outcome=outcome.model_dump(mode="json")))
            for rollout_id, changes in targets.items():
                for ep, fields in changes.items():
                    unknown = set(fields) - TARGET_FIELDS
                    if unknown:
                        raise ValueError(f"rollout targets have no column(s) {unknown}")
                    db.execute(update(RolloutTargetRow).where(RolloutTargetRow.rollout_id == rollout_id,
                                                              RolloutTargetRow.endpoint == ep)
                               .values(**fields, updated_at=t))

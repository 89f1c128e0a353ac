"""The CFO's tables: cloud endpoints with what they served, the hybrid policy the service gave each
device with its escalation count, and hybrid evaluations; plus the measurements a cost comparison
reads (profiles are kept as the results of their jobs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from tinymlaas.cost.models import Endpoint, HybridEvaluation, Policy
from tinymlaas.datasets.models import Profile
from tinymlaas.errors import NotFound
from tinymlaas.models import JobState
from tinymlaas.store.tables import Base, JobRow, ModelRow

if TYPE_CHECKING:
    from tinymlaas.store import Store


class EndpointRow(Base):
    __tablename__ = "hybrid_endpoints"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String)
    sha256: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]
    served: Mapped[int] = mapped_column(Integer, default=0)
    compute_us: Mapped[int] = mapped_column(BigInteger, default=0)


class PolicyRow(Base):
    __tablename__ = "hybrid_policies"

    device: Mapped[str] = mapped_column(String, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("hybrid_endpoints.id", ondelete="CASCADE"),
                                             index=True)
    threshold: Mapped[float] = mapped_column(Float)
    set_at: Mapped[datetime]
    escalations: Mapped[int] = mapped_column(Integer, default=0)


class HybridEvaluationRow(Base):
    __tablename__ = "hybrid_evaluations"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    threshold: Mapped[float] = mapped_column(Float)
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


def _endpoint(r: EndpointRow, model: ModelRow) -> Endpoint:
    return Endpoint.model_validate({
        "id": r.id, "model_id": r.model_id, "model": f"{model.name}:{model.version}", "variant": r.variant,
        "sha256": r.sha256, "device_model_sha256": model.sha256, "created_at": r.created_at,
        "served": r.served, "compute_us": r.compute_us})


def _policy(r: PolicyRow) -> Policy:
    return Policy(device=r.device, cloud=r.endpoint_id, threshold=r.threshold, set_at=r.set_at,
                  escalations=r.escalations)


class Costs:
    """Cloud endpoints, device policies and escalation counts, hybrid evaluations."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- endpoints ----------------------------------------------------------------------------
    def add_endpoint(self, model_id: str, variant: str, sha256: str) -> Endpoint:
        from tinymlaas.store import now

        with self.store.tx() as db:
            db.add(EndpointRow(id=uuid.uuid4().hex[:12], model_id=model_id, variant=variant, sha256=sha256,
                               created_at=now(), served=0, compute_us=0))
        return self.endpoints(model_id)[0]

    def endpoints(self, model_id: str | None = None) -> list[Endpoint]:
        query = (select(EndpointRow, ModelRow).join(ModelRow, ModelRow.id == EndpointRow.model_id)
                 .order_by(EndpointRow.created_at.desc()))
        if model_id is not None:
            query = query.where(EndpointRow.model_id == model_id)
        with self.store.read() as db:
            return [_endpoint(e, m) for e, m in db.execute(query).all()]

    def endpoint(self, endpoint_id: str) -> Endpoint:
        with self.store.read() as db:
            row = db.execute(select(EndpointRow, ModelRow).join(ModelRow, ModelRow.id == EndpointRow.model_id)
                             .where(EndpointRow.id == endpoint_id)).first()
        if row is None:
            raise NotFound(f"no cloud endpoint '{endpoint_id}'")
        return _endpoint(row[0], row[1])

    def delete_endpoint(self, endpoint_id: str) -> None:
        with self.store.tx() as db:
            row = db.get(EndpointRow, endpoint_id)
            if row is None:
                raise NotFound(f"no cloud endpoint '{endpoint_id}'")
            db.execute(delete(PolicyRow).where(PolicyRow.endpoint_id == endpoint_id))
            db.delete(row)

    # -- policies and counts ----------------------------------------------------------------------
    def set_policy(self, device: str, endpoint_id: str, threshold: float) -> Policy:
        """The policy given to a device; its escalation count goes on while it escalates to the same
        endpoint, and starts again for another one."""
        from tinymlaas.store import now

        with self.store.tx() as db:
            row = db.get(PolicyRow, device)
            if row is None:
                row = PolicyRow(device=device, escalations=0)
                db.add(row)
            elif row.endpoint_id != endpoint_id:
                row.escalations = 0
            row.endpoint_id, row.threshold, row.set_at = endpoint_id, threshold, now()
            db.flush()
            return _policy(row)

    def policy(self, device: str) -> Policy:
        with self.store.read() as db:
            row = db.get(PolicyRow, device)
            if row is None:
                raise NotFound(f"device '{device}' has no hybrid policy")
            return _policy(row)

    def policies(self) -> list[Policy]:
        with self.store.read() as db:
            return [_policy(r) for r in db.scalars(select(PolicyRow).order_by(PolicyRow.device))]

    def drop_policy(self, device: str) -> None:
        with self.store.tx() as db:
            row = db.get(PolicyRow, device)
            if row is None:
                raise NotFound(f"device '{device}' has no hybrid policy")
            db.delete(row)

    def count_escalations(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        """Escalations answered, by (device, endpoint): how many and their interpreter time (us);
        counted for each device and endpoint in one transaction."""
        with self.store.tx() as db:
            for (device, endpoint_id), (n, compute_us) in counts.items():
                db.execute(update(PolicyRow).where(PolicyRow.device == device)
                           .values(escalations=PolicyRow.escalations + n))
                db.execute(update(EndpointRow).where(EndpointRow.id == endpoint_id).values(
                    served=EndpointRow.served + n, compute_us=EndpointRow.compute_us + compute_us))

    # -- hybrid evaluations ----------------------------------------------------------------------
    def add_evaluation(self, evaluation: HybridEvaluation) -> HybridEvaluation:
        with self.store.tx() as db:
            db.add(HybridEvaluationRow(id=evaluation.id, model_id=evaluation.model_id,
                                       threshold=evaluation.threshold,
                                       record=evaluation.model_dump(mode="json"),
                                       created_at=evaluation.created_at))
        return evaluation

    def evaluation(self, evaluation_id: str) -> HybridEvaluation:
        with self.store.read() as db:
            row = db.get(HybridEvaluationRow, evaluation_id)
            if row is None:
                raise NotFound(f"no hybrid evaluation '{evaluation_id}'")
            return HybridEvaluation.model_validate(row.record)

    def evaluations(self, model_id: str | None = None, threshold: float | None = None,
                    limit: int = 100) -> list[HybridEvaluation]:
        """Newest first."""
        query = select(HybridEvaluationRow).order_by(HybridEvaluationRow.created_at.desc()).limit(limit)
        if model_id is not None:
            query = query.where(HybridEvaluationRow.model_id == model_id)
        if threshold is not None:
            query = query.where(HybridEvaluationRow.threshold.between(threshold - 1e-9, threshold + 1e-9))
        with self.store.read() as db:
            return [HybridEvaluation.model_validate(r.record) for r in db.scalars(query)]

    # -- measurements kept elsewhere ---------------------------------------------------------------
    def profiles(self, model_id: str, limit: int = 50) -> list[tuple[str, datetime, Profile]]:
        """The model's succeeded profile jobs, newest first: (job id, when, the profile)."""
        query = (select(JobRow).where(JobRow.kind == "profile", JobRow.state == JobState.succeeded.value)
                 .order_by(JobRow.updated_at.desc()).limit(500))
        out = []
        with self.store.read() as db:
            for row in db.scalars(query):
                result = row.result or {}
                if result.get("model_id") == model_id:
                    out.append((row.id, row.updated_at, Profile.model_validate(result)))
                if len(out) >= limit:
                    break
        return out

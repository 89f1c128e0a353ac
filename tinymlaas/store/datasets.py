"""Datasets, their samples and versions; training runs, model lineage and evaluations.

Versions are copy-on-write: a sample row lives in versions ``added_in <= v < removed_in``. The
head version takes uploads and labels in place until a model is trained on it (it is *locked*);
the next change then opens version head + 1, and a changed sample gets a new row there, so every
locked version reads exactly as it was trained on. Sample data are artifacts (content-addressed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, Integer, String, and_, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from tinymlaas.datasets.models import (
    Counts,
    Dataset,
    DatasetCreate,
    DatasetVersion,
    EpochMetrics,
    Evaluation,
    Lineage,
    Sample,
    SamplePage,
    SampleSpec,
    Split,
    SplitSpec,
    Task,
    Training,
    TrainingSettings,
    TrainingState,
)
from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.store.tables import Base, Json

if TYPE_CHECKING:
    from tinymlaas.store import Store


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    task: Mapped[str] = mapped_column(String)
    spec: Mapped[dict[str, Any]]
    split: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(String, default="")
    head: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    locked_at: Mapped[datetime | None]


class SampleRow(Base):
    __tablename__ = "dataset_samples"
    __table_args__ = (
        Index("dataset_samples_live", "dataset_id", "added_in", "removed_in"),
        Index("dataset_samples_key", "dataset_id", "key"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    key: Mapped[str] = mapped_column(String)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String)
    split: Mapped[str] = mapped_column(String)
    sha256: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)
    added_in: Mapped[int] = mapped_column(Integer)
    removed_in: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class TrainingRow(Base):
    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    dataset_version: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String)
    epochs: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    model_id: Mapped[str | None] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(String)
    seconds: Mapped[float | None]
    created_at: Mapped[datetime]


class LineageRow(Base):
    __tablename__ = "model_lineage"
    __table_args__ = (Index("model_lineage_dataset", "dataset_id", "dataset_version"),)

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    dataset_version: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (Index("evaluations_model", "model_id", "created_at"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    record: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


def _now() -> datetime:
    from tinymlaas.store import now

    return now()


def _id() -> str:
    return uuid.uuid4().hex[:12]


def _live(version: int) -> ColumnElement[bool]:
    return and_(
        SampleRow.added_in <= version, or_(SampleRow.removed_in.is_(None), SampleRow.removed_in > version)
    )


def _dataset(r: DatasetRow) -> Dataset:
    return Dataset(
        id=r.id,
        name=r.name,
        task=Task(r.task),
        spec=SampleSpec.model_validate(r.spec),
        split=SplitSpec.model_validate(r.split),
        description=r.description,
        head=r.head,
        created_at=r.created_at,
    )


def _sample(r: SampleRow) -> Sample:
    return Sample(
        id=r.key,
        label=r.label,
        split=Split(r.split),
        sha256=r.sha256,
        source=r.source,
        version=r.added_in,
        created_at=r.created_at,
    )


def _training(r: TrainingRow) -> Training:
    return Training(
        id=r.id,
        job_id=r.job_id,
        dataset_id=r.dataset_id,
        dataset_version=r.dataset_version,
        settings=TrainingSettings.model_validate(r.settings),
        state=TrainingState(r.state),
        epochs=[EpochMetrics.model_validate(e) for e in r.epochs],
        model_id=r.model_id,
        error=r.error,
        seconds=r.seconds,
        created_at=r.created_at,
    )


class NewSample:
    """A sample to add: its data already in the artifact store."""

    __slots__ = ("label", "sha256", "source", "split")

    def __init__(self, sha256: str, label: str | None, split: Split, source: str) -> None:
        self.sha256, self.label, self.split, self.source = sha256, label, split, source


class Datasets:
    """The data scientist's tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- datasets -------------------------------------------------------------------------
    def create(self, req: DatasetCreate) -> Dataset:
        with self.store.tx() as db:
            if db.scalars(select(DatasetRow).where(DatasetRow.name == req.name)).first() is not None:
                raise Conflict(f"dataset '{req.name}' exists")
            row = DatasetRow(
                id=_id(),
                name=req.name,
                task=req.task.value,
                spec=req.spec.model_dump(),
                split=req.split.model_dump(),
                description=req.description,
                head=1,
                created_at=_now(),
            )
            db.add(row)
            db.add(DatasetVersionRow(dataset_id=row.id, version=1, created_at=row.created_at, locked_at=None))
            return _dataset(row)

    def get(self, ref: str) -> Dataset:
        """By id or name."""
        with self.store.read() as db:
            row = (
                db.get(DatasetRow, ref)
                or db.scalars(select(DatasetRow).where(DatasetRow.name == ref)).first()
            )
            if row is None:
                raise NotFound(f"no dataset '{ref}'")
            return _dataset(row)

    def all(self) -> list[Dataset]:
        with self.store.read() as db:
            return [_dataset(r) for r in db.scalars(select(DatasetRow).order_by(DatasetRow.name))]

    def update(self, dataset_id: str, *, add_classes: list[str], description: str | None) -> Dataset:
        with self.store.tx() as db:
            row = self._row(db, dataset_id)
            spec = SampleSpec.model_validate(row.spec)
            clash = [c for c in add_classes if c in spec.classes]
            if clash:
                raise Conflict(f"the dataset already has class(es) {', '.join(clash)}")
            try:
                spec = SampleSpec.model_validate({**row.spec, "classes": [*spec.classes, *add_classes]})
            except ValueError as exc:
                raise InvalidInput(f"classes: {exc}") from None
            row.spec = spec.model_dump()
            if description is not None:
                row.description = description
            return _dataset(row)

    def delete(self, dataset_id: str) -> None:
        with self.store.tx() as db:
            used = db.scalar(
                select(func.count()).select_from(LineageRow).where(LineageRow.dataset_id == dataset_id)
            )
            trained = db.scalar(
                select(func.count()).select_from(TrainingRow).where(TrainingRow.dataset_id == dataset_id)
            )
            if used or trained:
                raise Conflict(f"dataset '{dataset_id}' has models or trainings made from it")
            db.execute(delete(SampleRow).where(SampleRow.dataset_id == dataset_id))
            db.execute(delete(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset_id))
            db.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))

    @staticmethod
    def _row(db: Session, dataset_id: str) -> DatasetRow:
        row = db.get(DatasetRow, dataset_id)
        if row is None:
            raise NotFound(f"no dataset '{dataset_id}'")
        return row

    def _head(self, db: Session, dataset_id: str) -> int:
        """The version a change goes into: the head, or a new one when the head is locked."""
        row = self._row(db, dataset_id)
        head = db.get(DatasetVersionRow, (dataset_id, row.head))
        if head is not None and head.locked_at is not None:
            row.head += 1
            db.add(
                DatasetVersionRow(dataset_id=dataset_id, version=row.head, created_at=_now(), locked_at=None)
            )
            db.flush()
        return row.head

    # -- samples --------------------------------------------------------------------------
    def add_samples(self, dataset_id: str, items: Iterable[NewSample]) -> tuple[int, list[Sample]]:
        """Add samples to the head in one transaction; returns the version and the records."""
        with self.store.tx() as db:
            version, t = self._head(db, dataset_id), _now()
            rows = [
                SampleRow(
                    id=_id() + _id(),
                    key=_id(),
                    dataset_id=dataset_id,
                    label=s.label,
                    split=s.split.value,
                    sha256=s.sha256,
                    source=s.source,
                    added_in=version,
                    removed_in=None,
                    created_at=t,
                )
                for s in items
            ]
            db.add_all(rows)
            return version, [_sample(r) for r in rows]

    def _live_rows(self, db: Session, dataset_id: str, version: int, keys: list[str]) -> list[SampleRow]:
        rows: list[SampleRow] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows += db.scalars(
                select(SampleRow).where(
                    SampleRow.dataset_id == dataset_id, SampleRow.key.in_(chunk), _live(version)
                )
            )
        missing = set(keys) - {r.key for r in rows}
        if missing:
            few = sorted(missing)[:5]
            raise NotFound(
                f"no sample(s) {', '.join(few)}{' ...' if len(missing) > 5 else ''} in this dataset",
                missing=sorted(missing),
            )
        return rows

    def set_label(self, dataset_id: str, keys: list[str], label: str | None) -> tuple[int, int]:
        """Label (or unlabel) samples of the head; all or none. Returns (version, changed)."""
        keys = list(dict.fromkeys(keys))
        with self.store.tx() as db:
            version = self._head(db, dataset_id)
            changed = 0
            for row in self._live_rows(db, dataset_id, version, keys):
                if row.label == label:
                    continue
                changed += 1
                if row.added_in == version:  # only this unlocked version has it: change in place
                    row.label = label
                    continue
                row.removed_in = version
                db.add(
                    SampleRow(
                        id=_id() + _id(),
                        key=row.key,
                        dataset_id=dataset_id,
                        label=label,
                        split=row.split,
                        sha256=row.sha256,
                        source=row.source,
                        added_in=version,
                        removed_in=None,
                        created_at=_now(),
                    )
                )
            return version, changed

    def remove_samples(self, dataset_id: str, keys: list[str]) -> int:
        keys = list(dict.fromkeys(keys))
        with self.store.tx() as db:
            version = self._head(db, dataset_id)
            for row in self._live_rows(db, dataset_id, version, keys):
                if row.added_in == version:
                    db.delete(row)
                else:
                    row.removed_in = version
            return version

    def samples(
        self,
        dataset_id: str,
        version: int,
        *,
        label: str | None = None,
        unlabelled: bool = False,
        split: Split | None = None,
        source: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> SamplePage:
        where = [SampleRow.dataset_id == dataset_id, _live(version)]
        if unlabelled:
            where.append(SampleRow.label.is_(None))
        elif label is not None:
            where.append(SampleRow.label == label)
        if split is not None:
            where.append(SampleRow.split == split.value)
        if source is not None:
            where.append(SampleRow.source.startswith(source, autoescape=True))
        with self.store.read() as db:
            total = db.scalar(select(func.count()).select_from(SampleRow).where(*where)) or 0
            rows = db.scalars(
                select(SampleRow)
                .where(*where)
                .order_by(SampleRow.created_at, SampleRow.key)
                .offset(offset)
                .limit(limit)
            )
            return SamplePage(total=total, offset=offset, limit=limit, items=[_sample(r) for r in rows])

    def sample(self, dataset_id: str, key: str, version: int) -> Sample:
        with self.store.read() as db:
            return _sample(self._live_rows(db, dataset_id, version, [key])[0])

    def labelled(
        self, dataset_id: str, version: int, split: Split | None = None
    ) -> list[tuple[str, str, Split]]:
        """(sha256, label, split) of every labelled sample of a version, ordered by content, so the
        same data trains the same model however it was uploaded."""
        where = [SampleRow.dataset_id == dataset_id, _live(version), SampleRow.label.is_not(None)]
        if split is not None:
            where.append(SampleRow.split == split.value)
        with self.store.read() as db:
            rows = db.execute(
                select(SampleRow.sha256, SampleRow.label, SampleRow.split)
                .where(*where)
                .order_by(SampleRow.sha256, SampleRow.label)
            )
            return [(sha, str(lab), Split(sp)) for sha, lab, sp in rows]

    def counts(self, dataset_id: str, version: int) -> Counts:
        live = [SampleRow.dataset_id == dataset_id, _live(version)]
        with self.store.read() as db:
            by_label: dict[str | None, int] = {
                k: v for k, v in db.execute(select(SampleRow.label, func.count()).where(*live)
                                            .group_by(SampleRow.label))
            }
            by_split: dict[str, int] = {
                k: v for k, v in db.execute(select(SampleRow.split, func.count()).where(*live)
                                            .group_by(SampleRow.split))
            }
        unlabelled = by_label.pop(None, 0)
        return Counts(
            total=sum(by_split.values()),
            unlabelled=unlabelled,
            labels={str(k): v for k, v in sorted(by_label.items(), key=lambda kv: str(kv[0]))},
            splits=by_split,
        )

    # -- versions -------------------------------------------------------------------------
    def versions(self, dataset_id: str) -> list[DatasetVersion]:
        with self.store.read() as db:
            rows = list(
                db.scalars(
                    select(DatasetVersionRow)
                    .where(DatasetVersionRow.dataset_id == dataset_id)
                    .order_by(DatasetVersionRow.version)
                )
            )
            query = select(LineageRow.dataset_version, LineageRow.model_id).where(
                LineageRow.dataset_id == dataset_id)
            models = [(v, m) for v, m in db.execute(query)]
        return [
            DatasetVersion(
                version=r.version,
                locked=r.locked_at is not None,
                models=[m for v, m in models if v == r.version],
                counts=self.counts(dataset_id, r.version),
                created_at=r.created_at,
            )
            for r in rows
        ]

    def check_version(self, dataset_id: str, version: int) -> None:
        with self.store.read() as db:
            if db.get(DatasetVersionRow, (dataset_id, version)) is None:
                raise NotFound(f"dataset '{dataset_id}' has no version {version}")

    def lock(self, dataset_id: str, version: int) -> None:
        """From now on this version never changes (a model is made from it)."""
        with self.store.tx() as db:
            db.execute(
                update(DatasetVersionRow)
                .where(
                    DatasetVersionRow.dataset_id == dataset_id,
                    DatasetVersionRow.version == version,
                    DatasetVersionRow.locked_at.is_(None),
                )
                .values(locked_at=_now())
            )

    # -- trainings ------------------------------------------------------------------------
    def add_training(
        self, *, job_id: str, dataset_id: str, version: int, settings: TrainingSettings
    ) -> Training:
        with self.store.tx() as db:
            row = TrainingRow(
                id=_id(),
                job_id=job_id,
                dataset_id=dataset_id,
                dataset_version=version,
                settings=settings.model_dump(mode="json"),
                state=TrainingState.queued.value,
                epochs=[],
                model_id=None,
                error=None,
                seconds=None,
                created_at=_now(),
            )
            db.add(row)
            return _training(row)

    _TRAINING_FIELDS = frozenset({"state", "epochs", "model_id", "error", "seconds"})

    def update_training(self, training_id: str, **fields: Any) -> None:
        unknown = set(fields) - self._TRAINING_FIELDS
        if unknown:
            raise ValueError(f"trainings have no column(s) {unknown}")
        if "state" in fields:
            fields["state"] = TrainingState(fields["state"]).value
        with self.store.tx() as db:
            db.execute(update(TrainingRow).where(TrainingRow.id == training_id).values(**fields))

    def training(self, training_id: str) -> Training:
        with self.store.read() as db:
            row = db.get(TrainingRow, training_id)
            if row is None:
                raise NotFound(f"no training '{training_id}'")
            return _training(row)

    def trainings(self, limit: int = 100) -> list[Training]:
        with self.store.read() as db:
            query = select(TrainingRow).order_by(TrainingRow.created_at.desc()).limit(limit)
            return [_training(r) for r in db.scalars(query)]

    def fail_unfinished_trainings(self, reason: str) -> None:
        with self.store.tx() as db:
            db.execute(
                update(TrainingRow)
                .where(TrainingRow.state.in_([TrainingState.queued.value, TrainingState.running.value]))
                .values(state=TrainingState.failed.value, error=reason)
            )

    # -- lineage --------------------------------------------------------------------------
    def add_lineage(self, lineage: Lineage) -> Lineage:
        with self.store.tx() as db:
            db.merge(
                LineageRow(
                    model_id=lineage.model_id,
                    dataset_id=lineage.dataset_id,
                    dataset_version=lineage.dataset_version,
                    record=lineage.model_dump(mode="json"),
                    created_at=lineage.created_at,
                )
            )
        return lineage

    def lineage(self, model_id: str) -> Lineage:
        with self.store.read() as db:
            row = db.get(LineageRow, model_id)
            if row is None:
                raise NotFound(f"model '{model_id}' has no lineage: it was not trained or imported here")
            return Lineage.model_validate(row.record)

    # -- evaluations ----------------------------------------------------------------------
    def add_evaluation(self, evaluation: Evaluation) -> Evaluation:
        with self.store.tx() as db:
            db.add(
                EvaluationRow(
                    id=evaluation.id,
                    model_id=evaluation.model_id,
                    record=evaluation.model_dump(mode="json"),
                    created_at=evaluation.created_at,
                )
            )
        return evaluation

    def evaluation(self, evaluation_id: str) -> Evaluation:
        with self.store.read() as db:
            row = db.get(EvaluationRow, evaluation_id)
            if row is None:
                raise NotFound(f"no evaluation '{evaluation_id}'")
            return Evaluation.model_validate(row.record)

    def evaluations(self, model_id: str | None = None, limit: int = 100) -> list[Evaluation]:
        query = select(EvaluationRow).order_by(EvaluationRow.created_at.desc()).limit(limit)
        if model_id is not None:
            query = query.where(EvaluationRow.model_id == model_id)
        with self.store.read() as db:
            return [Evaluation.model_validate(r.record) for r in db.scalars(query)]

"""The fleet's telemetry: devices online over time, each device's last figures, and inferences
per hour and board (from the growth of the devices' own inference counters)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Integer, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from tinymlaas.models_telemetry import DeviceSample, DeviceTelemetry, FleetPoint, InferenceHour
from tinymlaas.store.tables import Base

if TYPE_CHECKING:
    from tinymlaas.store import Store

#: How long the online/offline history is kept (the dashboard shows the last day).
KEEP = timedelta(days=7)


class FleetRow(Base):
    __tablename__ = "telemetry_fleet"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    online: Mapped[int] = mapped_column(Integer)
    offline: Mapped[int] = mapped_column(Integer)


class DeviceRow(Base):
    __tablename__ = "telemetry_devices"

    endpoint: Mapped[str] = mapped_column(String, primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean)
    board: Mapped[str | None] = mapped_column(String)
    firmware_version: Mapped[str | None] = mapped_column(String)
    model_sha256: Mapped[str | None] = mapped_column(String)
    model_name: Mapped[str | None] = mapped_column(String)
    runtime: Mapped[str | None] = mapped_column(String)
    inference_count: Mapped[int | None] = mapped_column(Integer)
    latency_us: Mapped[int | None] = mapped_column(Integer)
    instructions: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[datetime | None]


class InferenceRow(Base):
    __tablename__ = "telemetry_inferences"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    board: Mapped[str] = mapped_column(String, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


_FIGURES = ("board", "firmware_version", "model_sha256", "model_name", "runtime", "inference_count",
            "latency_us", "instructions")


def inference_delta(before: int | None, now: int | None, *, fresh: bool) -> int:
    """Inferences since the previous tick from a device's counter: a counter that went down was
    reset (the device restarted) and counts from zero; a device seen for the first time counts
    only if it came up since the previous tick (otherwise its history is unknown)."""
    if now is None:
        return 0
    if before is None:
        return now if fresh else 0
    return now - before if now >= before else now


class Telemetry:
    """Repository of the telemetry tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, at: datetime, samples: list[DeviceSample]) -> int:
        """One tick: the fleet's counts, each device's figures (kept when a device could not be
        read), and the inferences since the previous tick. Returns those inferences."""
        hour = at.replace(minute=0, second=0, microsecond=0)
        per_board: dict[str, int] = {}
        with self.store.tx() as db:
            known = {r.endpoint: r for r in db.scalars(select(DeviceRow))}
            online = sum(s.online for s in samples)
            db.add(FleetRow(at=at, online=online, offline=len(samples) - online))
            for s in samples:
                row = known.get(s.endpoint)
                if row is None:
                    row = DeviceRow(endpoint=s.endpoint, online=s.online)
                    db.add(row)
                row.online = s.online
                if s.inference_count is None:  # not read this tick: keep what was known
                    continue
                delta = inference_delta(row.inference_count, s.inference_count, fresh=s.fresh)
                if delta:
                    board = s.board or "unknown"
                    per_board[board] = per_board.get(board, 0) + delta
                for name in _FIGURES:
                    setattr(row, name, getattr(s, name))
                row.seen_at = at
            for board, count in per_board.items():
                self._add_inferences(db, hour, board, count)
            db.execute(delete(FleetRow).where(FleetRow.at < at - KEEP))
        return sum(per_board.values())

    @staticmethod
    def _add_inferences(db: Session, hour: datetime, board: str, count: int) -> None:
        """Add to the hour's bucket in one statement (several service instances may share it)."""
        dialect: Any = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(InferenceRow).values(hour=hour, board=board, count=count)
        db.execute(stmt.on_conflict_do_update(index_elements=["hour", "board"],
                                              set_={"count": InferenceRow.count + count}))

    def history(self, since: datetime) -> list[FleetPoint]:
        with self.store.read() as db:
            rows = db.scalars(select(FleetRow).where(FleetRow.at >= since).order_by(FleetRow.at))
            return [FleetPoint(at=r.at, online=r.online, offline=r.offline) for r in rows]

    def last_tick(self) -> datetime | None:
        with self.store.read() as db:
            return db.scalar(select(FleetRow.at).order_by(FleetRow.at.desc()).limit(1))

    def devices(self) -> list[DeviceTelemetry]:
        """Plain rows, not ORM objects: the pages read a thousand of these per view."""
        with self.store.read() as db:
            rows = db.execute(select(DeviceRow.__table__).order_by(DeviceRow.endpoint)).mappings()
            return [DeviceTelemetry.model_validate(dict(r)) for r in rows]

    def inferences(self, since: datetime) -> list[InferenceHour]:
        with self.store.read() as db:
            rows = db.scalars(select(InferenceRow).where(InferenceRow.hour >= since)
                              .order_by(InferenceRow.hour, InferenceRow.board))
            return [InferenceHour(hour=r.hour, board=r.board, count=r.count) for r in rows]

"""The device registry: the durable record of every device and bridge, their tags and history.

The orchestrators keep the live registration state; this is what stays: who is
expected (pre-registered), who is held for approval, who was decommissioned, what
each device last reported and when it was last seen. Tags are rows of their own
(indexed), so a filtered list of ten thousand devices is one indexed query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ForeignKey, Index, Integer, Row, String, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import Select

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.fleet.models import (
    DeviceEvent,
    DeviceFacts,
    DeviceKind,
    DevicePatch,
    DeviceQuery,
    DeviceSpec,
    DeviceState,
    RegisteredDevice,
    Sighting,
)
from tinymlaas.store.tables import Base

if TYPE_CHECKING:
    from tinymlaas.store import Store


class DeviceRow(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("devices_kind_endpoint", "kind", "endpoint"),)

    endpoint: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String, default="")
    board: Mapped[str | None] = mapped_column(String, index=True)
    location: Mapped[str] = mapped_column(String, default="")
    notes: Mapped[str] = mapped_column(String, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    bridge: Mapped[str | None] = mapped_column(String(128), index=True)
    health: Mapped[str | None] = mapped_column(String)
    online: Mapped[bool] = mapped_column(default=False, index=True)
    last_seen: Mapped[datetime | None]
    firmware_version: Mapped[str | None] = mapped_column(String, index=True)
    model_sha256: Mapped[str | None] = mapped_column(String, index=True)
    model_name: Mapped[str | None] = mapped_column(String)
    facts: Mapped[dict[str, Any] | None]
    build_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    decommissioned_at: Mapped[datetime | None]


class DeviceTagRow(Base):
    __tablename__ = "device_tags"
    __table_args__ = (Index("device_tags_tag", "tag", "endpoint"),)

    endpoint: Mapped[str] = mapped_column(ForeignKey("devices.endpoint", ondelete="CASCADE"),
                                          primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class DeviceEventRow(Base):
    """A device's history; no foreign key, so it outlives the device's record."""

    __tablename__ = "device_events"
    __table_args__ = (Index("device_events_endpoint", "endpoint", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String, default="")


def _record(r: DeviceRow | Row[Any], tags: list[str]) -> RegisteredDevice:
    """A row (an ORM row, or a plain one of the same columns: lists read those, faster) as a record."""
    # Built without validation: the columns hold what the record's fields were validated as.
    return RegisteredDevice.model_construct(
        endpoint=r.endpoint, online=r.online, kind=cast(DeviceKind, r.kind), name=r.name, board=r.board,
        tags=tags, location=r.location, notes=r.notes, state=cast(DeviceState, r.state), bridge=r.bridge,
        health=r.health, last_seen=r.last_seen, firmware_version=r.firmware_version,
        model_sha256=r.model_sha256, model_name=r.model_name,
        reported=DeviceFacts.model_construct(**r.facts) if r.facts else None,
        build_id=r.build_id, created_at=r.created_at, decommissioned_at=r.decommissioned_at)


class Devices:
    """The registry's tables. Reads return :class:`RegisteredDevice` records (without the
    orchestrator's live fields, which the registry service adds)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- one device ------------------------------------------------------------------------
    def add(self, spec: DeviceSpec, *, kind: DeviceKind = "device", state: DeviceState = "expected"
            ) -> RegisteredDevice:
        from tinymlaas.store import now

        t = now()
        try:
            with self.store.tx() as db:
                if db.get(DeviceRow, spec.endpoint) is not None:
                    raise Conflict(f"'{spec.endpoint}' is already registered")
                db.add(DeviceRow(endpoint=spec.endpoint, kind=kind, name=spec.name, board=spec.board,
                                 location=spec.location, notes=spec.notes, state=state, online=False,
                                 created_at=t, updated_at=t))
                db.flush()
                db.add_all(DeviceTagRow(endpoint=spec.endpoint, tag=tag) for tag in spec.tags)
                db.add(DeviceEventRow(endpoint=spec.endpoint, at=t, kind="registered",
                                      detail=f"pre-registered as {kind}" if state == "expected" else state))
        except IntegrityError:  # another writer added it between the check and the insert
            raise Conflict(f"'{spec.endpoint}' is already registered") from None
        return self.get(spec.endpoint)

    def add_many(self, specs: Sequence[DeviceSpec], *, state: DeviceState = "expected") -> int:
        """Pre-register many devices in one transaction (fleet imports); Conflict on any known one."""
        from tinymlaas.store import now

        t = now()
        try:
            with self.store.tx() as db:
                db.add_all(DeviceRow(endpoint=s.endpoint, kind="device", name=s.name, board=s.board,
                                     location=s.location, notes=s.notes, state=state, online=False,
                                     created_at=t, updated_at=t) for s in specs)
                db.flush()
                db.add_all(DeviceTagRow(endpoint=s.endpoint, tag=tag) for s in specs for tag in s.tags)
        except IntegrityError as exc:
            raise Conflict(f"some of these devices are already registered: {exc.orig}") from None
        return len(specs)

    def find(self, endpoint: str) -> RegisteredDevice | None:
        with self.store.read() as db:
            row = db.get(DeviceRow, endpoint)
            return None if row is None else _record(row, self._tags(db, [endpoint]).get(endpoint, []))

    def get(self, endpoint: str, kind: DeviceKind | None = None) -> RegisteredDevice:
        found = self.find(endpoint)
        if found is None or (kind is not None and found.kind != kind):
            raise NotFound(f"no {kind or 'device'} '{endpoint}' is registered")
        return found

    def patch(self, endpoint: str, patch: DevicePatch) -> RegisteredDevice:
        from tinymlaas.store import now

        with self.store.tx() as db:
            row = db.get(DeviceRow, endpoint)
            if row is None:
                raise NotFound(f"no device '{endpoint}' is registered")
            changed = patch.model_dump(exclude_unset=True, exclude={"tags"})
            for key, value in changed.items():
                setattr(row, key, value if value is not None or key == "board" else "")
            if patch.tags is not None:
                db.execute(delete(DeviceTagRow).where(DeviceTagRow.endpoint == endpoint))
                db.add_all(DeviceTagRow(endpoint=endpoint, tag=tag) for tag in patch.tags)
                changed["tags"] = patch.tags
            row.updated_at = now()
            db.add(DeviceEventRow(endpoint=endpoint, at=row.updated_at, kind="edited",
                                  detail=", ".join(sorted(changed)) or "nothing"))
        return self.get(endpoint)

    def set_state(self, endpoint: str, state: DeviceState, detail: str) -> RegisteredDevice:
        from tinymlaas.store import now

        with self.store.tx() as db:
            row = db.get(DeviceRow, endpoint)
            if row is None:
                raise NotFound(f"no device '{endpoint}' is registered")
            t = now()
            row.state, row.updated_at = state, t
            if state == "decommissioned":
                row.decommissioned_at, row.online = t, False
            db.add(DeviceEventRow(endpoint=endpoint, at=t, kind=state, detail=detail))
        return self.get(endpoint)

    def delete(self, endpoint: str) -> None:
        """The record and its tags go; its events and deployments stay (history)."""
        from tinymlaas.store import now

        with self.store.tx() as db:
            row = db.get(DeviceRow, endpoint)
            if row is None:
                raise NotFound(f"no device '{endpoint}' is registered")
            db.delete(row)
            db.add(DeviceEventRow(endpoint=endpoint, at=now(), kind="deleted", detail=""))

    @staticmethod
    def _take_facts(row: DeviceRow, facts: DeviceFacts) -> None:
        known = {**(row.facts or {}), **facts.model_dump(exclude_none=True)}
        row.facts = known
        row.firmware_version = known.get("firmware_version")
        row.model_sha256 = known.get("model_sha256")
        row.model_name = known.get("model_name")
        if not row.board and known.get("board"):
            row.board = known["board"]

    # -- what the orchestrators saw ----------------------------------------------------------------
    def apply(self, sightings: Iterable[Sighting]) -> None:
        """Write a batch of sightings in one transaction (creating the records of devices that
        joined without being pre-registered)."""
        from tinymlaas.store import now

        batch = {s.endpoint: s for s in sightings}
        if not batch:
            return
        t = now()
        with self.store.tx() as db:
            rows = {r.endpoint: r for r in db.scalars(select(DeviceRow).where(
                DeviceRow.endpoint.in_(list(batch))))}
            for ep, s in batch.items():
                row = rows.get(ep)
                if row is None:
                    if s.create_as is None:
                        continue
                    row = DeviceRow(endpoint=ep, kind=s.kind or "device", name="", location="", notes="",
                                    state=s.create_as, online=False, created_at=t, updated_at=t)
                    db.add(row)
                    db.add(DeviceEventRow(endpoint=ep, at=t, kind="registered",
                                          detail=f"joined unannounced: {s.create_as}"))
                if s.kind is not None:
                    row.kind = s.kind
                if s.online is not None:
                    row.online = s.online and row.state != "decommissioned"
                if s.seen_at is not None:
                    row.last_seen = s.seen_at
                if s.facts is not None:
                    self._take_facts(row, s.facts)
                if s.bridge is not None:
                    row.bridge = s.bridge or None
                if s.health is not None:
                    row.health = s.health or None
                if s.build_id is not None:
                    row.build_id = s.build_id
                if row.state == "expected" and s.online:
                    row.state = "active"
                row.updated_at = t
                db.add_all(DeviceEventRow(endpoint=ep, at=s.seen_at or t, kind=k, detail=d)
                           for k, d in s.events)

    def states(self) -> dict[str, tuple[DeviceKind, DeviceState]]:
        """Every endpoint's kind and state (what admission decides on)."""
        with self.store.read() as db:
            return {ep: (kind, state) for ep, kind, state in  # type: ignore[misc]
                    db.execute(select(DeviceRow.endpoint, DeviceRow.kind, DeviceRow.state))}

    def mark_all_offline(self) -> None:
        """At start: nobody is connected to a service that just started."""
        from sqlalchemy import update

        with self.store.tx() as db:
            db.execute(update(DeviceRow).where(DeviceRow.online.is_(True)).values(online=False))

    # -- lists -------------------------------------------------------------------------------------
    def query(self, q: DeviceQuery) -> tuple[list[RegisteredDevice], int]:
        """One page of the devices matching every filter, by endpoint, and how many match."""
        page = self._where(select(*DeviceRow.__table__.columns, func.count().over().label("total")), q)
        with self.store.read() as db:  # the count comes with the page (one query, not two)
            rows = list(db.execute(page.order_by(DeviceRow.endpoint).limit(q.limit).offset(q.offset)))
            if rows:
                total = rows[0].total
            else:  # past the end (or nothing matches): count on its own
                total = db.scalar(select(func.count()).select_from(
                    self._where(select(DeviceRow.endpoint), q).subquery())) or 0
            tags = self._tags(db, [r.endpoint for r in rows])
            return [_record(r, tags.get(r.endpoint, [])) for r in rows], int(total)

    @staticmethod
    def _where(query: Select[Any], q: DeviceQuery) -> Select[Any]:
        if q.kind is not None:
            query = query.where(DeviceRow.kind == q.kind)
        if q.state is not None:
            query = query.where(DeviceRow.state == q.state)
        elif not q.include_decommissioned:
            query = query.where(DeviceRow.state != "decommissioned")
        if q.board is not None:
            query = query.where(DeviceRow.board == q.board)
        if q.online is not None:
            query = query.where(DeviceRow.online.is_(q.online))
        if q.firmware is not None:
            query = query.where(DeviceRow.firmware_version == q.firmware)
        if q.model is not None:
            query = query.where(or_(DeviceRow.model_sha256.startswith(q.model.lower(), autoescape=True),
                                    DeviceRow.model_name == q.model))
        if q.bridge is not None:
            query = query.where(DeviceRow.bridge == q.bridge)
        for tag in q.tags:
            query = query.where(DeviceRow.endpoint.in_(
                select(DeviceTagRow.endpoint).where(DeviceTagRow.tag == tag)))
        return query

    @staticmethod
    def _tags(db: Session, endpoints: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not endpoints:
            return out
        for ep, tag in db.execute(select(DeviceTagRow.endpoint, DeviceTagRow.tag)
                                  .where(DeviceTagRow.endpoint.in_(endpoints))
                                  .order_by(DeviceTagRow.tag)):
            out.setdefault(ep, []).append(tag)
        return out

    def all_matching(self, q: DeviceQuery) -> list[RegisteredDevice]:
        """Every device matching (no paging): group members."""
        out, offset = [], 0
        while True:
            page, total = self.query(q.model_copy(update={"limit": 1000, "offset": offset}))
            out += page
            offset += len(page)
            if not page or offset >= total:
                return out

    def events(self, endpoint: str, limit: int = 100) -> list[DeviceEvent]:
        with self.store.read() as db:
            rows = db.scalars(select(DeviceEventRow).where(DeviceEventRow.endpoint == endpoint)
                              .order_by(DeviceEventRow.id.desc()).limit(limit))
            return [DeviceEvent(at=r.at, endpoint=r.endpoint, kind=r.kind, detail=r.detail) for r in rows]

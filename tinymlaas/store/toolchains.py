"""Toolchains registered at run time: partner builder images the service accepted."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tinymlaas.errors import Conflict, NotFound
from tinymlaas.fleet.models import Toolchain
from tinymlaas.store.tables import Base

if TYPE_CHECKING:
    from tinymlaas.store import Store


class ToolchainRow(Base):
    __tablename__ = "toolchains"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_id: Mapped[str] = mapped_column(String)
    reference: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String(16))
    boards: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(String, default="")
    self_test: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


def _toolchain(r: ToolchainRow) -> Toolchain:
    return Toolchain(name=r.name, image_id=r.image_id, reference=r.reference,
                     source=cast(Any, r.source), boards=r.boards["boards"], description=r.description,
                     self_test=r.self_test["lines"], created_at=r.created_at)


class Toolchains:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, tc: Toolchain) -> Toolchain:
        row = ToolchainRow(name=tc.name, image_id=tc.image_id, reference=tc.reference, source=tc.source,
                           boards={"boards": tc.boards}, description=tc.description,
                           self_test={"lines": tc.self_test}, created_at=tc.created_at)
        try:
            with self.store.tx() as db:
                if db.get(ToolchainRow, tc.name) is not None:
                    raise Conflict(f"toolchain '{tc.name}' is registered already")
                db.add(row)
        except IntegrityError:
            raise Conflict(f"toolchain '{tc.name}' is registered already") from None
        return _toolchain(row)

    def exists(self, name: str) -> bool:
        with self.store.read() as db:
            return db.get(ToolchainRow, name) is not None

    def get(self, name: str) -> Toolchain:
        with self.store.read() as db:
            row = db.get(ToolchainRow, name)
            if row is None:
                raise NotFound(f"no toolchain '{name}' is registered")
            return _toolchain(row)

    def all(self) -> list[Toolchain]:
        with self.store.read() as db:
            return [_toolchain(r) for r in db.scalars(select(ToolchainRow).order_by(ToolchainRow.name))]

    def delete(self, name: str) -> Toolchain:
        with self.store.tx() as db:
            row = db.get(ToolchainRow, name)
            if row is None:
                raise NotFound(f"no toolchain '{name}' is registered")
            gone = _toolchain(row)
            db.delete(row)
            return gone

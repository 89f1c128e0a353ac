"""Users and their API tokens (the management API's callers); secrets only as hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from tinymlaas.auth import (
    ApiToken,
    IssuedToken,
    Role,
    User,
    check_password,
    hash_password,
    new_token,
    token_digest,
)
from tinymlaas.errors import Conflict, Forbidden, InvalidInput, NotFound
from tinymlaas.store.tables import Base

if TYPE_CHECKING:
    from tinymlaas.store import Store


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    role: Mapped[str] = mapped_column(String)
    password_hash: Mapped[str | None] = mapped_column(String)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String)
    digest: Mapped[str] = mapped_column(String, unique=True)
    prefix: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


def _user(r: UserRow) -> User:
    return User(id=r.id, name=r.name, role=Role(r.role), disabled=r.disabled)


class Users:
    """The users table and the tokens that authenticate them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, role: Role, *, password: str | None = None) -> User:
        try:
            user = User(id=uuid.uuid4().hex[:12], name=name, role=role)
        except ValueError as exc:
            raise InvalidInput(f"user name '{name}' must be 1-64 letters, digits, '.', '_', '@' or '-'"
                               ) from exc
        if password is not None and len(password) < 12:
            raise InvalidInput("a password needs at least 12 characters")
        from tinymlaas.store import now

        with self.store.tx() as db:
            if db.scalars(select(UserRow).where(UserRow.name == name)).first() is not None:
                raise Conflict(f"user '{name}' exists")
            db.add(UserRow(id=user.id, name=name, role=role.value, disabled=False, created_at=now(),
                           password_hash=hash_password(password) if password else None))
        return user

    def count(self) -> int:
        with self.store.read() as db:
            return len(db.scalars(select(UserRow.id)).all())

    def all(self) -> list[User]:
        with self.store.read() as db:
            return [_user(r) for r in db.scalars(select(UserRow).order_by(UserRow.name))]

    def get(self, name: str) -> User:
        with self.store.read() as db:
            row = db.scalars(select(UserRow).where(UserRow.name == name)).first()
            if row is None:
                raise NotFound(f"no user '{name}'")
            return _user(row)

    def update(self, name: str, *, role: Role | None = None, disabled: bool | None = None,
               password: str | None = None) -> User:
        if password is not None and len(password) < 12:
            raise InvalidInput("a password needs at least 12 characters")
        with self.store.tx() as db:
            row = db.scalars(select(UserRow).where(UserRow.name == name)).first()
            if row is None:
                raise NotFound(f"no user '{name}'")
            if role is not None:
                row.role = role.value
            if disabled is not None:
                row.disabled = disabled
            if password is not None:
                row.password_hash = hash_password(password)
            return _user(row)

    # -- tokens ------------------------------------------------------------------------
    def issue_token(self, name: str, token_name: str = "api") -> IssuedToken:
        from tinymlaas.store import now

        secret = new_token()
        with self.store.tx() as db:
            row = db.scalars(select(UserRow).where(UserRow.name == name)).first()
            if row is None:
                raise NotFound(f"no user '{name}'")
            tok = TokenRow(id=uuid.uuid4().hex[:12], user_id=row.id, name=token_name,
                           digest=token_digest(secret), prefix=secret[:10], created_at=now(),
                           last_used_at=None)
            db.add(tok)
            return IssuedToken(id=tok.id, user=name, name=token_name, prefix=tok.prefix, token=secret)

    def tokens(self, name: str | None = None) -> list[ApiToken]:
        query = select(TokenRow, UserRow.name).join(UserRow, TokenRow.user_id == UserRow.id)
        if name is not None:
            query = query.where(UserRow.name == name)
        with self.store.read() as db:
            return [ApiToken(id=t.id, user=u, name=t.name, prefix=t.prefix,
                             last_used_at=t.last_used_at.isoformat() if t.last_used_at else None)
                    for t, u in db.execute(query.order_by(TokenRow.created_at))]

    def revoke_token(self, token_id: str) -> None:
        with self.store.tx() as db:
            row = db.get(TokenRow, token_id)
            if row is None:
                raise NotFound(f"no token '{token_id}'")
            db.delete(row)

    def revoke_secret(self, token: str) -> None:
        """Revoke the token whose secret this is, if any (a web session logging out)."""
        with self.store.tx() as db:
            db.execute(delete(TokenRow).where(TokenRow.digest == token_digest(token)))

    def authenticate_token(self, token: str) -> User:
        """The user a bearer token belongs to; Forbidden-free: unknown is None-like NotFound."""
        from tinymlaas.store import now

        with self.store.read() as db:
            found = db.execute(select(TokenRow, UserRow).join(UserRow, TokenRow.user_id == UserRow.id)
                               .where(TokenRow.digest == token_digest(token))).first()
            if found is None:
                raise NotFound("unknown token")
            tok, user = found
            if user.disabled:
                raise Forbidden(f"user '{user.name}' is disabled")
            result, token_id, stale = _user(user), tok.id, tok.last_used_at
        if stale is None or (now() - stale).total_seconds() > 60:  # a touch a minute, not a write a call
            with self.store.tx() as db:
                row = db.get(TokenRow, token_id)
                if row is not None:
                    row.last_used_at = now()
        return result

    def authenticate_password(self, name: str, password: str) -> User:
        with self.store.read() as db:
            row = db.scalars(select(UserRow).where(UserRow.name == name)).first()
            ok = row is not None and row.password_hash is not None and \
                check_password(password, row.password_hash)
            if row is None or not ok:
                raise NotFound("unknown user or wrong password")
            if row.disabled:
                raise Forbidden(f"user '{name}' is disabled")
            return _user(row)

"""Users, their roles and API tokens (admin), and how a person gets a token (their password)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.api.deps import StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Admin, Viewer
from tinymlaas.auth import ApiToken, IssuedToken, Role, User
from tinymlaas.errors import NotFound, Unauthenticated

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    role: Role
    password: str | None = Field(None, min_length=12, description="to log in to the web app")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=12)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("api", min_length=1, max_length=64, description="what the token is for")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    password: str
    token_name: str = Field("login", min_length=1, max_length=64)


@router.get("/auth/me")
def whoami(user: Viewer) -> User:
    return user


@router.post("/auth/token", status_code=status.HTTP_201_CREATED, responses=problems(401, 403, 422))
def login(body: Login, store: StoreDep) -> IssuedToken:
    """A new API token for a user who gives their password (the web app logs in this way)."""
    try:
        user = store.users.authenticate_password(body.name, body.password)
    except NotFound:
        raise Unauthenticated("unknown user or wrong password") from None
    return store.users.issue_token(user.name, body.token_name)


@router.get("/users")
def list_users(store: StoreDep, user: Admin) -> list[User]:
    return store.users.all()


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
def create_user(body: NewUser, store: StoreDep, user: Admin) -> User:
    return store.users.create(body.name, body.role, password=body.password)


@router.patch("/users/{name}", responses=problems(404, 422))
def change_user(name: str, body: UserChange, store: StoreDep, user: Admin) -> User:
    return store.users.update(name, role=body.role, disabled=body.disabled, password=body.password)


@router.post("/users/{name}/tokens", status_code=status.HTTP_201_CREATED, responses=problems(404, 422))
def issue_token(name: str, store: StoreDep, user: Admin, body: NewToken | None = None) -> IssuedToken:
    """A new API token for a user; the secret is in this answer only."""
    return store.users.issue_token(name, body.name if body else "api")


@router.get("/tokens")
def list_tokens(store: StoreDep, user: Admin) -> list[ApiToken]:
    return store.users.tokens()


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def revoke_token(token_id: str, store: StoreDep, user: Admin) -> Response:
    store.users.revoke_token(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

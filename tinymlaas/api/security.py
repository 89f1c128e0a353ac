"""Who is calling and what their role allows: every route declares its access.

A user route takes its caller as a parameter typed by role (``user: Operator``):
the dependency authenticates the bearer token (or the web app's session
cookie) and checks the role, answering 401 or 403 before the route runs.
Routes devices call (polls, package downloads) declare ``DEVICE``: the
orchestrator authenticates the device itself. ``/health`` and the docs are public.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tinymlaas.api.deps import get_store
from tinymlaas.auth import Role, User
from tinymlaas.errors import Forbidden, NotFound, Unauthenticated
from tinymlaas.store import Store

SESSION_COOKIE = "tinymlaas_session"
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="an API token (`tinymlaas users token NAME`, or POST /auth/token)")


def require(*roles: Role) -> Callable[..., User]:
    """A dependency that lets in users holding one of ``roles`` (an admin always; a viewer role
    in ``roles`` means every authenticated user)."""
    needed = frozenset(roles)

    def caller(request: Request,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> User:
        token = credentials.credentials if credentials else request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthenticated("this needs an API token: 'Authorization: Bearer <token>'")
        try:
            user = get_store(request).users.authenticate_token(token)
        except NotFound:
            raise Unauthenticated("unknown or revoked API token") from None
        if not user.role.allows(needed):
            wanted = " or ".join(sorted(r.value for r in needed))
            raise Forbidden(f"this needs the {wanted} role; user '{user.name}' is {user.role.value}")
        request.state.user = user
        return user

    caller.roles = needed  # type: ignore[attr-defined]  # read by the route-protection test
    return caller


def is_user_token(store: Store, token: str) -> bool:
    """Whether a bearer token is a (valid, enabled) user's, rather than a device's."""
    try:
        store.users.authenticate_token(token)
    except (NotFound, Forbidden):
        return False
    return True


def device_route() -> None:
    """Marks a route that devices call with their own credentials (checked by the orchestrator)."""


Viewer = Annotated[User, Depends(require(Role.viewer))]
Scientist = Annotated[User, Depends(require(Role.data_scientist, Role.operator))]
Operator = Annotated[User, Depends(require(Role.operator))]
Admin = Annotated[User, Depends(require(Role.admin))]
DEVICE = [Depends(device_route)]

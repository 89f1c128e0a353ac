"""Web sessions: a person's password gets an API token that the browser keeps in a cookie."""

from __future__ import annotations

from tinymlaas.errors import NotFound, Unauthenticated
from tinymlaas.store import Store

#: The name of the tokens sessions hold (``GET /tokens`` shows them; an admin can revoke them).
SESSION_TOKEN = "web session"


def open_session(store: Store, name: str, password: str) -> str:
    """A new token for the user whose password this is (the same check as ``POST /auth/token``)."""
    try:
        user = store.users.authenticate_password(name, password)
    except NotFound:
        raise Unauthenticated("unknown user or wrong password") from None
    return store.users.issue_token(user.name, SESSION_TOKEN).token


def close_session(store: Store, token: str) -> None:
    """Revoke the session's token (already gone is fine: the browser only wants out)."""
    store.users.revoke_secret(token)

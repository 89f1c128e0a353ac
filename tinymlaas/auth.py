"""Who may call the management API: users, their role, their API tokens, their password.

Roles::

    admin           everything, including users and tokens
    operator        devices, credentials, deployments, builds (and what a viewer sees)
    data-scientist  models, datasets, training, builds, inferences (and what a viewer sees)
    viewer          reads

Secrets are never stored: a token is 32 random bytes shown once, kept as its SHA-256 (a hash
that cannot be brute-forced from that much entropy); a password is kept as scrypt with a salt.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from pydantic import BaseModel, Field

#: A token's visible prefix: it says what the secret is (and lets scanners find leaked ones).
TOKEN_PREFIX = "tmls_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Role(enum.StrEnum):
    viewer = "viewer"
    data_scientist = "data-scientist"
    operator = "operator"
    admin = "admin"

    def allows(self, needed: frozenset[Role]) -> bool:
        """Whether a user of this role may do what needs one of ``needed``."""
        return self is Role.admin or self in needed or Role.viewer in needed


class User(BaseModel):
    id: str
    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    role: Role
    disabled: bool = False


class ApiToken(BaseModel):
    """A token's record (never the secret itself)."""

    id: str
    user: str
    name: str
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    last_used_at: str | None = None


class IssuedToken(ApiToken):
    """A new token: the secret is in this answer and nowhere else."""

    token: str


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(got.hex(), digest)

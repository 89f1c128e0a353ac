"""Download grants, shared by the orchestrators whose devices pull packages from the API.

A package URL carries a grant that only the device it was sent to learns (inside a
protected LwM2M write, or an authenticated poll reply). A grant opens one package for
one device: it names the address the device talks to the service from (when known),
and it ends when the deployment that issued it ends (or after ``ttl_s``, whichever is
first). A content hash alone never opens an artifact.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tinymlaas.errors import Forbidden


@dataclass(frozen=True)
class Grant:
    endpoint: str
    sha256: str
    expires: float
    #: The device's address as the service sees it; a download from elsewhere is refused.
    address: str | None = None


class Grants:
    """Download grants: a package URL only works for the device it was issued to, while its
    deployment runs."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._grants: dict[str, Grant] = {}

    def issue(self, endpoint: str, sha256: str, *, address: str | None = None) -> str:
        now = time.monotonic()
        self._grants = {k: g for k, g in self._grants.items() if g.expires > now}
        token = secrets.token_urlsafe(16)
        self._grants[token] = Grant(endpoint, sha256, now + self.ttl_s, address)
        return token

    def package_url(self, base: str, endpoint: str, sha256: str, *, address: str | None = None) -> str:
        """The API URL one device downloads one package from, with a fresh grant."""
        token = self.issue(endpoint, sha256, address=address)
        return f"{base.rstrip('/')}/devices/{endpoint}/packages/{sha256}?grant={token}"

    def revoke(self, endpoint: str, sha256: str) -> None:
        """End every grant of this package to this device (its deployment ended)."""
        self._grants = {k: g for k, g in self._grants.items() if (g.endpoint, g.sha256) != (endpoint, sha256)}

    @contextmanager
    def during(self, endpoint: str, sha256: str) -> Iterator[None]:
        """The grants issued for a deployment end with it, however it ends."""
        try:
            yield
        finally:
            self.revoke(endpoint, sha256)

    def check(self, endpoint: str, sha256: str, token: str | None, *, address: str | None = None) -> None:
        grant = self._grants.get(token or "")
        if grant is None or grant.expires < time.monotonic():
            raise Forbidden("no valid download grant: packages are only for the device they were sent "
                            "to, while it is being updated")
        if (grant.endpoint, grant.sha256) != (endpoint, sha256):
            raise Forbidden("this grant is for another device or package")
        if grant.address is not None and address != grant.address:
            raise Forbidden(f"this grant is for the device at {grant.address}, not {address}")

"""Download grants, shared by the orchestrators whose devices pull packages from the API.

A package URL carries a grant that only the device it was sent to learns (inside
a protected LwM2M write, or an authenticated poll reply), so a content hash
alone never opens an artifact.
"""

from __future__ import annotations

import secrets
import time

from tinymlaas.errors import Forbidden


class Grants:
    """Download grants: a package URL only works for the device it was issued to, for a while."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._grants: dict[str, tuple[str, str, float]] = {}

    def issue(self, endpoint: str, sha256: str) -> str:
        now = time.monotonic()
        self._grants = {k: v for k, v in self._grants.items() if v[2] > now}
        token = secrets.token_urlsafe(16)
        self._grants[token] = (endpoint, sha256, now + self.ttl_s)
        return token

    def package_url(self, base: str, endpoint: str, sha256: str) -> str:
        """The API URL one device downloads one package from, with a fresh grant."""
        return f"{base.rstrip('/')}/devices/{endpoint}/packages/{sha256}?grant={self.issue(endpoint, sha256)}"

    def check(self, endpoint: str, sha256: str, token: str | None) -> None:
        grant = self._grants.get(token or "")
        if grant is None or grant[2] < time.monotonic():
            raise Forbidden("no valid download grant: packages are only for the device they were sent to")
        if grant[:2] != (endpoint, sha256):
            raise Forbidden("this grant is for another device or package")

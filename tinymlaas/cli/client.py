"""The CLI's client of a running service: where it is and who calls it, and its answers.

URL and token come from the command's options, else ``TINYMLAAS_URL`` / ``TINYMLAAS_TOKEN``,
else the client file (``~/.config/tinymlaas/client.toml``, or ``TINYMLAAS_CLIENT_FILE``), which
holds a token and so must be mode 600 (``tinymlaas service login`` writes it so). A problem
answer (RFC 9457) becomes the error class it names, so the CLI prints its one line and exits
with that family's code; a service that does not answer is one line too.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from tinymlaas import errors
from tinymlaas.errors import InvalidInput, TinyMLaaSError

DEFAULT_URL = "http://127.0.0.1:8000"


class ServiceUnreachable(TinyMLaaSError):
    """No service answers at the URL (not running, wrong address)."""

    exit_code = 12
    code = "service_unreachable"


class ClientEnvironment(BaseSettings):
    """What the environment says (``TINYMLAAS_URL``, ``TINYMLAAS_TOKEN``, ``TINYMLAAS_CLIENT_FILE``)."""

    model_config = SettingsConfigDict(env_prefix="TINYMLAAS_", extra="ignore")

    url: str | None = None
    token: str | None = None
    client_file: Path = Path.home() / ".config" / "tinymlaas" / "client.toml"


class ClientConfig(BaseModel):
    url: str = DEFAULT_URL
    token: str | None = None


def read_client_file(path: Path) -> dict[str, Any]:
    """The client file's settings; refused (one line) unless only its owner may read it."""
    if not path.is_file():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InvalidInput(f"{path} holds a token but is mode {mode:o}: run 'chmod 600 {path}'")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not TOML: {exc}") from None
    return {k: str(v) for k, v in data.items() if k in ("url", "token")}


def write_client_file(path: Path, url: str, token: str) -> None:
    """Write the client file, readable by its owner only (created so: never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"url = {json.dumps(url)}\ntoken = {json.dumps(token)}\n")
    tmp.replace(path)


def resolve(url: str | None, token: str | None) -> ClientConfig:
    """Options first, then the environment, then the client file."""
    env = ClientEnvironment()
    found = read_client_file(env.client_file)
    return ClientConfig(url=url or env.url or found.get("url") or DEFAULT_URL,
                        token=token or env.token or found.get("token"))



def problem(reply: httpx.Response) -> TinyMLaaSError:
    """The error a problem answer names (its ``type`` is ``urn:tinymlaas:error:<code>``)."""
    try:
        body = reply.json()
        code = str(body.get("type", "")).rsplit(":", 1)[-1]
        detail = str(body.get("detail") or body.get("title") or reply.reason_phrase)
    except (ValueError, AttributeError):
        code, detail = "", reply.text.strip()[:200] or reply.reason_phrase
    cls = errors.by_code().get(code, TinyMLaaSError)
    return cls(detail)


class ServiceClient:
    """One service, one caller; every method answers JSON or raises the error family."""

    def __init__(self, config: ClientConfig, timeout: float = 60.0) -> None:
        self.url = config.url.rstrip("/")
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            reply = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"no TinyMLaaS service answers at {self.url}: {exc}") from None
        if reply.status_code >= 400:
            raise problem(reply)
        return reply.json() if reply.content else None

    def page(self, path: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        """A listed page and how many there are in all (``X-Total-Count``)."""
        try:
            reply = self.http.get(path, params=params)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"no TinyMLaaS service answers at {self.url}: {exc}") from None
        if reply.status_code >= 400:
            raise problem(reply)
        items = reply.json()
        return items, int(reply.headers.get("x-total-count", len(items)))

    def events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-sent events as (event, data) until the service ends the stream."""
        try:
            with self.http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise problem(reply)
                kind = "message"
                for line in reply.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        yield kind, json.loads(line[6:])
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"the stream from {self.url} broke: {exc}") from None

"""The web app's frame: persona sections found at import, templates, asset URLs, rendering.

A persona's pages are one package under :mod:`tinymlaas.web.pages` holding a ``section``
(its router, its links, who sees them) and a ``templates/`` folder whose templates are
named ``<package>/<file>``. Adding a package adds its pages and its links; nothing else
names it.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape

from tinymlaas import __version__
from tinymlaas.auth import Role, User
from tinymlaas.config import REPO_ROOT

HERE = Path(__file__).parent
#: Built by ci/setup.sh (web/build.mjs) from the npm packages of web/package-lock.json.
STATIC_DIR = REPO_ROOT / "web" / "dist"
#: Pages may load scripts and styles from this service only (htmx runs no eval).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


@dataclass(frozen=True)
class Link:
    title: str
    path: str
    #: Who sees the link (a viewer role: everyone who logged in).
    roles: frozenset[Role] = frozenset({Role.viewer})

    def visible_to(self, user: User) -> bool:
        return user.role.allows(self.roles)


@dataclass(frozen=True)
class Section:
    """One persona's pages: ``name`` is its package and its templates' prefix."""

    name: str
    title: str
    router: APIRouter
    links: tuple[Link, ...]
    templates: Path
    #: Place in the navigation (lower first).
    order: int = 50


@cache
def sections() -> tuple[Section, ...]:
    from tinymlaas.web import pages

    found = []
    for info in pkgutil.iter_modules(pages.__path__):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        section = getattr(module, "section", None)
        if isinstance(section, Section):
            found.append(section)
    return tuple(sorted(found, key=lambda s: (s.order, s.name)))


@cache
def manifest() -> dict[str, str]:
    """Asset name -> content hash (written by the build), for URLs browsers may cache for good."""
    path = STATIC_DIR / "manifest.json"
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    return data


def asset(name: str) -> str:
    version = manifest().get(name)
    return f"/static/{name}" + (f"?v={version}" if version else "")


def ago(when: datetime | float | None) -> str:
    """How long ago, in words a person reads at a glance."""
    if when is None:
        return "never"
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    s = (datetime.now(UTC) - when).total_seconds()
    if s < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"


def _stamp(when: datetime | float | None) -> str:
    if when is None:
        return ""
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} B"


@cache
def environment() -> Environment:
    loader = ChoiceLoader([FileSystemLoader(HERE / "templates"),
                           PrefixLoader({s.name: FileSystemLoader(s.templates) for s in sections()})])
    env = Environment(loader=loader, autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)
    env.globals.update(asset=asset, version=__version__)
    env.filters.update(ago=ago, stamp=_stamp, bytes=_bytes, short=lambda s: (s or "")[:12])
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def nav(user: User) -> list[tuple[Section, list[Link]]]:
    out = []
    for s in sections():
        links = [link for link in s.links if link.visible_to(user)]
        if links:
            out.append((s, links))
    return out


def page(request: Request, user: User, template: str, *, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """A whole page in the app's frame (navigation, user, CSRF token for its actions)."""
    from tinymlaas.web.session import csrf_token

    html = render(template, request=request, user=user, nav=nav(user), path=request.url.path,
                  csrf=csrf_token(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=security_headers())


def fragment(template: str, **context: Any) -> HTMLResponse:
    """Part of a page, for htmx to swap in."""
    return HTMLResponse(render(template, **context), headers=security_headers())


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}

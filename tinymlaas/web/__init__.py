"""The web app: server-rendered pages for the personas (Jinja2 + htmx), served by the API's own
process under /ui, with its assets under /static and the API docs at /docs and /redoc.

Pages call the same services as the API routes and show the API's problem messages; the
browser assets are npm packages installed at set-up (``web/``), never fetched at run time.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from tinymlaas.web import docs, session
from tinymlaas.web.site import STATIC_DIR, sections


class Assets(StaticFiles):
    """The built assets; pages ask for them with their hash (``?v=``), so browsers keep them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def install(app: FastAPI) -> None:
    """Add the pages, the docs, the assets and the CSRF check to the API's app."""
    session.install(app)
    app.include_router(docs.router)
    for section in sections():
        app.include_router(section.router)
    app.mount("/static", Assets(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The first page: the dashboard (the login page first, when there is no session)."""
        return RedirectResponse(sections()[0].links[0].path, status_code=303)

"""The web app: server-rendered pages for the personas (Jinja2 + htmx), served by the API's own
process under /ui, with its assets under /static and the API docs at /docs and /redoc.

Pages call the same services as the API routes and show the API's problem messages; the
browser assets are npm packages installed at set-up (``web/``), never fetched at run time.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tinymlaas.web import docs, session
from tinymlaas.web.site import STATIC_DIR, sections


def install(app: FastAPI) -> None:
    """Add the pages, the docs, the assets and the CSRF check to the API's app."""
    session.install(app)
    app.include_router(docs.router)
    for section in sections():
        app.include_router(section.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The first page: the dashboard (the login page first, when there is no session)."""
        return RedirectResponse(sections()[0].links[0].path, status_code=303)

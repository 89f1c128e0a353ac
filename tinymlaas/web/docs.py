"""The API's documentation pages, Swagger UI at /docs and ReDoc at /redoc, served with their
scripts from this service (FastAPI's own pages load them from a CDN, blank without internet)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tinymlaas.web.session import csrf_token
from tinymlaas.web.site import render

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Try-it-out calls carry the session's CSRF token when the reader is logged in."""
    return HTMLResponse(render("docs/swagger.html", title=request.app.title, csrf=csrf_token(request)))


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return HTMLResponse(render("docs/redoc.html", title=request.app.title))

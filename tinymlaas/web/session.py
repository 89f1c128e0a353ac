"""Logging in to the web app, and the protection of cookie-authenticated requests.

A login issues an API token (the same users, roles and tokens as the API) and keeps it in
the ``tinymlaas_session`` cookie: HttpOnly (scripts cannot read it), SameSite=Strict (other
sites' pages do not send it). Every state change authenticated by that cookie must also carry
``X-CSRF-Token``, a value derived from the session that only the app's own pages know (pages
put it on every htmx request), and a cross-site ``Origin`` is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from tinymlaas.api.deps import StoreDep
from tinymlaas.api.handlers import PROBLEM
from tinymlaas.api.security import SESSION_COOKIE, require
from tinymlaas.auth import Role, User
from tinymlaas.errors import Forbidden, TinyMLaaSError, Unauthenticated
from tinymlaas.services import sessions
from tinymlaas.web.site import render, security_headers

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN = "/ui/login"

router = APIRouter(include_in_schema=False)


def csrf_for(session: str) -> str:
    """The CSRF token of a session: keyed by the session's secret, so it needs no storage and a
    page of another site, which cannot read the cookie, cannot make it."""
    return hmac.new(session.encode(), b"tinymlaas-csrf/1", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    session = request.cookies.get(SESSION_COOKIE)
    return csrf_for(session) if session else ""


class LoginRequired(Exception):
    """A page was asked for without a valid session."""


class PageError(Exception):
    """A page that cannot be shown (not allowed, no such thing): an HTML page with the API's words."""

    TITLES = {403: "Not allowed", 404: "Not found"}

    def __init__(self, error: TinyMLaaSError) -> None:
        super().__init__(error.message)
        self.status, self.message = error.status, error.message


def page_access(*roles: Role) -> Callable[..., User]:
    """A page's dependency: the session's user, holding one of ``roles`` (as the API decides);
    without a session the browser is sent to the login page, without the role it gets a page
    saying so."""
    check = require(*roles)

    def user(request: Request) -> User:
        try:
            return check(request, None)
        except Unauthenticated:
            raise LoginRequired from None
        except Forbidden as exc:
            raise PageError(exc) from None

    return user


PageViewer = Annotated[User, Depends(page_access(Role.viewer))]
PageScientist = Annotated[User, Depends(page_access(Role.data_scientist, Role.operator))]
PageOperator = Annotated[User, Depends(page_access(Role.operator))]


def _safe_next(target: str | None) -> str:
    """Only a path of this service (no other host) is a place to return to after logging in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _login_page(next_url: str, *, error: str | None = None, name: str = "",
                status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(render("login.html", next=next_url, error=error, name=name),
                        status_code=status_code, headers=security_headers())


@router.get(LOGIN)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(_safe_next(next))


@router.post(LOGIN)
def login(store: StoreDep, name: Annotated[str, Form()], password: Annotated[str, Form()],
          request: Request, next: Annotated[str | None, Form()] = None) -> Response:
    """Check the password, open a session (an API token) and keep it in the cookie."""
    target = _safe_next(next)
    try:
        token = sessions.open_session(store, name, password)
    except TinyMLaaSError as exc:  # the API's own words for the refusal
        return _login_page(target, error=exc.message, name=name, status_code=exc.status)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/ui/logout")
def logout(request: Request, store: StoreDep) -> Response:
    """Revoke the session's token and drop the cookie (htmx follows HX-Redirect)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        sessions.close_session(store, session)
    response = Response(status_code=204, headers={"HX-Redirect": LOGIN})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def login_required(request: Request, _: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{LOGIN}?next={quote(here)}"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    title = PageError.TITLES.get(exc.status, "Cannot show this page")
    return HTMLResponse(render("error.html", title=title, message=exc.message), status_code=exc.status,
                        headers=security_headers())


class CsrfMiddleware:
    """Refuses a state change that a page of another site could have caused: a cross-site
    ``Origin``, or a cookie-authenticated request without the session's CSRF token. Requests
    with ``Authorization`` (API clients) carry no ambient credentials and pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            why = self.refusal(Headers(scope=scope), scope["path"])
            if why is not None:
                problem = Forbidden(why).to_problem()
                await JSONResponse(problem, status_code=403, media_type=PROBLEM)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def refusal(headers: Headers, path: str) -> str | None:
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != headers.get("host"):
            return f"a request from another site ({origin}) is refused"
        if "authorization" in headers or path == LOGIN:
            return None
        session = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        if session and not hmac.compare_digest(headers.get(CSRF_HEADER.lower(), ""), csrf_for(session)):
            return "this session's CSRF token is missing or wrong: reload the page"
        return None


def install(app: Any) -> None:
    app.add_middleware(CsrfMiddleware)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PageError, page_error)
    app.include_router(router)

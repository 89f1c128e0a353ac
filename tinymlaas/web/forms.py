"""HTML forms to the API's request records: a form's fields become the same pydantic record the
API route takes, and a field that does not fit is refused in the API's words (422, naming it)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from tinymlaas.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def record(kind: type[M], /, *, keep_empty: bool = False, **fields: Any) -> M:
    """``kind`` from the form's fields; empty fields are left out, so the record's defaults hold
    (``keep_empty``: only fields that are None)."""
    given = {k: v for k, v in fields.items() if v is not None and (keep_empty or v != "")}
    try:
        return kind.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}" if where else str(first["msg"])) from None


def words(text: str) -> list[str]:
    """A list typed into one field: separated by commas or spaces."""
    return [w for w in text.replace(",", " ").split() if w]


def numbers(text: str, what: str) -> list[int]:
    """Whole numbers typed into one field (a shape, a size)."""
    try:
        return [int(w) for w in words(text)]
    except ValueError:
        raise InvalidInput(f"{what}: give whole numbers separated by commas, not '{text}'") from None


async def fields(request: Request, *, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """A submitted form's fields (the ones named in ``lists`` as lists: checkboxes, multi-selects)."""
    form = await request.form()
    out: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        out[key] = values if key in lists else (values[-1] if values else "")
    return out

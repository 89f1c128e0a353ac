"""Artifacts by content hash; Range requests let a broken download resume (FOTA)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from tinymlaas.api.deps import StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Viewer

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.get("/{sha256}", response_class=FileResponse, responses=problems(404, 422))
def download_artifact(sha256: str, store: StoreDep, user: Viewer) -> FileResponse:
    path = store.artifacts.get(sha256)
    # Content never changes for a hash: the hash is the entity tag.
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"ETag": f'"{sha256}"', "Cache-Control": "immutable"})

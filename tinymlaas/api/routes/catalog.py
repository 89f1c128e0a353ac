"""What the service can do: boards, compiler plugins, zoo recipes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tinymlaas.api.deps import SettingsDep
from tinymlaas.models import Board
from tinymlaas.plugins.registry import plugins
from tinymlaas.targets import get_board, load_boards
from tinymlaas.zoo import recipes

router = APIRouter(tags=["catalog"])


@router.get("/targets")
def list_targets(settings: SettingsDep) -> list[Board]:
    return list(load_boards(settings.targets_dir).values())


@router.get("/targets/{name}")
def read_target(name: str, settings: SettingsDep) -> Board:
    return get_board(settings.targets_dir, name)


@router.get("/compilers")
def list_compilers() -> list[dict[str, Any]]:
    return [cls.describe() for cls in plugins("compilers").values()]


@router.get("/zoo")
def list_zoo() -> list[dict[str, str]]:
    return [{"name": n, "description": c.description} for n, c in sorted(recipes().items())]

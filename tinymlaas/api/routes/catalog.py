"""What the service can do: boards, compiler plugins, zoo recipes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tinymlaas.api.deps import SettingsDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Viewer
from tinymlaas.models import Board
from tinymlaas.plugins.base import Compiler, CompilerInfoCard
from tinymlaas.plugins.registry import plugins
from tinymlaas.targets import get_board, load_boards
from tinymlaas.zoo import recipes

router = APIRouter(tags=["catalog"])


class ZooRecipe(BaseModel):
    name: str
    description: str


@router.get("/targets")
def list_targets(settings: SettingsDep, user: Viewer) -> list[Board]:
    return list(load_boards(settings.targets_dir).values())


@router.get("/targets/{name}", responses=problems(404))
def read_target(name: str, settings: SettingsDep, user: Viewer) -> Board:
    return get_board(settings.targets_dir, name)


@router.get("/compilers")
def list_compilers(user: Viewer) -> list[CompilerInfoCard]:
    return [cls.describe() for cls in plugins("compilers").values() if issubclass(cls, Compiler)]


@router.get("/zoo")
def list_zoo(user: Viewer) -> list[ZooRecipe]:
    return [ZooRecipe(name=n, description=c.description) for n, c in sorted(recipes().items())]

"""Groups of devices: a tag query (and board), or an explicit list."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from tinymlaas.api.deps import RegistryDep, SettingsDep, StoreDep
from tinymlaas.api.handlers import problems
from tinymlaas.api.security import Operator, Viewer
from tinymlaas.fleet.models import Group, GroupSpec, RegisteredDevice
from tinymlaas.services import rollouts as service

router = APIRouter(prefix="/groups", tags=["groups"])


@router.get("")
def list_groups(store: StoreDep, user: Viewer) -> list[Group]:
    return store.rollouts.groups()


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(409, 422))
def create_group(body: GroupSpec, store: StoreDep, settings: SettingsDep, user: Operator) -> Group:
    """A group by tag query (devices carrying every tag, of the board if given) or by list;
    a query's members are whoever matches when a rollout starts."""
    return service.create_group(store, settings.targets_dir, body)


@router.get("/{name}", responses=problems(404))
def read_group(name: str, store: StoreDep, user: Viewer) -> Group:
    return store.rollouts.group(name)


@router.get("/{name}/devices", responses=problems(404, 422))
async def group_devices(name: str, store: StoreDep, registry: RegistryDep, user: Viewer
                        ) -> list[RegisteredDevice]:
    """The group's devices now (decommissioned devices belong to no group)."""
    return await service.members(store, registry, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409))
def delete_group(name: str, store: StoreDep, user: Operator) -> Response:
    store.rollouts.delete_group(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

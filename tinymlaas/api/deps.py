"""Annotated dependencies: what a route needs, taken from the app's state."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from tinymlaas.config import Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.plugins.base import Orchestrator
from tinymlaas.services.hybrid import Cloud
from tinymlaas.signing import Signer
from tinymlaas.store import Store

T = TypeVar("T")


def _state(request: Request, name: str, kind: type[T]) -> T:
    """What the lifespan put on the app's state, checked (the state itself is untyped)."""
    value = getattr(request.app.state, name)
    assert isinstance(value, kind)
    return value


def get_settings_dep(request: Request) -> Settings:
    return _state(request, "settings", Settings)


def get_store(request: Request) -> Store:
    return _state(request, "store", Store)


def get_runner(request: Request) -> JobRunner:
    return _state(request, "runner", JobRunner)


def get_signer(request: Request) -> Signer:
    return _state(request, "signer", Signer)


def get_orchestrator(request: Request) -> Orchestrator:
    orchestrator = request.app.state.orchestrator
    assert isinstance(orchestrator, Orchestrator)
    return orchestrator


def get_cloud(request: Request) -> Cloud:
    return _state(request, "cloud", Cloud)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[Store, Depends(get_store)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
SignerDep = Annotated[Signer, Depends(get_signer)]
CloudDep = Annotated[Cloud, Depends(get_cloud)]

"""Annotated dependencies: what a route needs, taken from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tinymlaas.config import Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.plugins.base import Orchestrator
from tinymlaas.store import Store


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[Store, Depends(get_store)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]

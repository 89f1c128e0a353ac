"""Fixtures and steps shared by every domain's scenarios."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pytest_bdd import given, parsers

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.models import Board
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The repository's settings; the zoo cache in var/ is shared with the demo."""
    return Settings()


@pytest.fixture(scope="session")
def images(settings: Settings) -> dict[str, bool]:
    """Every declared image, current (only rebuilt when its context changed)."""
    from tinymlaas.images import ensure_all

    return ensure_all(settings)


@pytest.fixture
def board_named(settings: Settings) -> Callable[[str], Board]:
    def get(name: str) -> Board:
        return get_board(settings.targets_dir, name)

    return get


@given("the hello_world int8 model from the zoo", target_fixture="model_bytes")
def hello_world_model(settings: Settings) -> bytes:
    return get_recipe("hello_world").load(settings.zoo_dir)


@given(parsers.parse("the {name} zoo model"), target_fixture="model_bytes")
def zoo_model(settings: Settings, name: str) -> bytes:
    return get_recipe(name).load(settings.zoo_dir)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def service(tmp_path: Path, settings: Settings,
            service_databases: Callable[[Path], str]) -> Iterator[BackgroundServer]:
    """A fresh service: its own database and artifacts, the shared zoo cache."""
    data = tmp_path / "service"
    fresh = settings.model_copy(update={"data_dir": data, "database_url": service_databases(data),
                                        "lwm2m": settings.lwm2m.model_copy(update={"port": 0})})
    with BackgroundServer(fresh) as live:
        yield live


@given("the service is running with a fresh database", target_fixture="api")
def running_service(service: BackgroundServer) -> httpx.Client:
    client = service.client(timeout=30)
    assert client.get("/health").json()["status"] == "ok"
    return client

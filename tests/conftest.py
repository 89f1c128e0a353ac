"""Unit-test fixtures: small real models, no containers."""

from __future__ import annotations

import pytest

from tinymlaas.config import Settings
from tinymlaas.zoo import get_recipe


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def hello_world(settings: Settings) -> bytes:
    return get_recipe("hello_world").load(settings.zoo_dir)


@pytest.fixture(scope="session")
def sensor_fusion(settings: Settings) -> bytes:
    """Two inputs and two outputs, each with its own quantization."""
    return get_recipe("sensor_fusion").load(settings.zoo_dir)

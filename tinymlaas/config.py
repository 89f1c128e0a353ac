"""Settings, read once at the edges (CLI, API app factory) and passed down.

Environment variables use the prefix ``TINYMLAAS_`` and ``__`` for nesting,
e.g. ``TINYMLAAS_LWM2M__PORT=5700``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class BuildSettings(BaseModel):
    executor: Literal["docker", "local"] = "docker"
    timeout_s: float = Field(900.0, gt=0)
    concurrency: int = Field(1, ge=1, le=16)


class EmulatorSettings(BaseModel):
    backend: str = "qemu"
    boot_timeout_s: float = Field(10.0, gt=0)


class LwM2MSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(5683, ge=0, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TINYMLAAS_", env_nested_delimiter="__")

    data_dir: Path = REPO_ROOT / "var"
    targets_dir: Path = REPO_ROOT / "targets"
    #: Trained zoo models, cached by recipe hash; shared so tests need not retrain.
    zoo_dir: Path = REPO_ROOT / "var" / "zoo"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    build: BuildSettings = BuildSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    lwm2m: LwM2MSettings = LwM2MSettings()

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tinymlaas.sqlite3"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


@lru_cache
def get_settings() -> Settings:
    return Settings()

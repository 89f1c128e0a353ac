"""Fixtures for the Cortex-M firmware tests: the stand-in module built with the
real toolchain through the local builder, once per board per session."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest
from mcu_helpers import EchoFirmware, load_cortex_m_builder, write_echo_module


@pytest.fixture(scope="session")
def cortex_m_builder() -> ModuleType:
    return load_cortex_m_builder()


@pytest.fixture(scope="session")
def echo_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("echo") / "module"
    write_echo_module(path)
    return path


@pytest.fixture(scope="session")
def echo_firmware(echo_module: Path, tmp_path_factory: pytest.TempPathFactory) -> EchoFirmware:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    return EchoFirmware(echo_module, tmp_path_factory.mktemp("echo-fw"))

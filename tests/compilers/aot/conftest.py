"""Cortex-M boards as the MCU targets describe them (zoo models come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tinymlaas.models import Board, ImageSpec


def c_board(name: str, arch: str, cpu: str, flash: int, ram: int) -> Board:
    """A Cortex-M board as the MCU targets describe them (module kind c-source)."""
    return Board(
        name=name, description=f"{cpu} test board", arch=arch, cpu=cpu, family="test",
        module_kind="c-source", compilers=["aot"], flash_bytes=flash, ram_bytes=ram,
        builder=ImageSpec(image=f"tinymlaas/builder-{name}", context="builder"),
    )


@pytest.fixture
def m3_board() -> Board:
    """lm3s6965evb-like: Cortex-M3, 256 KiB flash, 64 KiB RAM."""
    return c_board("lm3s6965evb", "armv7-m", "cortex-m3", 256 * 1024, 64 * 1024)


@pytest.fixture
def small_board() -> Board:
    """stm32vldiscovery-like: Cortex-M3, 128 KiB flash, 8 KiB RAM."""
    return c_board("stm32vldiscovery", "armv7-m", "cortex-m3", 128 * 1024, 8 * 1024)


@pytest.fixture
def microbit_board() -> Board:
    """micro:bit-like: Cortex-M0, 256 KiB flash, 16 KiB RAM."""
    return c_board("microbit", "armv6-m", "cortex-m0", 256 * 1024, 16 * 1024)

"""The Cortex-M builder's board-driven pieces: linker script, fit check, overflow errors."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from mcu_helpers import MCU_BOARDS, TARGETS, write_echo_module

from tinymlaas.errors import DoesNotFit
from tinymlaas.models import ModuleManifest
from tinymlaas.targets import get_board


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_linker_script_uses_the_real_memory_map(cortex_m_builder: ModuleType, name: str) -> None:
    board = get_board(TARGETS, name)
    script = cortex_m_builder.linker_script(board, cortex_m_builder.Options())
    flash = next(r for r in board.regions if r.kind == "flash")
    ram = next(r for r in board.regions if r.kind == "ram")
    assert f"ORIGIN = 0x{flash.origin:08x}, LENGTH = {board.flash_bytes}" in script
    assert f"ORIGIN = 0x{ram.origin:08x}, LENGTH = {board.ram_bytes}" in script
    assert f"STACK_BYTES = {board.board_support['stack_bytes']}" in script
    assert "} > FLASH\n" in script.split("_emodel = .;")[1]


def test_model_update_option_moves_the_model_into_ram(cortex_m_builder: ModuleType) -> None:
    board = get_board(TARGETS, "microbit")
    script = cortex_m_builder.linker_script(board, cortex_m_builder.Options(model_update=True))
    assert "} > RAM AT > FLASH" in script.split("_emodel = .;")[1]


def big_arena(tmp_path: Path, arena: int) -> ModuleManifest:
    m = write_echo_module(tmp_path)
    m.memory.arena_bytes = arena
    return m


def test_fit_check_names_region_and_missing_bytes(cortex_m_builder: ModuleType,
                                                 tmp_path: Path) -> None:
    board = get_board(TARGETS, "stm32vldiscovery")
    module = big_arena(tmp_path, 10_000)
    p = cortex_m_builder.plan(module, board, cortex_m_builder.Options())
    with pytest.raises(DoesNotFit, match=r"does not fit RAM on board 'stm32vldiscovery'") as exc:
        cortex_m_builder.check_fit(module, board, cortex_m_builder.Options())
    assert exc.value.details["region"] == "ram"
    assert exc.value.details["missing_bytes"] == p.ram - 8192 > 10_000 - 8192
    assert f"{p.ram - 8192} B missing" in exc.value.message
    # the same module fits the micro:bit's 16 KB... but not with the model data in RAM too
    cortex_m_builder.check_fit(module, get_board(TARGETS, "netduinoplus2"),
                               cortex_m_builder.Options())


def test_linker_overflow_becomes_does_not_fit(cortex_m_builder: ModuleType, tmp_path: Path) -> None:
    """A module whose manifest understates its RAM passes the plan; the linker catches it."""
    board = get_board(TARGETS, "stm32vldiscovery")
    module_dir = tmp_path / "module"
    module = write_echo_module(module_dir)
    src = (module_dir / "model.c").read_text()
    (module_dir / "model.c").write_text(
        src.replace("int model_invoke(", "static int8_t hidden[12000];\nint model_invoke(")
        .replace("    return 0;\n}", "    hidden[input[1]] = 1;\n    return hidden[input[2]];\n}"))
    cortex_m_builder.check_fit(module, board, cortex_m_builder.Options())
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DoesNotFit, match="does not fit RAM on board 'stm32vldiscovery'") as exc:
        cortex_m_builder.compile_and_link(module_dir, module, board, work, "1.0.0",
                                          cortex_m_builder.Options())
    assert exc.value.details["region"] == "ram" and exc.value.details["missing_bytes"] > 0

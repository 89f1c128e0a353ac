"""The Cortex-M builder's board-driven pieces: linker script, fit check, overflow errors."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from mcu_helpers import MCU_BOARDS, TARGETS, EchoFirmware, write_echo_module

from tinymlaas.errors import DoesNotFit, InvalidInput
from tinymlaas.models import FirmwareNeeds, ModuleManifest
from tinymlaas.services.compile import compile_model
from tinymlaas.targets import get_board


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_linker_script_uses_the_real_memory_map(cortex_m_builder: ModuleType, name: str) -> None:
    board = get_board(TARGETS, name)
    script = cortex_m_builder.linker_script(board, cortex_m_builder.Options())
    flash = next(r for r in board.regions if r.kind == "flash")
    ram = next(r for r in board.regions if r.kind == "ram")
    assert f"ORIGIN = 0x{flash.origin:08x}, LENGTH = {board.flash_bytes}" in script
    assert f"ORIGIN = 0x{ram.origin:08x}, LENGTH = {board.ram_bytes}" in script
    assert f"STACK_BYTES = {board.firmware.stack_bytes}" in script
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


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_compiler_and_builder_refuse_exactly_the_same(cortex_m_builder: ModuleType,
                                                      hello_world: bytes, tmp_path: Path,
                                                      name: str) -> None:
    """The aot compiler reserves the board's declared firmware needs by default, so on a
    board one byte short of what the builder plans both refuse, by that one byte."""
    board = get_board(TARGETS, name)
    module = compile_model(hello_world, board, tmp_path / "module", compiler="aot")
    need = cortex_m_builder.plan(module, board, cortex_m_builder.Options())
    for region, total in (("ram", need.ram), ("flash", need.flash)):
        exact = board.model_copy(update={f"{region}_bytes": total})
        compile_model(hello_world, exact, tmp_path / f"{region}-ok", compiler="aot")
        cortex_m_builder.check_fit(module, exact, cortex_m_builder.Options())
        short = board.model_copy(update={f"{region}_bytes": total - 1})
        with pytest.raises(DoesNotFit) as by_compiler:
            compile_model(hello_world, short, tmp_path / f"{region}-short", compiler="aot")
        with pytest.raises(DoesNotFit) as by_builder:
            cortex_m_builder.check_fit(module, short, cortex_m_builder.Options())
        for exc in (by_compiler.value, by_builder.value):
            assert (exc.details["region"], exc.details["missing_bytes"]) == (region, 1)


def test_a_cortex_m_board_must_declare_its_firmware_needs(cortex_m_builder: ModuleType,
                                                          tmp_path: Path) -> None:
    board = get_board(TARGETS, "microbit").model_copy(update={"firmware": FirmwareNeeds()})
    with pytest.raises(InvalidInput, match=r"board 'microbit' must declare \[firmware\]"):
        cortex_m_builder.check_fit(write_echo_module(tmp_path), board, cortex_m_builder.Options())


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_declared_firmware_needs_cover_the_linked_firmware(echo_firmware: EchoFirmware,
                                                           name: str) -> None:
    """What the fit check planned from the board's [firmware] is at least what the linker
    placed (the stand-in module's few bytes of code included)."""
    _, _, fw = echo_firmware(name)
    assert fw.sizes["ram"] <= fw.planned["ram"]
    assert fw.sizes["flash"] <= fw.planned["flash"]


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_boards_with_an_fpu_get_hard_float_the_others_soft(echo_firmware: EchoFirmware,
                                                           name: str) -> None:
    """[board_support] fpu selects -mfpu and the hard-float ABI (startup.c enables the FPU);
    the ELF's build attributes say which one the linker got."""
    import subprocess

    board, elf, _ = echo_firmware(name)
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True,
                           text=True, check=True).stdout
    fpu = board.board_support.get("fpu")
    assert ("Tag_ABI_VFP_args: VFP registers" in attrs) == (fpu is not None)
    if fpu is not None:
        assert board.fpu and "Tag_FP_arch" in attrs

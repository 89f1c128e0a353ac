"""Plugin discovery refuses what does not fit the contracts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymlaas.compilers.tflm import TflmCompiler
from tinymlaas.config import Settings
from tinymlaas.errors import NotFound, PluginError, UnsupportedModel
from tinymlaas.models import Board, ImageSpec, ModelInfo, TensorSpec
from tinymlaas.plugins.base import Builder, Compiler
from tinymlaas.plugins.registry import compiler_for, compiler_plugin, plugins, verify


def test_builtins_are_discovered_through_entry_points() -> None:
    assert "tflm" in plugins("compilers")
    assert {"docker", "local"} <= set(plugins("builders"))


def test_unknown_kind_and_name() -> None:
    with pytest.raises(PluginError):
        plugins("spaceships")
    with pytest.raises(NotFound, match="available"):
        compiler_plugin("nope")


def test_verify_rejects_wrong_base_and_name_mismatch() -> None:
    with pytest.raises(PluginError, match="not a subclass"):
        verify(Builder, TflmCompiler, "tflm")
    with pytest.raises(PluginError, match="must agree"):
        verify(Compiler, TflmCompiler, "other")


def test_verify_rejects_unimplemented_plugin() -> None:
    class Half(Compiler):
        name = "half"

    with pytest.raises(PluginError, match="does not implement compile"):
        verify(Compiler, Half, "half")


def _board(**kw: object) -> Board:
    base = dict(name="b", description="", arch="x86_64", cpu="x", family="x", module_kind="tflm-bundle",
                compilers=["tflm"], flash_bytes=1000, ram_bytes=1000,
                builder=ImageSpec(image="i", context="c"))
    return Board.model_validate({**base, **kw})


def test_compiler_chain_must_match_board() -> None:
    assert compiler_for(_board()) is TflmCompiler
    with pytest.raises(UnsupportedModel, match="builds 'c-source'"):
        compiler_for(_board(module_kind="c-source"), "tflm")


def test_check_names_unsupported_op_and_dtype() -> None:
    t = TensorSpec(name="in", shape=[1], dtype="int8")
    info = ModelInfo(sha256="0", bytes=1, ops=["FULLY_CONNECTED", "MAGIC"], operators=2, inputs=[t],
                     outputs=[t])
    with pytest.raises(UnsupportedModel, match="MAGIC") as exc:
        TflmCompiler().check(info, _board())
    assert "FULLY_CONNECTED" in str(exc.value)  # the supported list is in the message
    odd = info.model_copy(update={"ops": ["FULLY_CONNECTED"],
                                  "inputs": [t.model_copy(update={"dtype": "complex64"})]})
    with pytest.raises(UnsupportedModel, match="complex64"):
        TflmCompiler().check(odd, _board())


def test_board_files_are_valid(settings: Settings) -> None:
    from tinymlaas.targets import load_boards

    boards = load_boards(settings.targets_dir)
    assert "x86-tflm" in boards
    for name, board in boards.items():
        assert (Path(settings.targets_dir) / name / board.builder.context).is_dir()


def test_a_board_names_the_emulators_its_emulator_table_is_for() -> None:
    from pydantic import ValidationError

    ok = _board(emulators=["qemu", "renode"],
                emulator={"qemu_machine": "m", "renode_platform": "p.repl", "renode_uart": "u"})
    assert ok.emulators == ["qemu", "renode"]
    with pytest.raises(ValidationError, match=r"names 'renode' but \[emulator\] has no renode_"):
        _board(emulators=["qemu", "renode"], emulator={"qemu_machine": "m"})
    with pytest.raises(ValidationError, match=r"keys \['renode_platform'\] belong to no backend"):
        _board(emulators=["qemu"], emulator={"qemu_machine": "m", "renode_platform": "p.repl"})
    with pytest.raises(ValidationError, match="twice"):
        _board(emulators=["qemu", "qemu"], emulator={"qemu_machine": "m"})

"""Compile service: atomic output, option validation, fit check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinymlaas.config import Settings
from tinymlaas.errors import DoesNotFit, InvalidInput
from tinymlaas.services.compile import compile_model, read_module
from tinymlaas.services.staging import staged_dir
from tinymlaas.targets import get_board


def test_staged_dir_replaces_only_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with staged_dir(dest) as tmp:
        (tmp / "a").write_text("1")
    assert (dest / "a").read_text() == "1"
    with pytest.raises(RuntimeError), staged_dir(dest) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("boom")
    assert (dest / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_compile_writes_module(hello_world: bytes, settings: Settings, tmp_path: Path) -> None:
    board = get_board(settings.targets_dir, "x86-tflm")
    manifest = compile_model(hello_world, board, tmp_path / "m")
    assert read_module(tmp_path / "m") == manifest
    assert (tmp_path / "m" / "model.tflite").read_bytes() == hello_world
    assert 1000 < manifest.memory.arena_bytes < 4096
    assert manifest.compiler.name == "tflm"


def test_bad_option_is_named(hello_world: bytes, settings: Settings, tmp_path: Path) -> None:
    board = get_board(settings.targets_dir, "x86-tflm")
    with pytest.raises(InvalidInput, match="arena_margin_bytes"):
        compile_model(hello_world, board, tmp_path / "m", options={"arena_margin_bytes": -1})
    with pytest.raises(InvalidInput, match="colour"):
        compile_model(hello_world, board, tmp_path / "m", options={"colour": "red"})
    assert not (tmp_path / "m").exists()


def test_does_not_fit_names_region(hello_world: bytes, settings: Settings, tmp_path: Path) -> None:
    board = get_board(settings.targets_dir, "x86-tflm").model_copy(update={"ram_bytes": 1024})
    with pytest.raises(DoesNotFit, match=r"RAM \(\d+ B missing\)"):
        compile_model(hello_world, board, tmp_path / "m")


def test_read_module_refuses_garbage(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"no manifest\.json"):
        read_module(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InvalidInput, match="not a valid"):
        read_module(tmp_path)

"""Boards are data: one ``targets/<board>/board.toml`` per board.

Adding a board is adding a folder; nothing in the package names boards.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from tinymlaas.edge.uart import frame_buffer_bytes
from tinymlaas.errors import NotFound, PluginError
from tinymlaas.models import Board


def load_board(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
        board = Board.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise PluginError(f"invalid board file {path}: {exc}") from exc
    if board.name != path.parent.name:
        raise PluginError(f"{path}: board name '{board.name}' must equal its folder name")
    return board


def load_boards(targets_dir: Path) -> dict[str, Board]:
    return {
        p.parent.name: load_board(p) for p in sorted(targets_dir.glob("*/board.toml"))
    }


def get_board(targets_dir: Path, name: str) -> Board:
    boards = load_boards(targets_dir)
    if name not in boards:
        raise NotFound(f"no target board '{name}'; known boards: {', '.join(boards) or 'none'}")
    return boards[name]


def board_dir(targets_dir: Path, board: Board) -> Path:
    return targets_dir / board.name


def load_board_from(boards_dir: Path, name: str) -> Board:
    """A board from either layout: ``DIR/<name>/board.toml`` (the repo's targets/)
    or ``DIR/<name>.toml`` (the copies baked into a builder image)."""
    for path in (boards_dir / name / "board.toml", boards_dir / f"{name}.toml"):
        if path.is_file():
            board = Board.model_validate(tomllib.loads(path.read_text()))
            if board.name != name:
                raise PluginError(f"{path}: board name '{board.name}' must be '{name}'")
            return board
    raise NotFound(f"no board '{name}' under {boards_dir}")


def firmware_ram_bytes(board: Board, input_bytes: int, output_bytes: int) -> int:
    """RAM the board's firmware needs besides the module's arena, for a model's tensors."""
    fw = board.firmware
    frames = frame_buffer_bytes(input_bytes, output_bytes) if fw.uart_frames else 0
    return fw.stack_bytes + fw.static_ram_bytes + frames

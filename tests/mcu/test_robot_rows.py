"""The data-driven Robot suite lists one row per board and emulator its board.toml names."""

from __future__ import annotations

import re

from mcu_helpers import TARGETS

from tinymlaas.config import REPO_ROOT
from tinymlaas.targets import load_boards


def test_the_robot_rows_are_the_boards_data() -> None:
    suite = (REPO_ROOT / "tests" / "robot" / "mcu" / "boards.robot").read_text()
    cases = suite.split("*** Test Cases ***", 1)[1].split("*** Keywords ***", 1)[0]
    rows = set(re.findall(r"^\S.*?\s{2,}(\S+)\s{2,}(\S+)\s*$", cases, re.MULTILINE))
    expected = {(name, emu) for name, board in load_boards(TARGETS).items()
                for emu in board.emulators}
    assert rows == expected

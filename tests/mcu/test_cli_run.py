"""``tinymlaas run``: boot firmware in QEMU, print outputs and instruction counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mcu_helpers import EchoFirmware

from tinymlaas.emulators.qemu import QemuEmulator

pytestmark = [pytest.mark.qemu, pytest.mark.skipif(QemuEmulator.unavailable() is not None,
                                                    reason=QemuEmulator.unavailable() or "")]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymlaas.cli.main", "run", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_run_prints_outputs_and_instruction_counts(echo_firmware: EchoFirmware,
                                                   tmp_path: Path) -> None:
    _, elf, _ = echo_firmware("lm3s6965evb")
    x = tmp_path / "x.npy"
    # float input, quantized with the device's scale 0.5 and zero point -3: 2.0 -> 1 etc.
    np.save(x, np.array([[2.0, 2.5, 3.0, -1.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32))
    r = _run(str(elf), "--target", "lm3s6965evb", "--input", str(x))
    assert r.returncode == 0, r.stderr
    assert "TINYMLAAS READY board=lm3s6965evb" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("│")]
    # echo: out = in + (1, 2, 3, 4), output scale 0.25
    assert rows[0].split("│")[2].split() == ["2", "4", "6", "-1"]
    assert rows[0].split("│")[3].split() == ["0.5", "1", "1.5", "-0.25"]
    assert rows[1].split("│")[2].split() == ["-2", "-1", "0", "1"]
    assert int(rows[0].split("│")[4].strip().replace(",", "")) > 10


def test_run_refuses_an_input_of_the_wrong_size(echo_firmware: EchoFirmware,
                                                tmp_path: Path) -> None:
    _, elf, _ = echo_firmware("lm3s6965evb")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(3, dtype=np.int8))
    r = _run(str(elf), "--target", "lm3s6965evb", "--input", str(x))
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: the model takes 4 input values per inference; "
                                "the input holds 3")

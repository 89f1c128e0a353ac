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


@pytest.mark.parametrize(("shape", "why"), [
    ((3,), "3"), ((8,), "8"), ((2, 5), "2x5"), ((320,), "320")])
def test_run_refuses_an_input_that_is_not_whole_inputs(echo_firmware: EchoFirmware, tmp_path: Path,
                                                       shape: tuple[int, ...], why: str) -> None:
    """One input, or one input per row: never a flat array cut into inputs silently."""
    _, elf, _ = echo_firmware("lm3s6965evb")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(shape, dtype=np.int8))
    r = _run(str(elf), "--target", "lm3s6965evb", "--input", str(x))
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip() == (f"error: tensor 'x' takes 4 values per inference; the input of "
                                f"shape {why} is neither one tensor nor one per row (N x 4)")


def test_run_refuses_more_inputs_than_the_model_takes(echo_firmware: EchoFirmware, tmp_path: Path) -> None:
    _, elf, _ = echo_firmware("lm3s6965evb")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(4, dtype=np.int8))
    r = _run(str(elf), "--target", "lm3s6965evb", "--input", str(x), "--input", str(x))
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip() == "error: the model takes 1 input tensors (x); 2 were given"


def test_run_refuses_firmware_built_for_another_board(echo_firmware: EchoFirmware, tmp_path: Path) -> None:
    _, elf, _ = echo_firmware("microbit")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(4, dtype=np.int8))
    r = _run(str(elf), "--target", "lm3s6965evb", "--input", str(x))  # the folder's manifest says so
    assert (r.returncode, r.stderr.strip()) == (
        2, f"error: {elf} was built for board 'microbit', not 'lm3s6965evb'")
    bare = tmp_path / "bare.elf"
    bare.write_bytes(elf.read_bytes())  # no manifest: the image names its board
    r = _run(str(bare), "--target", "lm3s6965evb", "--input", str(x))
    assert (r.returncode, r.stderr.strip()) == (
        2, f"error: {bare} was built for board 'microbit', not 'lm3s6965evb'")
    r = _run(str(x), "--target", "lm3s6965evb", "--input", str(x))
    assert r.returncode == 2 and "is not an ARM ELF image" in r.stderr


def test_run_takes_one_array_per_input_and_prints_every_output(sensor_fusion: bytes, tmp_path: Path) -> None:
    """A model with two inputs and two outputs (aot, Cortex-M3): one .npy per input, each quantized
    with the device's own scale for it; every output of every row, bit-exact with TFLM."""
    import json

    from tinymlaas.builders.local import LocalBuilder
    from tinymlaas.config import Settings
    from tinymlaas.edge.tflm import Tflm, quantize
    from tinymlaas.services.compile import compile_model
    from tinymlaas.targets import get_board
    from tinymlaas.zoo.fusion import samples

    board = get_board(Settings().targets_dir, "lm3s6965evb")
    module = compile_model(sensor_fusion, board, tmp_path / "module", compiler="aot")
    LocalBuilder().build(tmp_path / "module", board, tmp_path / "fw")
    motion, context, _, _ = samples(3, 5)
    np.save(tmp_path / "motion.npy", motion)
    np.save(tmp_path / "context.npy", context)
    r = _run(str(tmp_path / "fw"), "-t", board.name, "-i", str(tmp_path / "motion.npy"),
             "-i", str(tmp_path / "context.npy"), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["inferences"]
    oracle = Tflm(sensor_fusion, inputs=2, outputs=2)
    assert len(rows) == 3
    for row, m, c in zip(rows, motion, context, strict=True):
        xs = [quantize(v, t.scale, t.zero_point, np.int8) for v, t in zip((m, c), module.inputs, strict=True)]
        want = oracle.invoke_all(xs)
        assert [o["output"] for o in row["outputs"]] == [w.ravel().tolist() for w in want]
        assert [o["name"] for o in row["outputs"]] == [t.name for t in module.outputs]  # the build's
        assert row["instructions"] > 100

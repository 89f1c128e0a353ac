"""Steps for the emulated Cortex-M boards: real aot compiler, real builder containers
(each board's firmware built once per session), real QEMU and, where installed, real Renode;
TFLM as the oracle."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.builders.container import DockerBuilder
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.edge.uart import UartClient
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.emulators.renode import RenodeEmulator
from tinymlaas.errors import DoesNotFit
from tinymlaas.models import Board, FirmwareManifest, ModuleManifest
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.targets import get_board, load_boards
from tinymlaas.zoo import get_recipe

pytestmark = pytest.mark.skipif(QemuEmulator.unavailable() is not None,
                                reason=QemuEmulator.unavailable() or "")

scenarios("qemu")

FIRMWARE_VERSION = "1.0.0"


@dataclass(frozen=True)
class Built:
    board: Board
    model: bytes
    module: ModuleManifest
    module_dir: Path
    firmware: FirmwareManifest
    firmware_dir: Path
    seconds: float


@pytest.fixture(scope="session")
def mcu_build(settings: Settings, images: dict[str, bool],
              tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Built]:
    """Compile + build in the builder container, once per (model, board) per session."""
    root = tmp_path_factory.mktemp("mcu")
    done: dict[tuple[str, str], Built] = {}

    def build(model_name: str, board_name: str) -> Built:
        key = (model_name, board_name)
        if key not in done:
            board = get_board(settings.targets_dir, board_name)
            model = get_recipe(model_name).load(settings.zoo_dir)
            work = root / f"{model_name}-{board_name}"
            start = time.monotonic()
            module = compile_model(model, board, work / "module", compiler="aot", name=model_name)
            firmware = DockerBuilder().build(work / "module", board, work / "fw",
                                             version=FIRMWARE_VERSION)
            done[key] = Built(board, model, module, work / "module", firmware, work / "fw",
                              time.monotonic() - start)
        return done[key]

    return build


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {}


@given(parsers.parse('the board "{name}"'), target_fixture="board")
def the_board(settings: Settings, name: str) -> Board:
    return get_board(settings.targets_dir, name)


@given("Renode is installed")
def renode_installed() -> None:
    reason = RenodeEmulator.unavailable()
    if reason:
        pytest.skip(f"{reason}: Renode has no package in the registries CI reaches")


@when(parsers.parse("{model_name} is compiled with aot, built in the builder container and "
                    "booted in {emulator}"), target_fixture="device")
def booted(mcu_build: Callable[[str, str], Built], board: Board, model_name: str, emulator: str,
           ctx: dict[str, Any]) -> Iterator[McuDevice]:
    ctx["built"] = mcu_build(model_name, board.name)
    with McuDevice(board, ctx["built"].firmware_dir, emulator=emulator.lower()) as device:
        yield device


@when(parsers.parse("{model_name} is compiled with aot and built in the builder container"))
def built_only(mcu_build: Callable[[str, str], Built], board: Board, model_name: str,
               ctx: dict[str, Any]) -> None:
    ctx["built"] = mcu_build(model_name, board.name)


@then("the board prints its ready banner with the firmware version and the model hash")
def banner(device: McuDevice, board: Board, ctx: dict[str, Any]) -> None:
    built: Built = ctx["built"]
    assert device.banner.board == board.name
    assert device.banner.firmware_version == FIRMWARE_VERSION
    assert device.banner.model_sha256 == built.module.model_sha256 == built.firmware.model_sha256


def _quantized(built: Built, samples: np.ndarray) -> list[np.ndarray]:
    t = built.module.inputs[0]
    assert t.scale is not None and t.zero_point is not None
    return [quantize(np.asarray(x, dtype=np.float64).reshape(t.shape), t.scale, t.zero_point,
                     np.dtype(np.int8)) for x in samples]


def _compare(device: McuDevice, built: Built, inputs: list[np.ndarray], ctx: dict[str, Any]) -> None:
    oracle = Tflm(built.model)
    counts, mismatches = [], []
    for i, x in enumerate(inputs):
        got = device.infer(x)
        want = oracle.invoke(x).ravel().tobytes()
        counts.append(got.instructions)
        if got.output != want:
            mismatches.append((i, list(got.output), list(want)))
    assert not mismatches, f"device output differs from TFLM's: {mismatches}"
    ctx["counts"], ctx["inputs"] = counts, inputs


@then("the outputs for x = 0..6 equal the TFLM interpreter's bytes")
def hello_outputs(device: McuDevice, ctx: dict[str, Any]) -> None:
    built: Built = ctx["built"]
    _compare(device, built, _quantized(built, np.arange(7, dtype=np.float64)), ctx)


@then(parsers.parse("the outputs for {n:d} digit images equal the TFLM interpreter's bytes"))
def digits_outputs(device: McuDevice, ctx: dict[str, Any], n: int) -> None:
    built: Built = ctx["built"]
    _compare(device, built, _quantized(built, get_recipe("digits_cnn").sample_inputs()[:n]), ctx)


@then("every inference reports the same instruction count when repeated")
def counts_repeat(device: McuDevice, ctx: dict[str, Any]) -> None:
    assert all(c > 0 for c in ctx["counts"])
    again = [device.infer(x).instructions for x in ctx["inputs"]]
    assert again == ctx["counts"]


@then("the instruction counts equal QEMU's for the same firmware")
def counts_equal_qemus(board: Board, ctx: dict[str, Any]) -> None:
    with QemuEmulator().start(ctx["built"].firmware_dir / ctx["built"].firmware.image,
                              board) as session:
        client = UartClient(session, timeout=10)
        client.wait_ready(10)
        qemu = [client.infer(x).instructions for x in ctx["inputs"]]
    assert qemu == ctx["counts"]


@then("the firmware's flash and RAM are within the board's")
def within_board(board: Board, ctx: dict[str, Any]) -> None:
    fw: FirmwareManifest = ctx["built"].firmware
    assert 0 < fw.sizes["flash"] <= board.flash_bytes and fw.headroom["flash"] >= 0
    assert 0 < fw.sizes["ram"] <= board.ram_bytes and fw.headroom["ram"] >= 0
    assert fw.sizes["ram"] >= ctx["built"].module.memory.arena_bytes


@when("digits_cnn is compiled with aot for it", target_fixture="refusal")
def compile_refused(settings: Settings, board: Board, tmp_path: Path) -> DoesNotFit:
    model = get_recipe("digits_cnn").load(settings.zoo_dir)
    with pytest.raises(DoesNotFit) as exc:
        compile_model(model, board, tmp_path / "module", compiler="aot", name="digits_cnn")
    assert not (tmp_path / "module").exists()
    return exc.value


@when(parsers.parse('the digits_cnn module compiled for "{other}" is built for it in the builder '
                    "container"), target_fixture="refusal")
def build_refused(mcu_build: Callable[[str, str], Built], board: Board, tmp_path: Path,
                  other: str) -> DoesNotFit:
    module_dir = mcu_build("digits_cnn", other).module_dir
    with pytest.raises(DoesNotFit) as exc:
        DockerBuilder().build(module_dir, board, tmp_path / "fw")
    assert not (tmp_path / "fw").exists()
    return exc.value


@then("it is refused because it does not fit RAM, naming the bytes missing")
def refused(refusal: DoesNotFit, board: Board) -> None:
    missing = refusal.details["missing_bytes"]
    assert refusal.details["region"] == "ram" and missing > 0
    assert f"{missing} B missing" in refusal.message
    assert f"'{board.name}'" in refusal.message and str(board.ram_bytes) in refusal.message
    assert refusal.exit_code == 2 and refusal.status == 422


@then("the refusal comes from the builder's fit check, not from the linker")
def from_fit_check(refusal: DoesNotFit) -> None:
    assert "arena" in refusal.message and "linker" not in refusal.message


def _examples(feature: str, outline: str) -> list[str]:
    """The board column of one Scenario Outline's Examples in features/qemu/."""
    text = (Path(__file__).parents[1] / "features" / "qemu" / feature).read_text()
    block = text.split(outline, 1)[1].split("Scenario", 1)[0]
    cells = re.findall(r"^\s*\|\s*([a-z0-9][\w.-]*)\s*\|\s*$", block, re.MULTILINE)
    return cells[1:]  # below the "board" header


def test_the_outlines_list_the_boards_their_emulator_runs(settings: Settings) -> None:
    """The Examples are hand-written for readable reports; this keeps them equal to the
    boards' data (digits_cnn skips the one board it does not fit)."""
    boards = load_boards(settings.targets_dir)
    runs = {emu: sorted(n for n, b in boards.items() if emu in b.emulators)
            for emu in ("qemu", "renode")}
    renode_only = sorted(set(runs["renode"]) - set(runs["qemu"]))
    both = sorted(set(runs["renode"]) & set(runs["qemu"]))
    assert sorted(_examples("cortex_m.feature", "hello_world on <board>")) == runs["qemu"]
    assert sorted(_examples("cortex_m.feature", "digits CNN on <board>")) == \
        sorted(set(runs["qemu"]) - {"stm32vldiscovery"})
    assert _examples("renode_boards.feature", "hello_world for <board>") == renode_only
    assert _examples("renode_boards.feature", "hello_world on <board> under Renode") == \
        runs["renode"]
    assert _examples("renode_boards.feature", "<board> counts the same") == both

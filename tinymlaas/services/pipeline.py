"""The whole loop on one board: zoo -> compile -> build -> boot -> infer.

Used by ``tinymlaas demo``; every step is the real thing (TensorFlow, TFLM, the
builder container, the device container or the emulated board).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, dequantize, quantize
from tinymlaas.models import Board, FirmwareManifest, ModuleManifest
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.plugins.registry import builder_plugin
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe


@dataclass(frozen=True)
class InferenceResult:
    x: float
    expected: float
    device_raw: list[int]
    device_value: float
    tflm_raw: list[int]
    instructions: int | None = None

    @property
    def bit_exact(self) -> bool:
        return self.device_raw == self.tflm_raw

    @property
    def error(self) -> float:
        return abs(self.device_value - self.expected)


@dataclass(frozen=True)
class LoopResult:
    module: ModuleManifest
    firmware: FirmwareManifest
    banner: str
    results: list[InferenceResult]


def hello_world_loop(
    settings: Settings,
    work: Path,
    *,
    target: str = "x86-tflm",
    builder: str = "docker",
    progress: Progress = no_progress,
) -> LoopResult:
    """Train (or reuse) hello_world, compile, build, boot, run x = 0..6 on ``target``."""
    board = get_board(settings.targets_dir, target)
    progress("model: hello_world int8 from the zoo", 0.0)
    recipe = get_recipe("hello_world")
    model = recipe.load(settings.zoo_dir)
    progress("compile for " + board.name, 0.2)
    module = compile_model(model, board, work / "module", name="hello_world")
    progress("build in the builder container", 0.4)
    firmware = builder_plugin(builder)().build(work / "module", board, work / "firmware")
    progress("boot the device", 0.7)
    oracle = Tflm(model)
    out = module.outputs[0]
    assert out.scale is not None and out.zero_point is not None
    results = []
    with booted(board, work / "firmware") as (banner, infer):
        progress("infer x = 0..6", 0.85)
        for x in recipe.sample_inputs()[:, 0]:
            tensor = quantize_input(module, float(x))
            raw, instructions = infer(tensor)
            results.append(InferenceResult(
                x=float(x), expected=math.sin(float(x)), device_raw=raw,
                device_value=float(dequantize(raw, out.scale, out.zero_point)[0]),
                tflm_raw=oracle.invoke(tensor).ravel().tolist(), instructions=instructions,
            ))
    progress("done", 1.0)
    return LoopResult(module=module, firmware=firmware, banner=banner, results=results)


Infer = Callable[[np.ndarray], tuple[list[int], int | None]]


@contextmanager
def booted(board: Board, firmware: Path) -> Iterator[tuple[str, Infer]]:
    """Boot the OS image on its board: a device container, or the board's emulator.

    Yields the boot banner and ``infer(int8 tensor) -> (output, instructions or None)``.
    """
    if board.device is not None:
        with X86Device(board, firmware) as dev:
            yield dev.banner, lambda t: (dev.device.infer_raw(t.ravel().tolist())["output"], None)
    else:
        with McuDevice(board, firmware) as mcu:

            def infer(t: np.ndarray) -> tuple[list[int], int | None]:
                result = mcu.infer(t.astype(np.int8).tobytes())
                return result.values().tolist(), result.instructions

            yield mcu.banner.line, infer


def quantize_input(module: ModuleManifest, x: float) -> np.ndarray:
    t = module.inputs[0]
    assert t.scale is not None and t.zero_point is not None
    return quantize(np.array([[x]]), t.scale, t.zero_point, np.int8)

"""The whole loop on the x86 target: zoo -> compile -> build -> boot -> infer.

Used by ``tinymlaas demo`` and by the lifecycle dry-run; every step is the
real thing (TensorFlow, TFLM, the builder container, the device container).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymlaas.config import Settings
from tinymlaas.models import FirmwareManifest, ModuleManifest
from tinymlaas.plugins.base import Builder, Progress, no_progress
from tinymlaas.plugins.registry import get
from tinymlaas.services.compile import compile_model
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board
from tinymlaas.tflm import Tflm, quantize
from tinymlaas.zoo import get_recipe


@dataclass(frozen=True)
class InferenceResult:
    x: float
    expected: float
    device_raw: list[int]
    device_value: float
    tflm_raw: list[int]

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
    """Train (or reuse) hello_world, compile, build, boot, run x = 0..6."""
    board = get_board(settings.targets_dir, target)
    progress("model: hello_world int8 from the zoo", 0.0)
    recipe = get_recipe("hello_world")
    model = recipe.load(settings.zoo_dir)
    progress("compile for " + board.name, 0.2)
    module = compile_model(model, board, work / "module", name="hello_world")
    progress("build in the builder container", 0.4)
    firmware = get("builders", builder, Builder)().build(work / "module", board, work / "firmware")
    progress("boot the device container", 0.7)
    oracle = Tflm(model)
    results = []
    with X86Device(board, work / "firmware") as dev:
        progress("infer x = 0..6", 0.85)
        for x in recipe.sample_inputs()[:, 0]:
            tensor = quantize_input(module, float(x))
            reply = dev.device.infer_raw(tensor.ravel().tolist())
            tflm_raw = oracle.invoke(tensor).ravel().tolist()
            results.append(InferenceResult(
                x=float(x), expected=math.sin(float(x)), device_raw=reply["output"],
                device_value=reply["values"][0], tflm_raw=tflm_raw,
            ))
        banner = dev.banner
    progress("done", 1.0)
    return LoopResult(module=module, firmware=firmware, banner=banner, results=results)


def quantize_input(module: ModuleManifest, x: float) -> np.ndarray:
    t = module.inputs[0]
    assert t.scale is not None and t.zero_point is not None
    return quantize(np.array([[x]]), t.scale, t.zero_point, np.int8)

"""aot on Cortex-M0, M3 and M4: instructions per inference, model flash and RAM, next to
TFLM with reference kernels and with CMSIS-NN (shared/anchors/tflm-cmsis-nn-cortex-m4.md).

Per model (hello_world, the digits CNN, a MobileNet-style 96x96 depthwise-separable
model made here with seeded Keras) x CPU x -Os/-O2: the module compiled by ``aot``,
the firmware built by the Cortex-M builder (the board's own script, at the flags
asked), booted in QEMU; instructions per ``model_invoke`` come from the firmware's
SysTick counter under ``-icount`` (equal to a single-step trace, tests/mcu), every
output is checked against TFLM. Cortex-M0 code runs on the MPS2 AN385 memory map
(the micro:bit's 16 KB hold the digits CNN but not the 96x96 model), as the anchors
measured it: the same Thumb-1 code, valid M0 counts. "model flash" is the module's
code + model data (``.text``/``.rodata`` of the generated object), "arena" its RAM.
The README's results rows are generated from this benchmark's JSON
(``python -m tinymlaas.compilers.aot.docs README.md --bench var/bench.json``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import bar_plot, report

from tinymlaas.compilers.aot.hostrun import cross_compile
from tinymlaas.config import REPO_ROOT, Settings
from tinymlaas.edge.tflm import Tflm
from tinymlaas.models import Board, FirmwareManifest
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.targets import get_board
from tinymlaas.zoo import get_recipe

TITLE = "aot on Cortex-M: instructions, model flash and RAM vs TFLM (+CMSIS-NN)"
BUILDER = REPO_ROOT / "targets" / "_cortex-m" / "builder" / "build.py"
#: CPU -> (board the firmware runs on, the CPU it is compiled for)
CPUS = {"M0": ("mps2-an385", "cortex-m0"), "M3": ("mps2-an385", "cortex-m3"),
        "M4": ("mps2-an386", "cortex-m4")}
OPTS = ("Os", "O2")
#: The anchors' figures: (model, CPU, opt) -> TFLM-ref, TFLM+CMSIS-NN instructions,
#: CMSIS-NN's ML flash and RAM (library + .tflite; arena + interpreter).
ANCHORS: dict[tuple[str, str, str], tuple[int, int, int, int]] = {
    ("hello_world", "M4", "Os"): (6_408, 4_048, 24_147, 1_676),
    ("hello_world", "M4", "O2"): (5_090, 3_772, 32_977, 1_676),
    ("hello_world", "M3", "Os"): (6_420, 4_423, 21_995, 1_676),
    ("hello_world", "M3", "O2"): (5_092, 3_893, 26_549, 1_676),
    ("hello_world", "M0", "Os"): (10_276, 7_699, 22_499, 1_676),
    ("digits_cnn", "M4", "Os"): (74_630_000, 4_020_000, 157_599, 24_664),
    ("digits_cnn", "M4", "O2"): (15_490_000, 3_410_000, 179_449, 24_664),
    ("digits_cnn", "M3", "Os"): (74_630_000, 7_500_000, 147_305, 24_664),
    ("digits_cnn", "M3", "O2"): (15_470_000, 5_060_000, 164_981, 24_664),
    ("digits_cnn", "M0", "Os"): (98_270_000, 15_400_000, 150_959, 24_664),
}
#: Issue 16's targets: aot <= 0.8x TFLM+CMSIS-NN's instructions.
TARGET_RATIO = 0.8


def mobilenet_96(settings: Settings) -> bytes:
    """A MobileNet-style int8 model like TFLM's person detection: 96x96x1, a strided conv,
    depthwise-separable blocks, global average pool, 2 classes (seeded, untrained)."""
    path = settings.data_dir / "cache" / "bench" / "mobilenet96-v2.tflite"
    if path.exists():
        return path.read_bytes()
    from tinymlaas.zoo._convert import seed_everything, to_int8_tflite

    tf = seed_everything(0)
    L = tf.keras.layers
    inp = tf.keras.Input(shape=(96, 96, 1))
    he = {"kernel_initializer": "he_normal", "bias_initializer": "random_normal"}
    x = L.ReLU(6.0)(L.Conv2D(8, 3, strides=2, padding="same", **he)(inp))
    for filters, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)):
        x = L.ReLU(6.0)(L.DepthwiseConv2D(3, strides=stride, padding="same",
                                          depthwise_initializer="he_normal",
                                          bias_initializer="random_normal")(x))
        x = L.ReLU(6.0)(L.Conv2D(filters, 1, **he)(x))
    out = L.Softmax()(L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    rep = np.random.default_rng(0).uniform(-1, 1, (32, 96, 96, 1)).astype(np.float32)
    data = to_int8_tflite(tf.keras.Model(inp, out), rep)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _board(cpu: str) -> Board:
    name, core = CPUS[cpu]
    board = get_board(Settings().targets_dir, name)
    if core == board.cpu:
        return board
    return board.model_copy(update={"cpu": core, "arch": "armv6-m"})


def _build(module_dir: Path, board: Board, out: Path, opt: str) -> FirmwareManifest:
    """The board's builder script at ``-opt``, for the board's CPU (an M0 variant of an MPS2
    board is passed to it as a boards folder of its own)."""
    with tempfile.TemporaryDirectory() as boards:
        src = Settings().targets_dir / board.name / "board.toml"
        text = src.read_text()
        text = re.sub(r'^cpu = ".*"$', f'cpu = "{board.cpu}"', text, flags=re.M)
        text = re.sub(r'^arch = ".*"$', f'arch = "{board.arch}"', text, flags=re.M)
        (Path(boards) / board.name).mkdir()
        (Path(boards) / board.name / "board.toml").write_text(text)
        subprocess.run([sys.executable, str(BUILDER), str(module_dir / "model.tflite"),
                        "--out", str(out), "--board", board.name, "--boards-dir", boards,
                        "--opt", opt], check=True, capture_output=True)
    return FirmwareManifest.model_validate(json.loads((out / "manifest.json").read_text()))


def _model_flash(module_dir: Path, cpu: str, opt: str) -> int:
    obj = cross_compile(module_dir / "model.c", module_dir / f"model-{cpu}{opt}.o", cpu,
                        f"-{opt}", extra=(f"-I{module_dir}",))
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    return sum(int(n) for name, n in re.findall(r"^(\.\S+)\s+(\d+)", out, flags=re.M)
               if name.startswith((".text", ".rodata")))


def _inputs(model: bytes, n: int) -> list[np.ndarray]:
    it = Tflm(model)
    rng = np.random.default_rng(1)
    return [rng.integers(-128, 128, it.input["shape"]).astype(np.int8) for _ in range(n)]


def measure(settings: Settings, work: Path) -> list[dict[str, Any]]:
    models = {"hello_world": get_recipe("hello_world").load(settings.zoo_dir),
              "digits_cnn": get_recipe("digits_cnn").load(settings.zoo_dir),
              "mobilenet_96": mobilenet_96(settings)}
    rows = []
    for model_name, model in models.items():
        oracle = Tflm(model, arena_bytes=1 << 22)
        inputs = _inputs(model, 2)
        want = [oracle.invoke(x).tobytes() for x in inputs]
        for cpu in CPUS:
            board = _board(cpu)
            module_dir = work / model_name / cpu / "module"
            module = compile_model(model, board, module_dir, compiler="aot")
            (module_dir / "model.tflite").write_bytes(model)
            for opt in OPTS:
                fw_dir = work / model_name / cpu / opt
                _build(module_dir, board, fw_dir, opt)
                with McuDevice(board, fw_dir, emulator="qemu") as dev:
                    got = [dev.infer(x) for x in inputs]
                ref, cmsis, cmsis_flash, cmsis_ram = ANCHORS.get(
                    (model_name, cpu, opt), (0, 0, 0, 0))
                instructions = got[0].instructions
                rows.append({
                    "model": model_name, "cpu": cpu, "opt": opt,
                    "instructions": instructions,
                    "tflm_ref": ref or None, "tflm_cmsis_nn": cmsis or None,
                    "x_cmsis_nn": round(instructions / cmsis, 3) if cmsis else None,
                    "target_met": instructions <= TARGET_RATIO * cmsis if cmsis else None,
                    "model_flash": _model_flash(module_dir, CPUS[cpu][1], opt),
                    "cmsis_nn_flash": cmsis_flash or None,
                    "arena": module.memory.arena_bytes,
                    "cmsis_nn_ram": cmsis_ram or None,
                    "bit_exact": [g.output for g in got] == want,
                })
    return rows


def run(json_path: Path | None, plots: Path) -> None:
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-cortexm-") as tmp:
        rows = measure(settings, Path(tmp))
    report(TITLE, rows, json_path=json_path,
           extra={"target_ratio_vs_cmsis_nn": TARGET_RATIO,
                  "counting": "SysTick under QEMU -icount around one model_invoke "
                              "(equal to a -singlestep trace, tests/mcu)",
                  "anchors": "shared/anchors/tflm-cmsis-nn-cortex-m4.md (TFLM 90b983c)"})
    compared = [r for r in rows if r["tflm_cmsis_nn"]]
    bar_plot(plots / "aot_cortexm.png",
             "Instructions per inference: aot / TFLM + CMSIS-NN (target <= 0.8)",
             [f"{r['model']}\n{r['cpu']} -{r['opt']}" for r in compared],
             {"aot / CMSIS-NN": [r["x_cmsis_nn"] for r in compared],
              "target": [TARGET_RATIO] * len(compared)}, "ratio")

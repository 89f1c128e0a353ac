"""Emulated Cortex-M boards: footprint, instructions per inference, boot and loop times.

Per board x model (hello_world everywhere, digits_cnn where it fits), built by the
real path (aot compiler, the board's builder container, -Os) and booted in QEMU:
flash and RAM from arm-none-eabi-size, instructions per inference from the
firmware's SysTick counter (exact against a single-step trace, see
firmware/icount.h), boot-to-ready and boot-to-first-inference wall time, and the
whole warm scenario (compile + build + boot + 7 inferences). Every model is also
built at -O2 with the same builder script. TFLM's figures for hello_world on a
Cortex-M3 are the reference (shared/anchors/tflm-cortex-m3.md).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import bar_plot, report

from tinymlaas.builders.container import DockerBuilder
from tinymlaas.config import REPO_ROOT, Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.errors import DoesNotFit
from tinymlaas.images import ensure_all
from tinymlaas.models import Board, FirmwareManifest, ModuleManifest
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.targets import load_boards
from tinymlaas.zoo import get_recipe

#: TFLM hello_world int8 on mps2-an385 (anchors file): -Os / -O2 release.
TFLM = {
    "Os": {"instructions": 7677, "firmware_flash": 22548, "comparable_flash": 16679, "ram": 1348},
    "O2": {"instructions": 5301, "firmware_flash": 26400, "comparable_flash": 20585, "ram": 1348},
}
TARGET_SHARE = 0.40
BUILDER = REPO_ROOT / "targets" / "_cortex-m" / "builder" / "build.py"


def _inputs(module: ModuleManifest, samples: np.ndarray) -> list[np.ndarray]:
    t = module.inputs[0]
    assert t.scale is not None and t.zero_point is not None
    return [quantize(np.asarray(x, dtype=np.float64).reshape(t.shape), t.scale, t.zero_point,
                     np.int8) for x in samples]


def _build_o2(module_dir: Path, board: Board, out: Path, settings: Settings) -> FirmwareManifest:
    """The same builder script at -O2 (the container runs it at its default, -Os)."""
    import json

    subprocess.run([sys.executable, str(BUILDER), str(module_dir / "model.tflite"), "--out",
                    str(out), "--board", board.name, "--boards-dir", str(settings.targets_dir),
                    "--opt", "O2"], check=True, capture_output=True)
    return FirmwareManifest.model_validate(json.loads((out / "manifest.json").read_text()))


def _measure(board: Board, model_name: str, model: bytes, module: ModuleManifest,
             fw_dir: Path, fw: FirmwareManifest, samples: np.ndarray, opt: str,
             build_s: float) -> dict[str, Any]:
    oracle = Tflm(model)
    inputs = _inputs(module, samples)
    start = time.monotonic()
    with McuDevice(board, fw_dir, emulator="qemu") as dev:
        counts, exact = [], True
        first = None
        for x in inputs:
            r = dev.infer(x)
            first = first or time.monotonic() - start
            counts.append(r.instructions)
            exact &= r.output == oracle.invoke(x).ravel().tobytes()
        boot = dev.boot_seconds
    stack = board.firmware.stack_bytes
    return {
        "board": board.name, "cpu": board.cpu, "model": model_name, "opt": opt,
        "flash": fw.sizes["flash"], "ram": fw.sizes["ram"],
        "ram_no_stack": fw.sizes["ram"] - stack, "arena": module.memory.arena_bytes,
        "instructions": counts[0], "instructions_min": min(counts),
        "instructions_max": max(counts), "bit_exact": exact,
        "boot_to_ready_s": round(boot, 4), "boot_to_first_inference_s": round(first or 0, 4),
        "infer_wall_s": round((time.monotonic() - start - boot) / len(inputs), 4),
        "build_s": round(build_s, 2),
    }


def run(json_path: Path | None, plots: Path) -> None:
    settings = Settings()
    ensure_all(settings)
    boards = [b for b in load_boards(settings.targets_dir).values()
              if b.module_kind == "c-source" and "qemu_machine" in b.emulator]
    rows: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    scenario: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mcu-") as tmp:
        for board in boards:
            for model_name, n in (("hello_world", 7), ("digits_cnn", 3)):
                recipe = get_recipe(model_name)
                model = recipe.load(settings.zoo_dir)
                work = Path(tmp) / f"{model_name}-{board.name}"
                t0 = time.monotonic()
                try:
                    module = compile_model(model, board, work / "module", compiler="aot",
                                           name="model")
                except DoesNotFit as exc:
                    refused.append({"board": board.name, "model": model_name,
                                    "region": exc.details.get("region"),
                                    "missing_bytes": exc.details.get("missing_bytes")})
                    continue
                (work / "module" / "model.tflite").write_bytes(model)
                fw = DockerBuilder().build(work / "module", board, work / "fw")
                build_s = time.monotonic() - t0
                row = _measure(board, model_name, model, module, work / "fw", fw,
                               recipe.sample_inputs()[:n], "Os", build_s)
                if model_name == "hello_world":
                    scenario[board.name] = round(time.monotonic() - t0, 2)
                    row["scenario_s"] = scenario[board.name]
                rows.append(row)
                fw2 = _build_o2(work / "module", board, work / "fw-o2", settings)
                rows.append(_measure(board, model_name, model, module, work / "fw-o2", fw2,
                                     recipe.sample_inputs()[:n], "O2", 0.0))
    for r in rows:
        if r["model"] == "hello_world":
            ref = TFLM[r["opt"]]
            r["tflm_instructions"] = ref["instructions"]
            r["share_of_tflm"] = round(r["instructions"] / ref["instructions"], 3)
            r["target_met"] = r["share_of_tflm"] <= TARGET_SHARE
            r["tflm_flash"] = ref["firmware_flash"]
            r["tflm_ram"] = ref["ram"]
    table = [{
        "board": r["board"], "model": r["model"], "opt": r["opt"], "flash": r["flash"],
        "ram": r["ram"], "ram_no_stack": r["ram_no_stack"], "arena": r["arena"],
        "instructions": r["instructions"],
        "range": f"{r['instructions_min']:,}-{r['instructions_max']:,}",
        "x_tflm": r.get("share_of_tflm", ""), "<=0.40": r.get("target_met", ""),
        "boot_ms": round(r["boot_to_ready_s"] * 1000, 1),
        "first_infer_ms": round(r["boot_to_first_inference_s"] * 1000, 1),
        "scenario_s": r.get("scenario_s", ""), "exact": r["bit_exact"],
    } for r in rows]
    report("MCU: footprint, instructions per inference, boot (QEMU)", table, json_path=json_path,
           extra={"measurements": rows, "tflm_reference": TFLM, "target_share_of_tflm": TARGET_SHARE,
                  "refused": refused, "scenario_s": scenario,
                  "counting": "SysTick on the CPU clock under -icount, calibrated at boot; "
                              "equals a -singlestep exec trace exactly (tests/mcu)"})
    if refused:
        report("MCU: refused (does not fit)", refused, json_path=json_path)
    hw = [r for r in rows if r["model"] == "hello_world"]
    names = sorted({r["board"] for r in hw}, key=[r["board"] for r in hw].index)

    def series(opt: str) -> list[float]:
        return [next(r["instructions"] for r in hw if r["board"] == b and r["opt"] == opt)
                for b in names]

    bar_plot(plots / "mcu_instructions.png", "hello_world int8: instructions per inference",
             names, {"aot -Os": series("Os"), "aot -O2": series("O2"),
                     "TFLM -Os (M3)": [TFLM["Os"]["instructions"]] * len(names),
                     "TFLM -O2 (M3)": [TFLM["O2"]["instructions"]] * len(names)},
             "instructions")
    boot = [statistics.mean(r["boot_to_ready_s"] for r in hw if r["board"] == b) * 1000
            for b in names]
    bar_plot(plots / "mcu_boot.png", "QEMU: start to ready banner", names,
             {"boot to ready (ms)": boot}, "ms")

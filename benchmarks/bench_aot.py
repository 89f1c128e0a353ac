"""aot compiler: planned memory against TFLM's, and the Cortex-M3 footprint of the module.

Per model: the planned arena next to TFLM's own allocation report and the
smallest arena TFLM runs in (tinymlaas.edge.tflm.probe), and, for the generated C
built for Cortex-M3 at -Os with arm-none-eabi-gcc, code (.text), model data
(.rodata), RAM (.bss/.data: the arena) and the stack peak (-fstack-usage:
model_invoke's frame plus its deepest call chain). TFLM's figures for the same
hello_world model on Cortex-M3 -Os (shared/anchors/tflm-cmsis-nn-cortex-m4.md, reference
kernels) are the bar: 17,503 B of flash (library + model) and 1,588 B of RAM (arena +
interpreter); the targets are ≤ 1,668 B and ≤ 135 B.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from _common import bar_plot, report

from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import cross_compile
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import probe
from tinymlaas.zoo import get_recipe

MODELS = ("hello_world", "digits_cnn")
TFLM_M3_HELLO = {"flash": 17_503, "ram": 1_588}
TARGET_HELLO = {"flash": 1_668, "ram": 135}


def _sizes(obj: Path) -> dict[str, int]:
    """Bytes per kind of section from ``arm-none-eabi-size -A``."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    sizes = {"text": 0, "rodata": 0, "ram": 0}
    for name, size in re.findall(r"^(\.\S+)\s+(\d+)", out, flags=re.M):
        if name.startswith(".text"):
            sizes["text"] += int(size)
        elif name.startswith(".rodata"):
            sizes["rodata"] += int(size)
        elif name.startswith((".bss", ".data")):
            sizes["ram"] += int(size)
    return sizes


def _stack_peak(su: Path, name: str) -> int:
    """model_invoke's frame + the deepest kernel frame + the deepest helper frame.

    The generated code calls at most two levels below invoke (kernel, then a
    fixed-point helper), so this is an upper bound of the real peak.
    """
    frames = {m.group(1): int(m.group(2))
              for m in re.finditer(r":([\w.]+)\s+(\d+)\s+\w+", su.read_text())}
    invoke = frames.pop(f"{name}_invoke", 0)
    rest = sorted(frames.values(), reverse=True)
    return invoke + sum(rest[:2])


def _m3(source: str, header: str, opt: str) -> tuple[dict[str, int], int]:
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "model.c"
        c.write_text(source)
        (Path(tmp) / "model.h").write_text(header)
        obj = cross_compile(c, Path(tmp) / "model.o", "cortex-m3", opt,
                            extra=("-fstack-usage", f"-I{tmp}"))
        return _sizes(obj), _stack_peak(Path(tmp) / "model.su", "model")


def run(json_path: Path | None, plots: Path) -> None:
    settings = Settings()
    rows = []
    for name in MODELS:
        model = get_recipe(name).load(settings.zoo_dir)
        out = compile_source(model)
        tflm = probe(model)
        m3, stack = _m3(out.source.c, out.source.h, "-Os")
        m3_o2, _ = _m3(out.source.c, out.source.h, "-O2")
        rows.append({
            "model": name,
            "aot arena B": out.placement.arena_bytes,
            "TFLM arena reported B": tflm.arena_reported,
            "TFLM arena min B": tflm.arena_min,
            "arena vs TFLM min": round(out.placement.arena_bytes / tflm.arena_min, 3),
            "M3 -Os code B": m3["text"],
            "M3 -Os data B": m3["rodata"],
            "M3 flash B": m3["text"] + m3["rodata"],
            "M3 RAM B": m3["ram"],
            "M3 stack peak B": stack,
            "M3 -O2 flash B": m3_o2["text"] + m3_o2["rodata"],
        })
    hello = rows[0]
    extra = {
        "hello_world_targets": {
            "flash_B": hello["M3 flash B"], "flash_target_B": TARGET_HELLO["flash"],
            "flash_ok": hello["M3 flash B"] <= TARGET_HELLO["flash"],
            "ram_B": hello["M3 RAM B"], "ram_target_B": TARGET_HELLO["ram"],
            "ram_ok": hello["M3 RAM B"] <= TARGET_HELLO["ram"],
            "tflm_m3_flash_B": TFLM_M3_HELLO["flash"], "tflm_m3_ram_B": TFLM_M3_HELLO["ram"],
        },
        "digits_arena_ratio_target": 0.5,
    }
    report("aot: planned memory vs TFLM, Cortex-M3 footprint", rows, json_path=json_path,
           extra=extra)
    bar_plot(plots / "aot_arena.png", "Arena bytes: aot plan vs TFLM (x86 probe)",
             [r["model"] for r in rows],
             {"aot planned": [r["aot arena B"] for r in rows],
              "TFLM reported": [r["TFLM arena reported B"] for r in rows],
              "TFLM smallest that runs": [r["TFLM arena min B"] for r in rows]}, "bytes")
    bar_plot(plots / "aot_hello_m3.png", "hello_world on Cortex-M3 (-Os): aot vs TFLM",
             ["flash", "RAM"],
             {"aot module": [hello["M3 flash B"], hello["M3 RAM B"]],
              "target": [TARGET_HELLO["flash"], TARGET_HELLO["ram"]],
              "TFLM (anchors)": [TFLM_M3_HELLO["flash"], TFLM_M3_HELLO["ram"]]}, "bytes")

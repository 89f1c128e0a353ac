#!/usr/bin/env python3
"""Cortex-M builder: model (+ AOT inference module) -> firmware.elf/.bin for one board.

Partner contract: ``build.py /in/model.tflite --out /out --board NAME --version V
[--boards-dir DIR]``. When the model's folder holds a ``c-source`` inference
module (``manifest.json`` + C files from ``tinymlaas compile``) it is used; a
bare model is compiled here with the ``aot`` compiler. Everything board-specific
comes from the board's data: the linker script is generated from its memory
regions, the UART driver is chosen by ``board_support.uart.kind``.

Errors that belong to the caller (the model does not fit) are printed as one
``@error {json}`` line so the service can raise the same error class.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinymlaas.edge.tensors import TFLITE_TYPES, laid_out, packed_bytes
from tinymlaas.edge.uart import frame_buffer_bytes
from tinymlaas.errors import BuildFailed, DoesNotFit, InvalidInput, TinyMLaaSError
from tinymlaas.models import Board, FirmwareManifest, ModuleManifest, TensorSpec
from tinymlaas.services.compile import MANIFEST, compile_model, read_module
from tinymlaas.targets import load_board_from

HERE = Path(__file__).resolve().parent
FIRMWARE_SRC = HERE / "firmware"
ELF, BIN, MAP = "firmware.elf", "firmware.bin", "firmware.map"
MODULE_KIND = "c-source"
MODEL_SECTION = ".tinymlaas_model"


class Uart(BaseModel):
    """``[board_support.uart]``: which driver, where, and its interrupt."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pl011", "cmsdk", "stm32", "stm32f7", "nrf51", "nrf52_uarte", "sercom"]
    base: int
    irq: int = Field(ge=0, le=239)
    irq_count: int = Field(1, ge=1, le=8, description="consecutive interrupt lines of the UART")
    divisor: int = Field(16, ge=1, description="baud-rate divisor register value")
    clock_reg: int | None = Field(None, description="clock enable register of the UART")
    clock_bit: int | None = None
    gclk_id: int | None = Field(None, description="generic clock channel (SAM SERCOM core)")
    tx_pin: int | None = None
    rx_pin: int | None = None


class BoardSupport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uart: Uart
    #: The FPU to build for (gcc's -mfpu, with the hard-float ABI); none: soft float.
    fpu: Literal["fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16"] | None = None


@dataclass(frozen=True)
class Options:
    opt: str = "Os"
    model_update: bool = False


@dataclass(frozen=True)
class Plan:
    """What the firmware will need, known before anything is compiled."""

    flash: int
    ram: int
    parts: dict[str, int]


def progress(step: str, fraction: float) -> None:
    print(f"@progress {fraction:.2f} {step}", flush=True)


def board_support(board: Board) -> BoardSupport:
    """The board's UART, checked; and its declared firmware needs, which the fit check and
    the linker script (the stack) cannot do without."""
    fw = board.firmware
    if fw.flash_bytes == 0 or fw.stack_bytes < 256 or not fw.uart_frames:
        raise InvalidInput(f"board '{board.name}' must declare [firmware] flash_bytes, "
                           "static_ram_bytes, stack_bytes (>= 256) and uart_frames = true")
    try:
        return BoardSupport.model_validate(board.board_support)
    except ValidationError as exc:
        raise InvalidInput(f"board '{board.name}' has invalid board_support: {exc}") from exc


def region(board: Board, kind: str) -> tuple[int, int]:
    """(origin, length) of the board's first region of a kind; the totals are authoritative."""
    found = [r for r in board.regions if r.kind == kind]
    if not found:
        raise InvalidInput(f"board '{board.name}' declares no {kind} region")
    total = board.flash_bytes if kind == "flash" else board.ram_bytes
    if found[0].length != total:
        raise InvalidInput(f"board '{board.name}': {kind} region is {found[0].length} B "
                           f"but {kind}_bytes says {total} B")
    return found[0].origin, found[0].length


def frame_buffers(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> int:
    """RX and TX frame buffers, sized as app.c sizes them."""
    return frame_buffer_bytes(packed_bytes([t.model_dump() for t in inputs]),
                              packed_bytes([t.model_dump() for t in outputs]))


def plan(module: ModuleManifest, board: Board, options: Options) -> Plan:
    """Planned flash and RAM from the module's manifest plus the board's declared firmware
    needs (the aot compiler's fit check adds the same)."""
    board_support(board)
    fw = board.firmware
    # data_bytes (the model-data section) is newer than weights_bytes; either sizes it.
    data = getattr(module.memory, "data_bytes", None) or module.memory.weights_bytes
    code = module.memory.code_bytes or 0
    ram_parts = {
        "arena": module.memory.arena_bytes,
        "stack": fw.stack_bytes,
        "frame buffers": frame_buffers(module.inputs, module.outputs),
        "firmware statics": fw.static_ram_bytes,
    }
    if options.model_update:
        ram_parts["model data (updatable)"] = data
    flash_parts = {"model data": data, "model code": code, "firmware": fw.flash_bytes}
    return Plan(flash=sum(flash_parts.values()), ram=sum(ram_parts.values()),
                parts={**{f"flash {k}": v for k, v in flash_parts.items()},
                       **{f"ram {k}": v for k, v in ram_parts.items()}})


def check_fit(module: ModuleManifest, board: Board, options: Options) -> Plan:
    """Refuse before linking what cannot fit, naming the region and the bytes missing."""
    p = plan(module, board, options)
    for name, need, have, prefix in (("RAM", p.ram, board.ram_bytes, "ram "),
                                     ("flash", p.flash, board.flash_bytes, "flash ")):
        if need > have:
            detail = ", ".join(f"{k.removeprefix(prefix)} {v}" for k, v in p.parts.items()
                               if k.startswith(prefix) and v)
            raise DoesNotFit(
                f"model '{module.name}' does not fit {name} on board '{board.name}': needs "
                f"{need} B ({detail}) of {have} B, {need - have} B missing",
                region=name.lower(), missing_bytes=need - have, needed_bytes=need,
                board_bytes=have)
    return p


def linker_script(board: Board, options: Options) -> str:
    """The board's memory map as a GNU ld script: real sizes, stack reserved in RAM."""
    board_support(board)
    flash_origin, flash_len = region(board, "flash")
    ram_origin, ram_len = region(board, "ram")
    others = [r for r in board.regions if r.kind not in ("flash", "ram")]
    memory = [f"  FLASH (rx) : ORIGIN = 0x{flash_origin:08x}, LENGTH = {flash_len}",
              f"  RAM (rwx) : ORIGIN = 0x{ram_origin:08x}, LENGTH = {ram_len}"]
    memory += [f"  {r.name.upper()} (rw) : ORIGIN = 0x{r.origin:08x}, LENGTH = {r.length}"
               for r in others]
    model_place = "> RAM AT > FLASH" if options.model_update else "> FLASH"
    return f"""/* Generated from targets/{board.name}/board.toml: {board.description}. */
MEMORY
{{
{chr(10).join(memory)}
}}

ENTRY(Reset_Handler)
_estack = ORIGIN(RAM) + LENGTH(RAM);
STACK_BYTES = {board.firmware.stack_bytes};

SECTIONS
{{
  .isr_vector : {{ KEEP(*(.isr_vector)) }} > FLASH
  .text : {{ *(.text*) *(.rodata*) . = ALIGN(4); }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  {MODEL_SECTION} : ALIGN(4) {{
    _smodel = .;
    *({MODEL_SECTION}*)
    . = ALIGN(4);
    _emodel = .;
  }} {model_place}
  _smodel_load = LOADADDR({MODEL_SECTION});
  .data : ALIGN(4) {{
    _sdata = .;
    *(.data*)
    . = ALIGN(4);
    _edata = .;
  }} > RAM AT > FLASH
  _sidata = LOADADDR(.data);
  .bss (NOLOAD) : ALIGN(4) {{
    _sbss = .;
    *(.bss*) *(COMMON)
    . = ALIGN(4);
    _ebss = .;
  }} > RAM
  .stack (NOLOAD) : ALIGN(8) {{ . = . + STACK_BYTES; }} > RAM
}}
"""


def tensor_table(module: ModuleManifest) -> list[str]:
    """The firmware's table of the module's tensors (every input, then every output): dtype,
    shape and place in the packed INFER payloads, which the TENSOR command reports."""
    codes = {name: code for code, name in TFLITE_TYPES.items()}
    specs = [t.model_dump() for t in (*module.inputs, *module.outputs)]
    for spec in specs:
        if spec["dtype"] not in codes:
            raise InvalidInput(f"tensor {spec['name']!r} has dtype {spec['dtype']}, which the "
                               f"firmware's protocol does not carry")
    ins, outs = laid_out(specs[: len(module.inputs)]), laid_out(specs[len(module.inputs):])
    rank = max([1, *(len(s["shape"]) for s in specs)])
    rows = ", ".join(
        f"{{{codes[s['dtype']]}u, {len(s['shape'])}u, {s['bytes']}u, {s['offset']}u, "
        f"{{{', '.join(str(int(d)) for d in s['shape']) or '0'}}}}}" for s in (*ins, *outs))
    return [f"#define MODEL_TENSOR_INPUTS {len(ins)}",
            f"#define MODEL_TENSOR_MAX_RANK {rank}",
            f"#define MODEL_TENSOR_INPUT_BYTES {packed_bytes(ins)}",
            f"#define MODEL_TENSOR_OUTPUT_BYTES {packed_bytes(outs)}",
            f"#define MODEL_TENSOR_TABLE {rows}"]


def api_header(module: ModuleManifest) -> str:
    """``model_api.h``: the firmware's MODEL_* names for a module of any name, and its tensors."""
    p, big = module.name, module.name.upper()
    lines = [f'#include "{p}.h"']
    if p != "model":
        for macro in ("SHA256", "INPUT_BYTES", "OUTPUT_BYTES", "INPUT_SCALE", "INPUT_ZERO_POINT",
                      "OUTPUT_SCALE", "OUTPUT_ZERO_POINT", "ARENA_BYTES"):
            lines.append(f"#define MODEL_{macro} {big}_{macro}")
        for fn in ("invoke", "input_scale", "input_zero_point", "output_scale", "output_zero_point",
                   "tensor_scale", "tensor_zero_point", "model_sha256"):
            lines.append(f"#define model_{fn} {p}_{fn}")
    lines += tensor_table(module)
    return "/* Generated by the Cortex-M builder. */\n" + "\n".join(lines) + "\n"


def uart_defines(board: Board) -> list[str]:
    u = board_support(board).uart
    defs = [f"UART_BASE=0x{u.base:08x}u", f"UART_IRQ={u.irq}", f"UART_IRQ_COUNT={u.irq_count}",
            f"UART_DIVISOR={u.divisor}u"]
    if u.clock_reg is not None:
        defs += [f"UART_CLOCK_REG=0x{u.clock_reg:08x}u", f"UART_CLOCK_BIT=(1u<<{u.clock_bit})"]
    if u.gclk_id is not None:
        defs.append(f"UART_GCLK_ID={u.gclk_id}u")
    if u.tx_pin is not None:
        defs += [f"UART_TX_PIN={u.tx_pin}u", f"UART_RX_PIN={u.rx_pin}u"]
    return defs


def float_flags(support: BoardSupport) -> list[str]:
    """Hard float on the FPU the board declares (startup.c enables it), else soft float."""
    if support.fpu is None:
        return ["-mfloat-abi=soft"]
    return [f"-mfpu={support.fpu}", "-mfloat-abi=hard"]


_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")


def link_error(board: Board, module: ModuleManifest, log: str) -> TinyMLaaSError:
    """Turn a linker region overflow into the fit check's error; anything else is a failure."""
    m = _OVERFLOW.search(log)
    if m:
        name, missing = m.group(1), int(m.group(2))
        have = board.flash_bytes if name == "FLASH" else board.ram_bytes
        return DoesNotFit(
            f"model '{module.name}' does not fit {name if name == 'RAM' else name.lower()} on "
            f"board '{board.name}': the linker needs {missing} B more than its {have} B",
            region=name.lower(), missing_bytes=missing, board_bytes=have)
    tail = " | ".join(ln for ln in log.strip().splitlines()[-4:])
    return BuildFailed(f"compiling the firmware for '{board.name}' failed: {tail}")


def compile_and_link(module_dir: Path, module: ModuleManifest, board: Board, work: Path,
                     version: str, options: Options) -> Path:
    support = board_support(board)
    (work / "model_api.h").write_text(api_header(module))
    (work / "link.ld").write_text(linker_script(board, options))
    section = f'__attribute__((section("{MODEL_SECTION}")))'
    defines = [
        f'BOARD_NAME="{board.name}"', f'FW_VERSION="{version}"',
        f"{module.name.upper()}_SECTION={section}",
        f"TINYMLAAS_MODEL_UPDATE={int(options.model_update)}",
        *uart_defines(board),
    ]
    sources = [FIRMWARE_SRC / n for n in ("startup.c", "app.c", "proto.c", "icount.c",
                                           f"uart_{support.uart.kind}.c")]
    sources.append(module_dir / module.model_file)
    elf = work / ELF
    cmd = [
        "arm-none-eabi-gcc", f"-mcpu={board.cpu}", "-mthumb", *float_flags(support),
        f"-{options.opt}",
        "-std=c99", "-ffreestanding", "-ffunction-sections", "-fdata-sections", "-Wall",
        f"-I{work}", f"-I{module_dir}", f"-I{FIRMWARE_SRC}",
        *[f"-D{d}" for d in defines], *map(str, sources),
        "-nostartfiles", "--specs=nano.specs", f"-T{work / 'link.ld'}", "-Wl,--gc-sections",
        f"-Wl,-Map={work / MAP}", "-lm", "-lgcc", "-o", str(elf),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise link_error(board, module, proc.stderr + proc.stdout)
    return elf


@dataclass(frozen=True)
class Sizes:
    text: int
    data: int
    bss: int
    flash: int
    ram: int
    model_region: int


def measure(elf: Path, board: Board) -> Sizes:
    """Berkeley sizes from arm-none-eabi-size; flash/RAM per region from the section table."""
    berkeley = subprocess.run(["arm-none-eabi-size", "-B", str(elf)], capture_output=True,
                              text=True, check=True).stdout.splitlines()[1].split()
    text, data, bss = (int(v) for v in berkeley[:3])
    flash_origin, flash_len = region(board, "flash")
    ram_origin, ram_len = region(board, "ram")
    flash = ram = model = 0
    for name, size, vma, lma, flags in _sections(elf):
        if "ALLOC" not in flags:
            continue
        if "LOAD" in flags and flash_origin <= lma < flash_origin + flash_len:
            flash += size
        if ram_origin <= vma < ram_origin + ram_len:
            ram += size
        if name == MODEL_SECTION:
            model = size
    return Sizes(text, data, bss, flash, ram, model)


def _sections(elf: Path) -> list[tuple[str, int, int, int, str]]:
    out = subprocess.run(["arm-none-eabi-objdump", "-h", str(elf)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    rows = []
    for i, line in enumerate(out):
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit():
            flags = out[i + 1].strip() if i + 1 < len(out) else ""
            rows.append((parts[1], int(parts[2], 16), int(parts[3], 16), int(parts[4], 16), flags))
    return rows


def module_for(model_path: Path, board: Board, work: Path) -> tuple[Path, ModuleManifest]:
    """The inference module in the model's folder, or one compiled here with ``aot``.

    A module folder need not hold the .tflite (the C files are the model); what it
    holds must match the hashes its manifest lists.
    """
    folder = model_path.parent
    if (folder / MANIFEST).is_file():
        module = read_module(folder)
        if model_path.is_file() and module.model_sha256 != _sha256(model_path):
            raise InvalidInput(f"{model_path.name} does not match its inference module's hash")
        for name, digest in module.files.items():
            if not (folder / name).is_file() or _sha256(folder / name) != digest:
                raise InvalidInput(f"inference module file {name} is missing or altered")
        return folder, module
    model = model_path.read_bytes()
    # The compiler's fit check reserves the board's declared firmware needs by default.
    module = compile_model(model, board, work / "module", compiler="aot", name="model",
                           progress=lambda s, f: progress(f"aot: {s}", 0.05 + 0.25 * f))
    return work / "module", module


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(model_path: Path, board: Board, out: Path, version: str, options: Options) -> None:
    with tempfile.TemporaryDirectory(prefix="cortex-m-") as tmp:
        work = Path(tmp)
        progress("reading the inference module", 0.05)
        module_dir, module = module_for(model_path, board, work)
        if module.kind != MODULE_KIND:
            raise InvalidInput(f"board '{board.name}' builds '{MODULE_KIND}' modules, "
                               f"not '{module.kind}'")
        progress("fit check from the planned sizes", 0.35)
        planned = check_fit(module, board, options)
        progress(f"compiling and linking for {board.cpu} ({board_support(board).uart.kind} UART)",
                 0.45)
        elf = compile_and_link(module_dir, module, board, work, version, options)
        progress("measuring sizes", 0.85)
        sizes = measure(elf, board)
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(work / BIN)],
                       check=True)
        out.mkdir(parents=True, exist_ok=True)
        for name in (ELF, BIN, MAP, "link.ld"):
            shutil.copy2(work / name, out / name)
    hashes = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in (ELF, BIN)}
    manifest = FirmwareManifest(
        board=board.name,
        version=version,
        model_sha256=module.model_sha256,
        image=ELF,
        image_sha256=hashes[ELF],
        files=hashes,
        sizes={"flash": sizes.flash, "ram": sizes.ram, "text": sizes.text, "data": sizes.data,
               "bss": sizes.bss, "model_region": sizes.model_region},
        headroom={"flash": board.flash_bytes - sizes.flash, "ram": board.ram_bytes - sizes.ram},
        planned={"flash": planned.flash, "ram": planned.ram},
        options={"opt": options.opt, "model_update": options.model_update},
        module=module.model_dump(),
    )
    (out / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    progress("built", 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=Path("/out"))
    ap.add_argument("--board", required=True)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--boards-dir", type=Path, default=HERE / "boards")
    ap.add_argument("--opt", default="Os", choices=["Os", "O2", "O3", "O1"],
                    help="gcc optimisation level")
    ap.add_argument("--model-update", action="store_true",
                    help="keep the model data in RAM where MODEL_WRITE can replace it")
    args = ap.parse_args()
    try:
        board = load_board_from(args.boards_dir, args.board)
        build(args.model, board, args.out, args.version, Options(args.opt, args.model_update))
    except TinyMLaaSError as exc:
        print("@error " + json.dumps({"code": exc.code, "message": exc.message,
                                      "details": exc.details}), flush=True)
        return 2
    except OSError as exc:
        print(f"@error {json.dumps({'code': 'build_failed', 'message': str(exc)})}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

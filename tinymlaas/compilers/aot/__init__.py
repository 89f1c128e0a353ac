"""The ``aot`` compiler: an int8 .tflite becomes dependency-free C, bit-exact with TFLM.

Pipeline: read the flatbuffer into a small graph IR (:mod:`.graph`), fold
what is known at compile time, lower every op to a kernel call with its
model data (:mod:`.kernels`), plan all activations into one static arena
(:mod:`.planner`) and write ``NAME.c`` / ``NAME.h`` (:mod:`.emit`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas import __version__
from tinymlaas.compilers.aot import graph as graph_mod
from tinymlaas.compilers.aot.coverage import CoverageRow, coverage
from tinymlaas.compilers.aot.emit import Identity, Placement, Source, emit
from tinymlaas.compilers.aot.lower import (
    CTYPES,
    ELSEWHERE,
    Lowered,
    Step,
    lower,
    supported_dtypes,
    supported_ops,
)
from tinymlaas.compilers.aot.planner import Buffer, plan
from tinymlaas.edge.tensors import packed_bytes
from tinymlaas.errors import DoesNotFit, InvalidInput, UnsupportedModel
from tinymlaas.models import (
    Board,
    CompilerInfo,
    ModelInfo,
    ModuleManifest,
    ModuleMemory,
)
from tinymlaas.plugins.base import Compiler, Progress, no_progress
from tinymlaas.targets import firmware_ram_bytes

__all__ = ["MODEL_DATA", "SCRATCH_BYTES", "AotCompiler", "AotOptions", "Compiled", "CoverageRow",
           "compile_source", "coverage"]

#: The module file holding the model-data section's bytes (what a model-only update packs).
MODEL_DATA = "model_data.bin"

#: Scratch one layer may take for a column buffer by default (see AotOptions.scratch_bytes).
SCRATCH_BYTES = 4096

_C_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")


class AotOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_place: bool = Field(
        True, description="let an output overwrite input bytes no longer needed (smaller arena)")
    reserve_ram_bytes: int | None = Field(
        None, ge=0, le=1 << 24,
        description="RAM the firmware needs besides the arena (fit check); default: the "
                    "board's declared [firmware] needs for this model's tensors")
    scratch_bytes: int | None = Field(
        None, ge=0, le=1 << 20,
        description="most scratch one layer may take for speed (its column buffer); default "
                    f"{SCRATCH_BYTES} B, none when the board's RAM would not hold the arena then")
    reserve_flash_bytes: int | None = Field(
        None, ge=0, le=1 << 26,
        description="flash the firmware needs besides the model data (fit check); default: "
                    "the board's declared [firmware] flash")


def model_identity(g: graph_mod.Graph, low: Lowered, sha256: str) -> Identity:
    """Put what identifies the model (hash, every I/O tensor's quantization) into its model data.

    The header's macros are fixed when the firmware is compiled; these values move
    with a model-only update, so a device reports what it really runs.
    """
    io = [g.t(r) for r in (*g.inputs, *g.outputs)]  # every input, then every output
    return Identity(
        scales=low.data.add("io_scale", "float", [t.scale if t.quantized else 0.0 for t in io]),
        zero_points=low.data.add("io_zp", "int32_t", [t.zp for t in io]),
        sha256=low.data.add("model_sha", "uint8_t", list(bytes.fromhex(sha256))),
    )


@dataclass
class Compiled:
    """Everything the compiler produced, before anything is written."""

    source: Source
    lowered: Lowered
    placement: Placement
    weights_bytes: int


def _place(g: graph_mod.Graph, steps: list[Step], in_place: bool) -> Placement:
    input_roots = [g.root(i) for i in g.inputs]
    output_roots = [g.root(o) for o in g.outputs]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.reads:
            last[g.root(t)] = i
        for t in s.writes:
            r = g.root(t)
            assert r not in first, f"tensor {g.t(r).name} written twice"
            first[r] = i
            last.setdefault(r, i)
    state = state_roots(g, steps)
    for r in last:
        if r not in first and r not in input_roots and r not in state and not g.t(r).is_const:
            raise UnsupportedModel(f"{g.t(r).describe()} is read but never computed")
    io = set(input_roots) | set(output_roots)
    arena = [r for r in first if r not in io]
    buffers = [Buffer(r, g.t(r).nbytes, 8 if g.t(r).itemsize == 8 else 4, first[r],
                      max(last[r], first[r])) for r in arena]
    # State lives for the whole program: from before the first step to after the last.
    buffers += [Buffer(r, g.t(r).nbytes, 4, -1, len(steps)) for r in state]
    relax: dict[tuple[int, int], int] = {}
    if in_place:
        for i, s in enumerate(steps):
            for (o, x), d in s.overlap.items():
                ro, rx = g.root(o), g.root(x)
                if ro in arena and rx in arena and last.get(rx) == i and first.get(ro) == i:
                    relax[(ro, rx)] = d
    p = plan(buffers, relax)
    return Placement(arena_bytes=p.arena_bytes, offsets=p.offsets, input_roots=input_roots,
                     output_roots=output_roots)


def state_roots(g: graph_mod.Graph, steps: list[Step]) -> list[int]:
    """Variable tensors the steps use: kept in the arena between invokes."""
    roots: list[int] = []
    for s in steps:
        for t in s.reads:
            r = g.root(t)
            if g.t(r).is_variable and r not in roots:
                roots.append(r)
    return roots


def _check_io(g: graph_mod.Graph) -> None:
    """Every model input and output is its own run-time tensor of a dtype the API carries."""
    for idx in (*g.inputs, *g.outputs):
        t = g.t(idx)
        if t.dtype not in IO_DTYPES:
            raise UnsupportedModel(f"{t.describe()}: model inputs and outputs must be "
                                   f"{', '.join(IO_DTYPES)}")
    roots = [g.root(i) for i in g.inputs]
    for k, o in enumerate(g.outputs):
        r = g.root(o)
        if g.t(r).is_const or r in roots or [g.root(x) for x in g.outputs].index(r) != k:
            raise UnsupportedModel(
                f"output {k} ({g.t(o).describe()}) is a constant, an input or another "
                "output: the model computes nothing for it")


#: Dtypes of model inputs and outputs (the device protocol carries their bytes).
IO_DTYPES = ("int8", "int16", "int32", "float32")


def compile_source(model: bytes, *, name: str = "model", in_place: bool = True,
                   scratch_bytes: int = SCRATCH_BYTES) -> Compiled:
    """Model bytes → generated C (in memory); raises UnsupportedModel before any output."""
    if not _C_NAME.match(name):
        raise InvalidInput(f"module name '{name}' is not a C identifier (letters, digits, _)")
    g = graph_mod.simplify(graph_mod.read(model))
    _check_io(g)
    low = lower(g, scratch_bytes)
    if not low.steps:
        raise UnsupportedModel("the model computes nothing: its output is its input")
    place = _place(g, low.steps, in_place)
    digest = hashlib.sha256(model).hexdigest()
    identity = model_identity(g, low, digest)
    state = state_roots(g, low.steps)
    # Reset values of variables that have them travel with the model data.
    inits = {r: low.data.add("s", CTYPES[g.t(r).dtype], g.state_init[r])
             for r in state if r in g.state_init}
    src = emit(g, low, place, name=name, model_sha256=digest, identity=identity, state=state,
               state_init=inits)
    weights = sum(m.nbytes for m in low.data.members if m.name[0] in "wb")
    return Compiled(source=src, lowered=low, placement=place, weights_bytes=weights)


class AotCompiler(Compiler):
    """Ahead-of-time compiles int8 models into dependency-free C with a static arena."""

    name = "aot"
    version = __version__
    Options = AotOptions
    output_kind = "c-source"
    supported_ops = supported_ops()
    supported_dtypes = supported_dtypes()
    target_arches = frozenset({"armv6-m", "armv7-m", "armv7e-m", "x86_64"})

    def check(self, model: ModelInfo, board: Board) -> None:
        """The base checks, with refusals that say where the model can run instead."""
        missing = [op for op in model.ops if op not in self.supported_ops]
        if missing and board.arch in self.target_arches:
            what = ", ".join("CUSTOM (a custom op, not a TFLite builtin)" if op == "CUSTOM"
                             else op for op in missing)
            raise UnsupportedModel(
                f"compiler 'aot' does not support op(s) {what}; the model runs on {ELSEWHERE}."
                f" Supported: {', '.join(sorted(self.supported_ops))}", unsupported_ops=missing)
        super().check(model, board)

    def compile(
        self,
        model: bytes,
        info: ModelInfo,
        board: Board,
        out_dir: Path,
        *,
        name: str = "model",
        progress: Progress = no_progress,
    ) -> ModuleManifest:
        assert isinstance(self.options, AotOptions)
        progress("lowering the graph", 0.1)
        opts = self.options
        scratch = SCRATCH_BYTES if opts.scratch_bytes is None else opts.scratch_bytes
        out = compile_source(model, name=name, in_place=opts.in_place, scratch_bytes=scratch)
        if scratch and out.placement.arena_bytes + self._reserve_ram(board, info) > board.ram_bytes:
            # Column buffers buy speed; without them the model may still fit.
            scratch = 0
            out = compile_source(model, name=name, in_place=opts.in_place, scratch_bytes=0)
        self.fit(out, board, info)
        progress("writing the module", 0.9)
        blob = out.lowered.data.blob()
        files = {f"{name}.c": out.source.c.encode(), f"{name}.h": out.source.h.encode(),
                 MODEL_DATA: blob}
        for fname, content in files.items():
            (out_dir / fname).write_bytes(content)
        return ModuleManifest(
            name=name,
            kind=self.output_kind,
            target=board.name,
            model_sha256=info.sha256,
            model_file=f"{name}.c",
            ops=info.ops,
            inputs=info.inputs,
            outputs=info.outputs,
            compiler=CompilerInfo(name=self.name, version=self.version,
                                  options={**opts.model_dump(), "scratch_bytes": scratch}),
            memory=ModuleMemory(weights_bytes=out.weights_bytes,
                                arena_bytes=out.placement.arena_bytes,
                                data_bytes=out.lowered.data.nbytes),
            files={f: hashlib.sha256(c).hexdigest() for f, c in files.items()},
            graph_sha256=out.source.graph_sha256,
            data_sha256=hashlib.sha256(blob).hexdigest(),
        )

    def _reserve_ram(self, board: Board, info: ModelInfo) -> int:
        assert isinstance(self.options, AotOptions)
        if self.options.reserve_ram_bytes is not None:
            return self.options.reserve_ram_bytes
        return firmware_ram_bytes(board, packed_bytes([t.model_dump() for t in info.inputs]),
                                  packed_bytes([t.model_dump() for t in info.outputs]))

    def fit(self, out: Compiled, board: Board, info: ModelInfo) -> None:
        """Refuse a module whose planned RAM or flash, plus what the board's firmware needs,
        exceeds the board's (the same sums as the board's builder checks)."""
        assert isinstance(self.options, AotOptions)
        reserve_ram = self._reserve_ram(board, info)
        reserve_flash = self.options.reserve_flash_bytes
        if reserve_flash is None:
            reserve_flash = board.firmware.flash_bytes
        ram = out.placement.arena_bytes + reserve_ram
        if ram > board.ram_bytes:
            raise DoesNotFit(
                f"model needs {out.placement.arena_bytes} B of arena"
                f" (+{reserve_ram} B for the firmware) but board '{board.name}' has "
                f"{board.ram_bytes} B of RAM: {ram - board.ram_bytes} B missing",
                region="ram", missing_bytes=ram - board.ram_bytes)
        flash = out.lowered.data.nbytes + reserve_flash
        if flash > board.flash_bytes:
            raise DoesNotFit(
                f"model data is {out.lowered.data.nbytes} B"
                f" (+{reserve_flash} B for the firmware) but board '{board.name}' has "
                f"{board.flash_bytes} B of flash: {flash - board.flash_bytes} B missing",
                region="flash", missing_bytes=flash - board.flash_bytes)

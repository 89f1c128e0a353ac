"""The ``tflm`` compiler: the model runs as-is in the TFLM interpreter.

"Compiling" here means proving that the real interpreter loads and runs the
model, measuring the smallest arena it needs, and checking both against the
board before anything is built.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tinymlaas.edge.tflm import TflmError, probe
from tinymlaas.errors import DoesNotFit, UnsupportedModel
from tinymlaas.models import Board, CompilerInfo, ModelInfo, ModuleManifest, ModuleMemory
from tinymlaas.plugins.base import Compiler, Progress, no_progress

# Builtin ops with a kernel in TFLM's reference op resolver.
TFLM_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D",
    "BATCH_MATMUL", "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST",
    "CEIL", "CONCATENATION", "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D",
    "DEQUANTIZE", "DIV", "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR",
    "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL",
    "HARD_SWISH", "IF", "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG",
    "LOG_SOFTMAX", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM",
    "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU",
    "QUANTIZE", "READ_VARIABLE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2",
    "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V",
    "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SVDF",
    "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE",
    "WHILE", "ZEROS_LIKE",
})


class TflmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arena_margin_bytes: int = Field(
        0, ge=0, le=1 << 20, description="extra arena on top of the smallest that runs"
    )


class TflmCompiler(Compiler):
    """Runs the model unchanged in the TFLM interpreter (x86 targets)."""

    name = "tflm"
    version = importlib.metadata.version("tflite_micro")
    Options = TflmOptions
    output_kind = "tflm-bundle"
    supported_ops = TFLM_OPS
    supported_dtypes = frozenset({"int8", "uint8", "int16", "int32", "float32"})
    target_arches = frozenset({"x86_64"})

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
        assert isinstance(self.options, TflmOptions)
        progress("running the model in TFLM", 0.1)
        try:
            result = probe(model)
        except TflmError as exc:
            raise UnsupportedModel(str(exc)) from exc
        arena = result.arena_min + self.options.arena_margin_bytes
        if arena > board.ram_bytes:
            raise DoesNotFit(
                f"model needs {arena} B of TFLM arena but board '{board.name}' has "
                f"{board.ram_bytes} B of RAM ({arena - board.ram_bytes} B missing)",
                region="ram",
                missing_bytes=arena - board.ram_bytes,
            )
        if info.bytes > board.flash_bytes:
            raise DoesNotFit(
                f"model is {info.bytes} B but board '{board.name}' has {board.flash_bytes} B "
                f"of flash ({info.bytes - board.flash_bytes} B missing)",
                region="flash",
                missing_bytes=info.bytes - board.flash_bytes,
            )
        progress("writing the module", 0.9)
        (out_dir / "model.tflite").write_bytes(model)
        return ModuleManifest(
            name=name,
            kind=self.output_kind,
            target=board.name,
            model_sha256=info.sha256,
            ops=info.ops,
            inputs=info.inputs,
            outputs=info.outputs,
            compiler=CompilerInfo(name=self.name, version=self.version, options=self.options.model_dump()),
            memory=ModuleMemory(weights_bytes=info.bytes, arena_bytes=arena),
            files={"model.tflite": hashlib.sha256(model).hexdigest()},
        )

"""Lowering: each graph op becomes calls of C kernels with compile-time parameters.

All per-model numbers (weights, folded biases, multipliers, shifts, zero
points, lookup tables, initial state) go into the model-data section; only
graph structure (shapes, strides, padding, flags) is written into the code.
Ops are lowered by functions registered with :func:`lowers`, which also
declares the dtypes each op takes: that declaration is what the compiler
advertises, what :func:`coverage` reports and what the README lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinymlaas.compilers.aot.graph import Graph, Op, Tensor
from tinymlaas.errors import UnsupportedModel

#: C element type per tensor dtype (bool is stored as one byte, as TFLite does).
CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
          "int64": "int64_t", "uint32": "uint32_t", "float32": "float", "bool": "uint8_t"}
#: Suffix of a templated kernel's instance per dtype (``runtime/*.c`` with ``$T``/``$S``).
SUFFIX = {"int8": "s8", "uint8": "u8", "int16": "s16", "int32": "s32", "int64": "s64",
          "uint32": "u32", "float32": "f32", "bool": "u8"}
_NP_OF_C: dict[str, type[np.integer[Any]] | type[np.floating[Any]]] = {
    "int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "uint16_t": np.uint16,
    "int32_t": np.int32, "uint32_t": np.uint32, "int64_t": np.int64, "float": np.float32}

#: Ops the TFLite converter or TFLM's signal library emit that run only in an interpreter
#: with the matching registration; the refusal says where they can run instead.
ELSEWHERE = ("the x86 TFLM target (board x86-tflm), whose interpreter has TFLM's "
             "builtin and signal-library kernels")


@dataclass
class DataMember:
    name: str
    ctype: str
    values: np.ndarray

    @property
    def align(self) -> int:
        return int(np.dtype(_NP_OF_C[self.ctype]).itemsize)

    @property
    def nbytes(self) -> int:
        return int(self.values.size * self.align)


@dataclass
class DataSection:
    """Per-model numbers, laid out as one struct so a model-only update can swap it."""

    members: list[DataMember] = field(default_factory=list)

    def add(self, stem: str, ctype: str, values: np.ndarray | list[int] | list[float]) -> str:
        arr = np.asarray(values).ravel()
        if arr.size == 0:
            arr = np.zeros(1)
        if ctype != "float":
            info = np.iinfo(np.dtype(_NP_OF_C[ctype]))
            assert arr.min() >= info.min and arr.max() <= info.max, (stem, ctype)
        name = f"{stem}{len(self.members)}"
        self.members.append(DataMember(name, ctype, arr.astype(_NP_OF_C[ctype])))
        return f"d->{name}"

    def ordered(self) -> list[DataMember]:
        """Widest types first: no padding inside the struct on any 32/64-bit ABI."""
        return sorted(self.members, key=lambda m: -m.align)

    @property
    def align(self) -> int:
        return max([4, *(m.align for m in self.members)])

    @property
    def nbytes(self) -> int:
        n = sum(m.nbytes for m in self.members)
        return -(-n // self.align) * self.align if n else 0

    def blob(self) -> bytes:
        """The section's bytes as a little-endian target stores them."""
        raw = b"".join(m.values.astype(m.values.dtype.newbyteorder("<")).tobytes()
                       for m in self.ordered())
        return raw + b"\0" * (self.nbytes - len(raw))


@dataclass
class Buf:
    """A pointer to a tensor's bytes (resolved after planning)."""

    tensor: int
    const: bool = False


@dataclass
class Struct:
    """A code-side constant array describing structure (shapes, strides)."""

    name: str


@dataclass
class PtrList:
    """An array of pointers (CONCATENATION's inputs, SPLIT's outputs), a compound literal."""

    items: list[Buf | str]
    const: bool = True


Arg = Buf | Struct | PtrList | str | int


@dataclass
class Step:
    kernel: str
    args: list[Arg]
    reads: list[int]
    writes: list[int]
    comment: str
    #: (output tensor, input tensor) -> bytes the output must start below the input
    overlap: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass
class Lowered:
    steps: list[Step]
    data: DataSection
    structs: list[tuple[str, str, list[int]]]  # (name, ctype, values) code-side constants


class Ctx:
    def __init__(self, g: Graph, scratch_bytes: int = 0) -> None:
        self.g = g
        #: The most scratch one step may take for speed (column buffers).
        self.scratch_bytes = scratch_bytes
        self.data = DataSection()
        self.structs: list[tuple[str, str, list[int]]] = []

    def struct(self, values: list[int], ctype: str = "int16_t") -> Struct:
        """A code-side constant array of structure (shapes, strides): not model data."""
        info = np.iinfo(np.dtype(_NP_OF_C[ctype]))
        for v in values:
            if not info.min <= v <= info.max:
                raise UnsupportedModel(f"dimension {v} is too large for the aot kernels")
        name = f"g{len(self.structs)}"
        self.structs.append((name, ctype, [int(v) for v in values]))
        return Struct(name)

    def scratch(self, shape: tuple[int, ...], dtype: str, name: str) -> int:
        """A tensor the planner places for the steps that use it (kernel work space)."""
        index = max(self.g.tensors) + 1
        self.g.tensors[index] = Tensor(index=index, name=name, shape=shape, dtype=dtype)
        return index


Lowering = Callable[[Ctx, Op], list[Step]]


@dataclass(frozen=True)
class Declared:
    """What an op takes: dtypes of its activation, or ``in->out`` pairs for conversions."""

    fn: Lowering
    dtypes: frozenset[str]
    operand: int        # which input carries the activation dtype
    conversion: bool    # the signature is "in->out"

    def signature(self, g: Graph, op: Op) -> str:
        ins = [i for i in op.inputs if i >= 0]
        src = g.t(op.inputs[self.operand]) if self.operand < len(op.inputs) and \
            op.inputs[self.operand] >= 0 else g.t(ins[0]) if ins else None
        dst = g.t(op.outputs[0]) if op.outputs else None
        a = src.dtype if src is not None else dst.dtype if dst is not None else "none"
        if self.conversion and dst is not None:
            return f"{a}->{dst.dtype}"
        return a


_LOWERINGS: dict[str, Declared] = {}


def lowers(*kinds: str, dtypes: tuple[str, ...], operand: int = 0,
           conversion: bool = False) -> Callable[[Lowering], Lowering]:
    """Register a lowering for ops ``kinds`` taking ``dtypes`` (the declaration)."""
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            _LOWERINGS[k] = Declared(fn, frozenset(dtypes), operand, conversion)
        return fn
    return register


def _registry() -> dict[str, Declared]:
    from tinymlaas.compilers.aot import (  # noqa: F401
        kernels,
        kernels16,
        kernels_extra,
        kernels_more,
        kernels_rnn,
    )

    return _LOWERINGS


#: Ops that only ever survive as compile-time constants or aliases, with their dtypes.
FOLDED_OPS = {"SHAPE": "any", "RESHAPE": "any", "SQUEEZE": "any", "EXPAND_DIMS": "any",
              "SPACE_TO_BATCH_ND": "int8 (fused into a dilated conv)",
              "BATCH_TO_SPACE_ND": "int8 (fused into a dilated conv)",
              "VAR_HANDLE": "resource (a state tensor)",
              "CALL_ONCE": "initialising variables with constants"}


def supported_ops() -> frozenset[str]:
    return frozenset(_registry()) | frozenset(FOLDED_OPS)


def declaration() -> dict[str, list[str]]:
    """Op -> the dtypes (or conversions) the aot compiler declares for it, sorted."""
    table = {k: sorted(d.dtypes) for k, d in _registry().items()}
    table.update({k: [v] for k, v in FOLDED_OPS.items()})
    return dict(sorted(table.items()))


def supported_dtypes() -> frozenset[str]:
    return frozenset(p for d in _registry().values() for s in d.dtypes for p in s.split("->"))


def require(cond: bool, op: Op, what: str) -> None:
    if not cond:
        raise UnsupportedModel(f"{op.describe()}: {what}")


def require_dtype(op: Op, t: Tensor, *dtypes: str) -> None:
    if t.dtype not in dtypes:
        raise UnsupportedModel(
            f"{op.describe()}: {t.describe()} has dtype {t.dtype}; the aot compiler supports "
            f"{', '.join(dtypes)} here")


def refusal(g: Graph, op: Op) -> str | None:
    """Why the declaration alone refuses ``op`` (None: its lowering decides)."""
    if op.kind == "ALIAS":
        return None
    if op.kind == "CUSTOM":
        return (f"{op.describe()} '{op.custom_code}' is a custom op, not a TFLite builtin: the "
                f"aot compiler generates code for builtins only; it runs on {ELSEWHERE} "
                "(with the op's registration)")
    decl = _registry().get(op.kind)
    if decl is None:
        if op.kind in FOLDED_OPS:
            return (f"{op.describe()} works on run-time data; the aot compiler only folds "
                    f"{op.kind} when its result is known at compile time")
        return (f"{op.describe()} is not supported by the aot compiler; it runs on {ELSEWHERE}."
                f" Supported: {', '.join(sorted(supported_ops()))}")
    sig = decl.signature(g, op)
    if sig not in decl.dtypes:
        return (f"{op.describe()} with {sig} is not supported by the aot compiler (it takes "
                f"{', '.join(sorted(decl.dtypes))}); it runs on {ELSEWHERE}")
    return None


def lower_op(ctx: Ctx, op: Op) -> list[Step]:
    why = refusal(ctx.g, op)
    if why is not None:
        raise UnsupportedModel(why, op=op.kind)
    return _registry()[op.kind].fn(ctx, op)


def lower(g: Graph, scratch_bytes: int = 0) -> Lowered:
    ctx = Ctx(g, scratch_bytes)
    steps: list[Step] = []
    for op in g.ops:
        if op.kind != "ALIAS":
            steps.extend(lower_op(ctx, op))
    from tinymlaas.compilers.aot.kernels import fuse_pointwise_depthwise

    steps = fuse_pointwise_depthwise(ctx, steps)
    return Lowered(steps=steps, data=ctx.data, structs=ctx.structs)

"""Lowering: each graph op becomes one call of a C kernel with compile-time parameters.

All per-model numbers (weights, folded biases, multipliers, shifts, zero
points, lookup tables) go into the model-data section; only graph structure
(shapes, strides, padding, flags) is written into the code. Ops are lowered
by functions registered with :func:`lowers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinymlaas.compilers.aot.graph import Graph, Op, Tensor
from tinymlaas.errors import UnsupportedModel

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
          "float32": "float"}
_NP_OF_C = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "int32_t": np.int32,
            "float": np.float32}


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
            info = np.iinfo(_NP_OF_C[ctype])
            assert arr.min() >= info.min and arr.max() <= info.max, (stem, ctype)
        name = f"{stem}{len(self.members)}"
        self.members.append(DataMember(name, ctype, arr.astype(_NP_OF_C[ctype])))
        return f"D.{name}"

    def ordered(self) -> list[DataMember]:
        """Widest types first: no padding inside the struct on any 32/64-bit ABI."""
        return sorted(self.members, key=lambda m: -m.align)

    @property
    def nbytes(self) -> int:
        n = sum(m.nbytes for m in self.members)
        return -(-n // 4) * 4 if n else 0

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
    """An array of input pointers (CONCATENATION), written as a compound literal."""

    items: list[Buf | str]


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
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.data = DataSection()
        self.structs: list[tuple[str, str, list[int]]] = []

    def struct(self, values: list[int], ctype: str = "int16_t") -> Struct:
        """A code-side constant array of structure (shapes, strides): not model data."""
        info = np.iinfo(_NP_OF_C[ctype])
        for v in values:
            if not info.min <= v <= info.max:
                raise UnsupportedModel(f"dimension {v} is too large for the aot kernels")
        name = f"g{len(self.structs)}"
        self.structs.append((name, ctype, [int(v) for v in values]))
        return Struct(name)


Lowering = Callable[[Ctx, Op], list[Step]]
_LOWERINGS: dict[str, Lowering] = {}


def lowers(*kinds: str) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            _LOWERINGS[k] = fn
        return fn
    return register


def supported_ops() -> frozenset[str]:
    from tinymlaas.compilers.aot import kernels  # noqa: F401 - registers the lowerings
    return frozenset(_LOWERINGS) | FOLDED_OPS


#: Ops that only ever survive as compile-time constants or aliases.
FOLDED_OPS = frozenset({"SHAPE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SPACE_TO_BATCH_ND",
                        "BATCH_TO_SPACE_ND"})


def require(cond: bool, op: Op, what: str) -> None:
    if not cond:
        raise UnsupportedModel(f"{op.describe()}: {what}")


def require_dtype(op: Op, t: Tensor, *dtypes: str) -> None:
    if t.dtype not in dtypes:
        raise UnsupportedModel(
            f"{op.describe()}: {t.describe()} has dtype {t.dtype}; the aot compiler supports "
            f"{', '.join(dtypes)} here")


def lower(g: Graph) -> Lowered:
    from tinymlaas.compilers.aot import kernels  # noqa: F401 - registers the lowerings

    ctx = Ctx(g)
    steps: list[Step] = []
    for op in g.ops:
        if op.kind == "ALIAS":
            continue
        fn = _LOWERINGS.get(op.kind)
        if fn is None:
            if op.kind in FOLDED_OPS:
                raise UnsupportedModel(
                    f"{op.describe()} works on run-time data; the aot compiler only "
                    f"folds {op.kind} when its result is known at compile time")
            raise UnsupportedModel(
                f"{op.describe()} is not supported by the aot compiler; supported: "
                f"{', '.join(sorted(supported_ops()))}")
        steps.extend(fn(ctx, op))
    return Lowered(steps=steps, data=ctx.data, structs=ctx.structs)

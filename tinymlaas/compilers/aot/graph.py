"""The model as a small graph IR, read through the TFLite schema's object API.

Everything the code generator needs is resolved here once: static shapes
(a dynamic batch is one sample on a device), constant data as numpy arrays,
quantization parameters, and builtin options as plain attributes. Shape-only
subgraphs the converter emits (SHAPE → STRIDED_SLICE → PACK → RESHAPE) are
folded to constants, RESHAPE becomes an alias, and SPACE_TO_BATCH_ND →
conv → BATCH_TO_SPACE_ND becomes one dilated conv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinymlaas import tflite
from tinymlaas.errors import UnsupportedModel

_NP: dict[str, Any] = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float32": np.float32, "bool": np.bool_,
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray | None = None       # float32, one per channel or one
    zero_points: np.ndarray | None = None  # int64
    quant_dim: int = 0
    data: np.ndarray | None = None          # constant contents, shaped
    #: state an op keeps between invokes (SVDF's activation state), reset to zero point
    is_variable: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return int(np.dtype(_NP[self.dtype]).itemsize)

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def quantized(self) -> bool:
        return self.scales is not None and len(self.scales) > 0

    @property
    def scale(self) -> float:
        """Per-tensor scale as the float32 TFLite stores (returned as a double)."""
        assert self.scales is not None and len(self.scales) >= 1, self.name
        return float(self.scales[0])

    @property
    def zp(self) -> int:
        if self.zero_points is None or len(self.zero_points) == 0:
            return 0
        return int(self.zero_points[0])

    def describe(self) -> str:
        return f"tensor '{self.name}' ({self.dtype}{list(self.shape)})"


@dataclass
class Op:
    index: int               # position in the original model, for messages
    kind: str                # builtin operator name, e.g. "CONV_2D"
    inputs: list[int]        # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str = ""    # a CUSTOM op's registration name

    def describe(self) -> str:
        return f"operator #{self.index} {self.kind}"


@dataclass
class Graph:
    tensors: dict[int, Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    #: tensor index -> tensor index whose bytes it shares (RESHAPE etc.)
    aliases: dict[int, int] = field(default_factory=dict)
    #: state tensor -> the values a reset gives it (resource variables' initial values)
    state_init: dict[int, np.ndarray] = field(default_factory=dict)

    def t(self, index: int) -> Tensor:
        return self.tensors[index]

    def root(self, index: int) -> int:
        while index in self.aliases:
            index = self.aliases[index]
        return index

    def consumers(self, index: int) -> list[Op]:
        return [op for op in self.ops if index in op.inputs]


def _tensor(model: Any, sg: Any, index: int) -> Tensor:
    t = sg.tensors[index]
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    shape = tuple(1 if d < 0 else d for d in shape)
    dtype = tflite.dtype_name(t.type)
    scales = zps = None
    qdim = 0
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        scales = np.asarray(q.scale, dtype=np.float32)
        zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scales),
                         dtype=np.int64)
        qdim = int(q.quantizedDimension)
    data = None
    buf = model.buffers[t.buffer] if t.buffer < len(model.buffers or []) else None
    if buf is not None and buf.data is not None and len(buf.data) > 0:
        if dtype not in _NP:
            raise UnsupportedModel(f"constant tensor '{name}' has unsupported dtype {dtype}")
        raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
        data = np.frombuffer(raw, dtype=_NP[dtype]).copy()
        data = data.reshape(shape) if data.size == int(np.prod(shape, dtype=np.int64)) else data
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, scales=scales,
                  zero_points=zps, quant_dim=qdim, data=data, is_variable=bool(t.isVariable))


def _ops(model: Any, sg: Any) -> list[Op]:
    ops = []
    for n, op in enumerate(sg.operators or []):
        opts = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        code = model.operatorCodes[op.opcodeIndex].customCode
        ops.append(Op(index=n, kind=tflite.opcode_of(model, op),
                      inputs=[int(i) for i in (op.inputs if op.inputs is not None else [])],
                      outputs=[int(i) for i in (op.outputs if op.outputs is not None else [])],
                      options=opts,
                      custom_code=code.decode(errors="replace") if isinstance(code, bytes)
                      else str(code or "")))
    return ops


def _resource(op: Op) -> tuple[bytes, bytes]:
    """A VAR_HANDLE's variable: (container, shared name)."""
    return (bytes(op.options.get("container") or b""), bytes(op.options.get("sharedName") or b""))


def read(model_bytes: bytes, *, main_only: bool = False) -> Graph:
    """Parse a .tflite file into the IR (``main_only``: read the first subgraph of a model
    with several, as a description, not for compiling).

    Resource variables become state tensors: CALL_ONCE's init subgraph, which may only
    assign constants, gives their reset values; READ_VARIABLE and ASSIGN_VARIABLE then
    read and write the state tensor instead of a handle.
    """
    model = tflite.parse(model_bytes)
    sg = model.subgraphs[0]
    tensors = {i: _tensor(model, sg, i) for i in range(len(sg.tensors or []))}
    ops = _ops(model, sg)
    g = Graph(tensors=tensors, ops=ops, inputs=[int(i) for i in sg.inputs],
              outputs=[int(i) for i in sg.outputs])
    if main_only:
        return g
    init: dict[tuple[bytes, bytes], np.ndarray] = {}
    once = [op for op in ops if op.kind == "CALL_ONCE"]
    flow = sorted({op.kind for op in ops} & {"WHILE", "IF"})
    used = {int(op.options.get("initSubgraphIndex", -1)) for op in once}
    if flow or used | {0} != set(range(len(model.subgraphs))):
        raise UnsupportedModel(
            f"the model has {len(model.subgraphs)} subgraphs ({', '.join(flow) or 'control flow'})"
            "; the aot compiler supports one (and CALL_ONCE initialising variables); it runs "
            "on the x86 TFLM target (board x86-tflm)")
    for index in sorted(used):
        sub = model.subgraphs[index]
        sub_tensors = {i: _tensor(model, sub, i) for i in range(len(sub.tensors or []))}
        handles: dict[int, tuple[bytes, bytes]] = {}
        for op in _ops(model, sub):
            if op.kind == "VAR_HANDLE":
                handles[op.outputs[0]] = _resource(op)
            elif op.kind == "ASSIGN_VARIABLE" and sub_tensors[op.inputs[1]].is_const:
                value = sub_tensors[op.inputs[1]].data
                assert value is not None
                init[handles[op.inputs[0]]] = value
            else:
                raise UnsupportedModel(
                    f"CALL_ONCE's subgraph {index} does {op.kind}: the aot compiler takes "
                    "init subgraphs that assign constants to variables only")
    _variables(g, init)
    return g


def _variables(g: Graph, init: dict[tuple[bytes, bytes], np.ndarray]) -> None:
    """Turn resource handles into state tensors the ops read and write directly."""
    handle_of: dict[int, tuple[bytes, bytes]] = {}
    state: dict[tuple[bytes, bytes], int] = {}
    kept: list[Op] = []
    for op in g.ops:
        if op.kind == "CALL_ONCE":
            continue
        if op.kind == "VAR_HANDLE":
            handle_of[op.outputs[0]] = _resource(op)
            continue
        if op.kind in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            key = handle_of[op.inputs[0]]
            like = g.t(op.outputs[0] if op.kind == "READ_VARIABLE" else op.inputs[1])
            if key not in state:
                index = max(g.tensors) + 1
                g.tensors[index] = Tensor(index=index, name=f"variable {key[1].decode()}",
                                          shape=like.shape, dtype=like.dtype,
                                          scales=like.scales, zero_points=like.zero_points,
                                          is_variable=True)
                value = init.get(key)
                if value is not None:
                    g.state_init[index] = np.asarray(value).ravel()
                state[key] = index
            op.inputs = [state[key], *op.inputs[1:]]
        kept.append(op)
    g.ops = kept


# ---------------------------------------------------------------------------
# Compile-time rewriting

def _const(g: Graph, index: int) -> np.ndarray | None:
    return None if index < 0 else g.t(index).data


def _strided_slice(x: np.ndarray, begin: np.ndarray, end: np.ndarray, strides: np.ndarray,
                   o: dict[str, Any]) -> np.ndarray:
    """STRIDED_SLICE on a constant, with TFLite's mask semantics."""
    idx: list[Any] = []
    bm, em, sam = int(o.get("beginMask", 0)), int(o.get("endMask", 0)), \
        int(o.get("shrinkAxisMask", 0))
    if int(o.get("ellipsisMask", 0)) or int(o.get("newAxisMask", 0)):
        raise UnsupportedModel("STRIDED_SLICE with ellipsis or new-axis masks is not supported")
    shrink: list[int] = []
    for d in range(len(begin)):
        b = None if bm >> d & 1 else int(begin[d])
        e = None if em >> d & 1 else int(end[d])
        s = int(strides[d])
        if sam >> d & 1:
            idx.append(slice(int(begin[d]), int(begin[d]) + 1 if int(begin[d]) != -1 else None, 1))
            shrink.append(d)
        else:
            idx.append(slice(b, e, s))
    out: np.ndarray = x[tuple(idx)]
    return out.reshape([n for d, n in enumerate(out.shape) if d not in shrink])


def _fold_one(g: Graph, op: Op) -> np.ndarray | None:
    """The constant value of ``op``'s output if it can be computed now, else None."""
    k = op.kind
    ins = [(_const(g, i) if i >= 0 else None) for i in op.inputs]
    if k == "SHAPE":
        return np.asarray(g.t(op.inputs[0]).shape, dtype=_NP[g.t(op.outputs[0]).dtype])
    if any(v is None for i, v in zip(op.inputs, ins, strict=True) if i >= 0):
        return None
    if any(g.t(i).quantized and g.t(i).dtype != "int32" for i in op.inputs if i >= 0):
        return None  # folding quantized arithmetic would need the kernels' rounding
    out_dtype = _NP[g.t(op.outputs[0]).dtype]
    if k == "STRIDED_SLICE":
        assert ins[0] is not None and ins[1] is not None and ins[2] is not None
        strides = ins[3] if len(ins) > 3 and ins[3] is not None else np.ones_like(ins[1])
        return _strided_slice(ins[0], ins[1], ins[2], strides, op.options).astype(out_dtype)
    if k == "PACK":
        axis = int(op.options.get("axis", 0))
        return np.stack([np.asarray(v) for v in ins], axis=axis).astype(out_dtype)
    if k == "CONCATENATION":
        axis = int(op.options.get("axis", 0))
        return np.concatenate([np.atleast_1d(np.asarray(v)) for v in ins],
                              axis=axis).astype(out_dtype)
    if k in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        assert ins[0] is not None
        return np.asarray(ins[0]).reshape(g.t(op.outputs[0]).shape).astype(out_dtype)
    return None


_ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})


def _spatial_fusion(g: Graph) -> None:
    """SPACE_TO_BATCH_ND → CONV_2D/DEPTHWISE_CONV_2D → BATCH_TO_SPACE_ND ⇒ one dilated conv."""
    for stb in [op for op in g.ops if op.kind == "SPACE_TO_BATCH_ND"]:
        users = g.consumers(stb.outputs[0])
        if len(users) != 1 or users[0].kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        conv = users[0]
        after = g.consumers(conv.outputs[0])
        if len(after) != 1 or after[0].kind != "BATCH_TO_SPACE_ND":
            continue
        bts = after[0]
        block = _const(g, stb.inputs[1])
        pads = _const(g, stb.inputs[2])
        block2 = _const(g, bts.inputs[1])
        crops = _const(g, bts.inputs[2])
        if block is None or pads is None or block2 is None or crops is None:
            continue
        block, pads = np.asarray(block).ravel(), np.asarray(pads).reshape(-1, 2)
        crops = np.asarray(crops).reshape(-1, 2)
        if (len(block) != 2 or list(np.asarray(block2).ravel()) != list(block)
                or conv.options.get("strideH", 1) != 1 or conv.options.get("strideW", 1) != 1
                or conv.options.get("dilationHFactor", 1) != 1
                or conv.options.get("dilationWFactor", 1) != 1
                or conv.options.get("padding", 1) != 1):  # VALID inside the batch space
            continue
        src, dst = g.t(stb.inputs[0]), g.t(bts.outputs[0])
        if src.quantized and dst.quantized and src.zp != g.t(stb.outputs[0]).zp:
            continue
        conv.inputs = [stb.inputs[0], *conv.inputs[1:]]
        conv.outputs = [bts.outputs[0]]
        conv.options = {**conv.options, "dilationHFactor": int(block[0]),
                        "dilationWFactor": int(block[1]),
                        "explicit_pad": (int(pads[0][0] - crops[0][0]),
                                         int(pads[1][0] - crops[1][0]))}
        g.ops = [op for op in g.ops if op is not stb and op is not bts]


def simplify(g: Graph) -> Graph:
    """Fold shape arithmetic, alias reshapes, fuse dilated convs, drop dead ops."""
    _spatial_fusion(g)
    changed = True
    while changed:
        changed = False
        for op in list(g.ops):
            out = g.t(op.outputs[0]) if op.outputs else None
            if out is None or out.is_const or op.outputs[0] in g.outputs:
                continue
            value = _fold_one(g, op)
            if value is not None:
                out.data = value
                g.ops.remove(op)
                changed = True
    for op in list(g.ops):
        if op.kind in _ALIAS_OPS:
            src, dst = g.t(op.inputs[0]), g.t(op.outputs[0])
            if src.nbytes != dst.nbytes or src.dtype != dst.dtype:
                raise UnsupportedModel(f"{op.describe()}: {src.describe()} and "
                                       f"{dst.describe()} differ in size")
            g.aliases[op.outputs[0]] = op.inputs[0]
            op.kind = "ALIAS"
    # Drop ops whose results nobody reads (folded shape chains leave some behind).
    live = set(g.outputs)
    kept: list[Op] = []
    for op in reversed(g.ops):
        if any(o in live for o in op.outputs) or op.kind == "ASSIGN_VARIABLE":
            kept.append(op)
            live.update(i for i in op.inputs if i >= 0)
            live.update(g.aliases.get(o, o) for o in op.outputs)
    g.ops = list(reversed(kept))
    return g

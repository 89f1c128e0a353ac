"""Lowerings of the data-movement, reduction and float32 ops (and their int8 forms where
TFLM has them): SPLIT, SPLIT_V, SLICE, GATHER, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH,
RESIZE_NEAREST_NEIGHBOR, MINIMUM, MAXIMUM, DIV, ABS, NEG, SQRT, RSQRT, CAST, ARG_MAX,
ARG_MIN, REDUCE_MAX, SUM, and float32 ADD/SUB/MUL/RELU/RELU6.

Data movement is one affine copy (:func:`gather_step`) per output; float32 arithmetic
is done in TFLM's order, so results are bit-exact without fused multiply-adds.
"""

from __future__ import annotations

import math

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op, Tensor
from tinymlaas.compilers.aot.kernels import (
    _INT8,
    QRANGE,
    _broadcast,
    _operand,
    _unary,
    float_range,
    gather_step,
    same_quantization,
)
from tinymlaas.compilers.aot.lower import (
    CTYPES,
    SUFFIX,
    Arg,
    Buf,
    Ctx,
    Step,
    lowers,
    require,
    require_dtype,
)

_MOVABLE = ("int8", "int16", "int32", "float32")


def _const(ctx: Ctx, op: Op, index: int, what: str) -> np.ndarray:
    data = ctx.g.t(index).data
    require(data is not None, op, f"{what} must be constant")
    assert data is not None
    return np.asarray(data)


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _split_along(ctx: Ctx, op: Op, x_index: int, axis: int, sizes: list[int]) -> list[Step]:
    x = ctx.g.t(x_index)
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    steps, at = [], 0
    for out, n in zip(op.outputs, sizes, strict=True):
        require_dtype(op, ctx.g.t(out), x.dtype)
        picked = np.take(index, np.arange(at, at + n), axis=axis)
        steps.append(gather_step(ctx, op, x_index, out, picked))
        at += n
    return steps


@lowers("SPLIT", dtypes=_MOVABLE, operand=1)
def split(ctx: Ctx, op: Op) -> list[Step]:
    x = ctx.g.t(op.inputs[1])
    axis = _axis(int(_const(ctx, op, op.inputs[0], "the axis").ravel()[0]), len(x.shape))
    n = len(op.outputs)
    require(x.shape[axis] % n == 0, op, f"{x.describe()} does not split into {n}")
    return _split_along(ctx, op, op.inputs[1], axis, [x.shape[axis] // n] * n)


@lowers("SPLIT_V", dtypes=_MOVABLE)
def split_v(ctx: Ctx, op: Op) -> list[Step]:
    x = ctx.g.t(op.inputs[0])
    axis = _axis(int(_const(ctx, op, op.inputs[2], "the axis").ravel()[0]), len(x.shape))
    sizes = [int(ctx.g.t(o).shape[axis]) for o in op.outputs]
    return _split_along(ctx, op, op.inputs[0], axis, sizes)


@lowers("UNPACK", dtypes=_MOVABLE)
def unpack(ctx: Ctx, op: Op) -> list[Step]:
    x = ctx.g.t(op.inputs[0])
    axis = _axis(int(op.options.get("axis", 0)), len(x.shape))
    return _split_along(ctx, op, op.inputs[0], axis, [1] * len(op.outputs))


@lowers("SLICE", dtypes=_MOVABLE)
def slice_(ctx: Ctx, op: Op) -> list[Step]:
    x = ctx.g.t(op.inputs[0])
    begin = _const(ctx, op, op.inputs[1], "the begin").ravel()
    size = _const(ctx, op, op.inputs[2], "the size").ravel()
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    sl = tuple(slice(int(b), int(b) + (x.shape[d] - int(b) if int(n) < 0 else int(n)))
               for d, (b, n) in enumerate(zip(begin, size, strict=True)))
    return [gather_step(ctx, op, op.inputs[0], op.outputs[0], index[sl])]


@lowers("DEPTH_TO_SPACE", "SPACE_TO_DEPTH", dtypes=("int8", "float32"))
def depth_space(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require(len(x.shape) == 4, op, f"{x.describe()} must be 4-D (NHWC)")
    bs = int(op.options.get("blockSize", 1))
    n, h, w, c = x.shape
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    if op.kind == "DEPTH_TO_SPACE":  # out[b, h*bs+i, w*bs+j, k] = in[b, h, w, (i*bs+j)*C'+k]
        picked = index.reshape(n, h, w, bs, bs, c // (bs * bs)).transpose(0, 1, 3, 2, 4, 5)
    else:  # out[b, h, w, (i*bs+j)*C+k] = in[b, h*bs+i, w*bs+j, k]
        picked = index.reshape(n, h // bs, bs, w // bs, bs, c).transpose(0, 1, 3, 2, 4, 5)
    require(picked.size == y.size, op, f"{y.describe()} does not match the block size")
    return [gather_step(ctx, op, op.inputs[0], op.outputs[0], picked)]


@lowers("GATHER", dtypes=("int8", "int16", "int32", "float32"))
def gather(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, idx, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    require(int(op.options.get("batchDims", 0)) == 0, op, "batch_dims is not supported")
    require_dtype(op, idx, "int32")
    axis = _axis(int(op.options.get("axis", 0)), len(x.shape))
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    ind: Arg = (ctx.data.add("i", "int32_t", np.asarray(idx.data).ravel()) if idx.is_const
                else Buf(op.inputs[1], const=True))
    geom = ctx.struct([outer, idx.size, x.shape[axis], inner * x.itemsize], "int32_t")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), ind, geom]
    reads = [i for i in op.inputs[:2] if not g.t(i).is_const]
    require(y.size == outer * idx.size * inner, op, f"{y.describe()} does not match")
    return [Step("take", args, reads, [op.outputs[0]], op.describe())]


def _nearest(i: int, n_in: int, n_out: int, align: bool, half: bool) -> int:
    """TFLM's GetNearestNeighbor in float32."""
    f32 = np.float32
    scale = (f32(n_in - 1) / f32(n_out - 1) if align and n_out > 1 else f32(n_in) / f32(n_out))
    v = (f32(i) + f32(0.5 if half else 0.0)) * scale
    r = quant.round_away(float(v)) if align else math.floor(float(v))
    r = min(int(r), n_in - 1)
    return max(0, r) if half else r


@lowers("RESIZE_NEAREST_NEIGHBOR", dtypes=("int8", "int16", "float32"))
def resize_nearest(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require(len(x.shape) == 4 and len(y.shape) == 4, op, "input and output must be 4-D")
    require(same_quantization(x, y), op, "input and output quantization must be equal")
    nb, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    align = bool(op.options.get("alignCorners", False))
    half = bool(op.options.get("halfPixelCenters", False))
    ys = ctx.struct([_nearest(i, ih, oh, align, half) for i in range(oh)])
    xs = ctx.struct([_nearest(i, iw, ow, align, half) for i in range(ow)])
    geom = ctx.struct([nb, oh, ow, iw * c * x.itemsize, c * x.itemsize, ih * iw * c * x.itemsize],
                      "int32_t")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), ys, xs, geom]
    return [Step("resize_nn", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


_BINARY = {"MINIMUM": 0, "MAXIMUM": 1, "ADD": 2, "SUB": 3, "MUL": 4, "DIV": 5}


def binary(ctx: Ctx, op: Op) -> list[Step]:
    """MINIMUM/MAXIMUM on raw values; float32 ADD/SUB/MUL/DIV with their clamp."""
    g = ctx.g
    a, b, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    for t in (b, y):
        require_dtype(op, t, a.dtype)
    if op.kind in ("MINIMUM", "MAXIMUM") and a.quantized:
        require(same_quantization(a, b) and same_quantization(a, y), op,
                "inputs and output must share their quantization (TFLM compares raw values)")
    lohi = float_range(op) if a.dtype == "float32" else QRANGE[a.dtype]
    geom = ctx.struct(_broadcast(op, a, b, y), "int32_t")
    args: list[Arg] = [_operand(ctx, op.inputs[0]), _operand(ctx, op.inputs[1]),
                       Buf(op.outputs[0]), ctx.data.add("q", CTYPES[a.dtype], list(lohi)),
                       geom, _BINARY[op.kind]]
    reads = [i for i in op.inputs[:2] if not g.t(i).is_const]
    step = Step(f"binary.{SUFFIX[a.dtype]}", args, reads, [op.outputs[0]], op.describe())
    for i in reads:
        if g.t(i).size == y.size:
            step.overlap[(op.outputs[0], i)] = 0
    return [step]


@lowers("MINIMUM", "MAXIMUM", dtypes=("int8", "int16", "int32", "float32"))
def minimum_maximum(ctx: Ctx, op: Op) -> list[Step]:
    return binary(ctx, op)


@lowers("DIV", dtypes=("float32",))
def div(ctx: Ctx, op: Op) -> list[Step]:
    return binary(ctx, op)


_UNARY_F32 = {"ABS": 0, "NEG": 1, "SQRT": 2, "RSQRT": 3, "RELU": 4, "RELU6": 5, "RELU_N1_TO_1": 6,
              "HARD_SWISH": 7}


def unary_f32(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, "float32")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), x.size,
                       _UNARY_F32[op.kind]]
    step = Step("unary_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


@lowers("NEG", "SQRT", "RSQRT", dtypes=("float32",))
def neg_sqrt(ctx: Ctx, op: Op) -> list[Step]:
    return unary_f32(ctx, op)


@lowers("ABS", dtypes=("int8", "float32"))
def abs_(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype == "float32":
        return unary_f32(ctx, op)
    require_dtype(op, y, "int8")
    lo, hi = QRANGE["int8"]
    if np.float32(x.scale) == np.float32(y.scale):
        table = [max(lo, min(hi, abs(v - x.zp) + y.zp)) for v in _INT8.tolist()]
    else:
        m, s = quant.quantize_multiplier(float(np.float32(x.scale) / np.float32(y.scale)))
        table = [max(lo, min(hi, quant.mbqm(abs(v - x.zp), m, s) + y.zp))
                 for v in _INT8.tolist()]
    return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")


_CAST = {"int8": 0, "int16": 1, "int32": 2, "uint32": 3, "float32": 4, "bool": 5}


@lowers("CAST", dtypes=tuple(f"{a}->{b}" for a in _CAST for b in _CAST
                             if a != b and b != "bool"), conversion=True)  # as TFLM
def cast(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), x.size,
                       _CAST[x.dtype], _CAST[y.dtype]]
    step = Step("cast", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    if y.itemsize <= x.itemsize:
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


def _reduction(ctx: Ctx, op: Op) -> tuple[Tensor, Tensor, list[int]]:
    """outer, reduced and inner sizes of a reduction over one contiguous block of axes."""
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    rank = len(x.shape)
    axes = sorted({_axis(int(a), rank) for a in _const(ctx, op, op.inputs[1], "the axes")
                   .ravel()})
    nonunit = [d for d in range(rank) if x.shape[d] > 1]
    reduced = [d for d in nonunit if d in axes]
    if not reduced:
        return x, y, [x.size, 1, 1]
    pos = [nonunit.index(d) for d in reduced]
    require(pos == list(range(pos[0], pos[0] + len(pos))), op,
            "only a contiguous block of reduced axes is supported")
    outer = int(np.prod(x.shape[:reduced[0]], dtype=np.int64))
    n = int(np.prod([x.shape[d] for d in reduced], dtype=np.int64))
    inner = int(np.prod(x.shape[reduced[-1] + 1:], dtype=np.int64))
    require(outer * inner == y.size, op, f"{y.describe()} does not match the reduction")
    return x, y, [outer, n, inner]


def reduction(ctx: Ctx, op: Op, mode: int) -> list[Step]:
    """REDUCE_MAX (mode 0) of raw values; SUM (1) and MEAN (2) of float32."""
    x, y, dims = _reduction(ctx, op)
    require_dtype(op, y, x.dtype)
    if x.quantized:
        require(np.float32(x.scale) == np.float32(y.scale), op,
                "input and output scales must be equal (TFLM)")
    init = 0 if mode else (-float(np.finfo(np.float32).max) if x.dtype == "float32"
                           else QRANGE[x.dtype][0])
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", CTYPES[x.dtype], [init]),
                       ctx.struct(dims, "int32_t"), mode]
    return [Step(f"reduce.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                 op.describe())]


@lowers("REDUCE_MAX", dtypes=("int8", "float32"))
def reduce_max(ctx: Ctx, op: Op) -> list[Step]:
    return reduction(ctx, op, 0)


@lowers("SUM", dtypes=("int8", "int16", "float32"))
def sum_(ctx: Ctx, op: Op) -> list[Step]:
    x, y, dims = _reduction(ctx, op)
    require_dtype(op, y, x.dtype)
    if x.dtype == "float32":
        return reduction(ctx, op, 1)
    m, s = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    q = [quant.wrap32(x.zp * dims[1]), m, s, y.zp, *QRANGE[y.dtype]]
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", q), ctx.struct(dims, "int32_t")]
    return [Step(f"sumq.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                 op.describe())]


@lowers("ARG_MAX", "ARG_MIN", dtypes=("int8", "float32"))
def arg_min_max(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    require_dtype(op, y, "int32")
    axis = _axis(int(_const(ctx, op, op.inputs[1], "the axis").ravel()[0]), len(x.shape))
    dims = [int(np.prod(x.shape[:axis], dtype=np.int64)), x.shape[axis],
            int(np.prod(x.shape[axis + 1:], dtype=np.int64))]
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.struct(dims, "int32_t"), int(op.kind == "ARG_MAX")]
    kernel = "argminmax_f32" if x.dtype == "float32" else f"argminmax.{SUFFIX[x.dtype]}"
    return [Step(kernel, args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def conv_f32(ctx: Ctx, op: Op, depthwise: bool, geometry: list[int]) -> list[Step]:
    """CONV_2D / DEPTHWISE_CONV_2D of float32 (geometry as the int8 lowering found it)."""
    g = ctx.g
    w = g.t(op.inputs[1])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    require_dtype(op, w, "float32")
    require(w.data is not None, op, f"{w.describe()} must be constant")
    assert w.data is not None
    oc = geometry[5]
    bias = b.data if b is not None and b.data is not None else np.zeros(oc, np.float32)
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]), ctx.data.add("w", "float", w.data),
        ctx.data.add("b", "float", bias), ctx.data.add("q", "float", list(float_range(op))),
        ctx.struct([*geometry, int(depthwise)]),
    ]
    return [Step("conv_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


@lowers("READ_VARIABLE", "ASSIGN_VARIABLE", dtypes=_MOVABLE)
def variable(ctx: Ctx, op: Op) -> list[Step]:
    """A resource variable is a state tensor: reading copies it out, assigning copies in."""
    state = op.inputs[0]
    src, dst = (state, op.outputs[0]) if op.kind == "READ_VARIABLE" else (op.inputs[1], state)
    require(ctx.g.t(src).nbytes == ctx.g.t(state).nbytes == ctx.g.t(dst).nbytes, op,
            "the variable and the value differ in size")
    step = gather_step(ctx, op, src, dst, np.arange(ctx.g.t(src).size, dtype=np.int64))
    if op.kind == "ASSIGN_VARIABLE":  # the state is written in place, not produced
        step.reads, step.writes = [src, state], []
    return [step]


@lowers("PRELU", dtypes=("int8", "float32"))
def prelu(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, alpha, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    require_dtype(op, alpha, "float32" if x.dtype == "float32" else "int8")
    geom = ctx.struct(_broadcast(op, x, alpha, y), "int32_t")
    reads = [i for i in op.inputs[:2] if not g.t(i).is_const]
    if x.dtype == "float32":
        args: list[Arg] = [_operand(ctx, op.inputs[0]), _operand(ctx, op.inputs[1]),
                           Buf(op.outputs[0]), geom]
        return [Step("prelu_f32", args, reads, [op.outputs[0]], op.describe())]
    m1, s1 = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    m2, s2 = quant.quantize_multiplier(float(x.scale) * float(alpha.scale) / float(y.scale))
    q = [-x.zp, -alpha.zp, m1, s1, m2, s2, y.zp, *QRANGE[y.dtype]]
    args = [_operand(ctx, op.inputs[0]), _operand(ctx, op.inputs[1]), Buf(op.outputs[0]),
            ctx.data.add("q", "int32_t", q), geom]
    step = Step(f"prelu.{SUFFIX[x.dtype]}", args, reads, [op.outputs[0]], op.describe())
    if x.size == y.size and not x.is_const:
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


def _bilinear_axis(n_in: int, n_out: int, align: bool, half: bool) -> list[int]:
    """TFLM's ComputeInterpolationValuesInteger per output index: lower, upper, and the
    upper neighbour's weight, in 10-bit fixed point."""
    scale = (1024 * n_in + n_out // 2) // n_out
    if align and n_out > 1:
        scale = (1024 * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    table = []
    for i in range(n_out):
        v = i * scale + scale // 2 - 512 if half else i * scale
        lo = max(quant.tdiv(v, 1024), 0)
        hi = min(quant.tdiv(v + 1023, 1024), n_in - 1)
        table += [lo, hi, v - 1024 * lo]
    return table


@lowers("RESIZE_BILINEAR", dtypes=("int8", "float32"))
def resize_bilinear(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_extra import resize_bilinear_f32

        return resize_bilinear_f32(ctx, op)
    require_dtype(op, y, "int8")
    require(len(x.shape) == 4 and len(y.shape) == 4, op, "input and output must be 4-D")
    require(same_quantization(x, y), op, "input and output quantization must be equal")
    nb, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    align = bool(op.options.get("alignCorners", False))
    half = bool(op.options.get("halfPixelCenters", False))
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        ctx.struct(_bilinear_axis(ih, oh, align, half), "int32_t"),
        ctx.struct(_bilinear_axis(iw, ow, align, half), "int32_t"),
        ctx.struct([nb, ih, iw, c, oh, ow], "int32_t"),
    ]
    return [Step("resize_bl_s8", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16."""
    if a == b == -32768:
        return 32767
    ab = a * b
    return quant.tdiv(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15)


def _shl_sat16(v: int, amount: int) -> int:
    return max(-32768, min(32767, v * (1 << amount)))


def _to_int16_multiplier(m: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16


@lowers("HARD_SWISH", dtypes=("int8", "float32"))
def hard_swish(ctx: Ctx, op: Op) -> list[Step]:
    """int8: TFLM's 16-bit fixed-point hard swish, tabulated for the 256 inputs."""
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    if x.dtype == "float32":
        return unary_f32(ctx, op)
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(x.scale)
    om, oe = quant.quantize_multiplier(float(hires / f32(y.scale)))
    rm, re_ = quant.quantize_multiplier(float(hires / (f32(3.0) / f32(32768.0))))
    require(oe <= 0, op, "the output scale is too small for TFLM's int8 hard swish")
    om16, rm16 = _to_int16_multiplier(om), _to_int16_multiplier(rm)
    table = []
    for v in (_INT8 - x.zp).tolist():
        hi = v * 128
        pre = _srdhm16(hi, om16)
        r = _shl_sat16(hi, re_ - 1) if re_ > 0 else hi
        r = _srdhm16(r, rm16)
        if re_ > 0:
            r = _shl_sat16(r, 1)
        elif re_ < 0:
            r = quant.rdbpot(r, -re_)
        r = (r + (1 << 15)) >> 1
        # TFLM's own doubling high multiply here truncates (no rounding nudge).
        prod = 32767 if r == pre == -32768 else quant.tdiv(r * pre, 1 << 15)
        out = quant.rdbpot(prod, -oe) + y.zp
        table.append(max(-128, min(127, out)))
    return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")

"""Lowerings of the remaining ops TFLM runs: SOFTMAX int16 and float32, L2_NORMALIZATION
(int8, float32), BATCH_MATMUL (int8, int16, float32), and float32 TRANSPOSE_CONV,
RESIZE_BILINEAR and LEAKY_RELU.

Tables TFLM fills in Prepare with float arithmetic (the int16 softmax's exp and
reciprocal) are filled here the same way, with the C library's expf where TFLM calls
std::exp; float kernels sum in TFLM's order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable
from functools import cache

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op
from tinymlaas.compilers.aot.kernels import float_range
from tinymlaas.compilers.aot.kernels16 import tconv_geometry
from tinymlaas.compilers.aot.lower import (
    SUFFIX,
    Arg,
    Buf,
    Ctx,
    Step,
    lowers,
    require,
    require_dtype,
)

_F32 = np.float32


@cache
def _expf() -> Callable[[float], float]:
    """The C library's expf (what TFLM's std::exp(float) calls), else exp in double."""
    name = ctypes.util.find_library("m")
    if name is None:
        return lambda v: float(_F32(math.exp(v)))
    fn = ctypes.CDLL(name).expf
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda v: float(fn(v))


def _round(v: np.float32) -> np.float32:
    return _F32(quant.round_away(float(v)))


def lut_int16(input_scale: float, input_zp: int, output_scale: float, output_zp: int,
              fn: Callable[[np.float32], np.float32]) -> list[int]:
    """TFLM's LUTPopulateInt16<float>: 512 segments of the int16 input range, each entry
    biased by half its midpoint error, and one more entry, all in float32."""
    s_in, s_out = _F32(input_scale), _F32(output_scale)
    in_min, in_max = s_in * _F32(-32768 - input_zp), s_in * _F32(32767 - input_zp)
    out_min, out_max = s_out * _F32(-32768 - output_zp), s_out * _F32(32767 - output_zp)
    step = (in_max - in_min) / _F32(512)
    half = step / _F32(2)
    inv = _F32(65536) / (out_max - out_min)
    lut = []
    for i in range(512):
        val = fn(in_min + _F32(i) * step)
        mid = fn(in_min + _F32(i) * step + half)
        nxt = fn(in_min + _F32(i + 1) * step)
        sample = _round(val * inv)
        interp = _round((nxt * inv + _round(val * inv)) / _F32(2))
        bias = _round((interp - _round(mid * inv)) / _F32(2))
        lut.append(int(min(max(sample - bias, _F32(-32768)), _F32(32767))))
    last = _round(fn(in_max) * inv)
    lut.append(int(min(max(last, _F32(-32768)), _F32(32767))))
    return lut


@cache
def _softmax16_tables() -> tuple[list[int], list[int]]:
    exp = _expf()
    span = 65535
    exp_lut = lut_int16(float(_F32(10.0) / _F32(span)), 32767, float(_F32(2.0) / _F32(span)),
                        0, lambda v: _F32(exp(float(v))))
    recip = lut_int16(float(_F32(1.0) / _F32(span)), -32768, float(_F32(2.0) / _F32(span)), 0,
                      lambda v: _F32(1.0) / (_F32(1.0) + v))
    return exp_lut, recip


def _table(ctx: Ctx, stem: str, values: list[int]) -> str:
    """A table in the model data, once per model."""
    for m in ctx.data.members:
        if m.name.startswith(stem):
            return f"d->{m.name}"
    return ctx.data.add(stem, "int16_t", values)


def softmax_s16_f32(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    depth = x.shape[-1] if x.shape else 1
    rows = x.size // depth
    beta = float(_F32(op.options.get("beta", 0.0)))  # the schema's default, as TFLM reads it
    if x.dtype == "float32":
        args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                           ctx.data.add("q", "float", [beta]), rows, depth]
        return [Step("softmax_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())]
    require(x.zp == 0 and y.zp == 0, op, "int16 softmax needs zero points 0 (TFLM)")
    require(abs(float(y.scale) - 1 / 32768) <= 0.001 / 32768, op,
            f"{y.describe()} must have scale 1/32768 (TFLM's int16 softmax)")
    mult, shift = quant.quantize_multiplier(float(x.scale) * beta / (10.0 / 65535.0))
    exp_lut, recip = _softmax16_tables()
    args = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), _table(ctx, "sme", exp_lut),
            _table(ctx, "smr", recip), ctx.data.add("q", "int32_t", [mult, shift]), rows,
            depth]
    return [Step("softmax_s16", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


@lowers("L2_NORMALIZATION", dtypes=("int8", "float32"))
def l2_normalization(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    require(int(op.options.get("fusedActivationFunction", 0)) == 0, op,
            "a fused activation is not supported (TFLM)")
    require(len(x.shape) <= 4, op, f"{x.describe()} has more than 4 dimensions")
    depth = x.shape[-1] if x.shape else 1
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       x.zp if x.dtype == "int8" else 0, x.size // depth, depth,
                       int(x.dtype == "float32")]
    return [Step("l2norm", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def _operand(ctx: Ctx, index: int) -> Arg:
    t = ctx.g.t(index)
    if t.is_const:
        assert t.data is not None
        return ctx.data.add("c", "float" if t.dtype == "float32" else f"{t.dtype}_t", t.data)
    return Buf(index, const=True)


@lowers("BATCH_MATMUL", dtypes=("int8", "int16", "float32"))
def batch_matmul(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    a, b, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    require_dtype(op, b, a.dtype)
    require_dtype(op, y, a.dtype)
    require(2 <= len(a.shape) <= 5 and 2 <= len(b.shape) <= 5, op,
            "operands must have 2 to 5 dimensions")
    adj_x, adj_y = bool(op.options.get("adjX", False)), bool(op.options.get("adjY", False))
    sa = [1] * (5 - len(a.shape)) + list(a.shape)
    sb = [1] * (5 - len(b.shape)) + list(b.shape)
    m, ka = (sa[4], sa[3]) if adj_x else (sa[3], sa[4])
    kb, n = (sb[4], sb[3]) if adj_y else (sb[3], sb[4])
    require(ka == kb, op, "the operands' depths differ")
    batch, a_st, b_st = [], [], []
    for d in range(3):
        require(sa[d] == sb[d] or 1 in (sa[d], sb[d]), op, "batch dimensions do not broadcast")
        batch.append(max(sa[d], sb[d]))
        a_st.append(0 if sa[d] == 1 else int(np.prod(sa[d + 1:])))
        b_st.append(0 if sb[d] == 1 else int(np.prod(sb[d + 1:])))
    require(y.size == int(np.prod(batch)) * m * n, op, f"{y.describe()} does not match")
    geom = ctx.struct([*batch, *a_st, *b_st, m, n, ka, 1 if adj_x else ka, m if adj_x else 1,
                       1 if adj_y else n, ka if adj_y else 1], "int32_t")
    reads = [i for i in op.inputs[:2] if not g.t(i).is_const]
    ops: list[Arg] = [_operand(ctx, op.inputs[0]), _operand(ctx, op.inputs[1]),
                      Buf(op.outputs[0])]
    if a.dtype == "float32":
        return [Step("bmm_f32", [*ops, geom], reads, [op.outputs[0]], op.describe())]
    for t in (a, b):
        require(t.scales is not None and len(t.scales) == 1, op,
                f"{t.describe()} must have one scale (TFLM)")
    if a.dtype == "int16":
        require(a.zp == b.zp == y.zp == 0, op, "int16 BATCH_MATMUL needs zero points 0")
    mult, shift = quant.quantize_multiplier(
        float(_F32(a.scale) * _F32(b.scale)) / float(y.scale))
    q = ctx.data.add("q", "int32_t", [-a.zp, -b.zp, mult, shift, y.zp])
    return [Step(f"bmm.{SUFFIX[a.dtype]}", [*ops, q, geom], reads, [op.outputs[0]],
                 op.describe())]


def transpose_conv_f32(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    w, x, y = g.t(op.inputs[1]), g.t(op.inputs[2]), g.t(op.outputs[0])
    b = g.t(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] >= 0 else None
    require_dtype(op, w, "float32")
    require_dtype(op, y, "float32")
    shape = tconv_geometry(op, w, x, y)
    oc = shape[5]
    bias = np.zeros(oc, np.float32)
    if b is not None:
        require_dtype(op, b, "float32")
        require(b.data is not None, op, f"{b.describe()} must be constant")
        assert b.data is not None
        bias = b.data.ravel()
    assert w.data is not None
    geom = ctx.struct([*shape, 0, 0])
    args: list[Arg] = [Buf(op.inputs[2], const=True), Buf(op.outputs[0]),
                       ctx.data.add("w", "float", w.data), ctx.data.add("b", "float", bias),
                       ctx.data.add("q", "float", list(float_range(op))), geom]
    return [Step("tconv_f32", args, [op.inputs[2]], [op.outputs[0]], op.describe())]


def _bilinear_f32(n_in: int, n_out: int, align: bool, half: bool) -> tuple[list[int], list[float]]:
    """TFLM's ComputeInterpolationValues in float32: lower and upper index and the two
    weights (1 - d, d) per output index."""
    scale = _F32(n_in) / _F32(n_out)
    if align and n_out > 1:
        scale = _F32(n_in - 1) / _F32(n_out - 1)
    idx: list[int] = []
    wts: list[float] = []
    for i in range(n_out):
        v = (_F32(i) + _F32(0.5)) * scale - _F32(0.5) if half else _F32(i) * scale
        lo = max(math.floor(float(v)), 0)
        hi = min(math.ceil(float(v)), n_in - 1)
        d = v - _F32(lo)
        idx += [lo, hi]
        wts += [float(_F32(1) - d), float(d)]
    return idx, wts


def resize_bilinear_f32(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, "float32")
    require(len(x.shape) == 4 and len(y.shape) == 4, op, "input and output must be 4-D")
    nb, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    align = bool(op.options.get("alignCorners", False))
    half = bool(op.options.get("halfPixelCenters", False))
    ys, fy = _bilinear_f32(ih, oh, align, half)
    xs, fx = _bilinear_f32(iw, ow, align, half)
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]), ctx.struct(ys, "int32_t"),
        ctx.struct(xs, "int32_t"), ctx.data.add("f", "float", fy), ctx.data.add("f", "float", fx),
        ctx.struct([nb, ih, iw, c, oh, ow], "int32_t"),
    ]
    return [Step("resize_bl_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def leaky_relu_f32(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, "float32")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("a", "float", [float(_F32(op.options.get("alpha", 0.2)))]),
                       x.size]
    step = Step("leaky_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


"""Lowerings beyond the int8 core: 16x8 quantization (int16 activations, int8 weights,
64-bit biases) and the ops published models need next to it (LEAKY_RELU,
TRANSPOSE_CONV, TRANSPOSE, and SVDF with its state).

The arithmetic is TFLM's reference kernels' (``reference_integer_ops``), with
Prepare's multipliers computed here once.
"""

from __future__ import annotations

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op, Tensor
from tinymlaas.compilers.aot.kernels import (
    _INT8,
    QRANGE,
    _act,
    _per_channel,
    _unary,
    gather_step,
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

#: TFLite's TensorType code of int32 (a 16x8 op's ``quantizedBiasType`` when it has no bias).
_INT32_BIAS = 2


def _bias64(op: Op, b: Tensor | None, channels: int) -> tuple[np.ndarray, bool]:
    """The bias as int64 values, and whether TFLM accumulates in 32 bits (an int32 bias,
    or none declared as int32)."""
    if b is None:
        return (np.zeros(channels, np.int64),
                int(op.options.get("quantizedBiasType", 0)) == _INT32_BIAS)
    require(b.is_const and b.data is not None, op, f"{b.describe()} must be constant")
    require_dtype(op, b, "int32", "int64")
    assert b.data is not None
    return b.data.astype(np.int64).ravel(), b.dtype == "int32"


def _requant16(ctx: Ctx, mults: list[int], shifts: list[int]) -> list[Arg]:
    return [ctx.data.add("m", "int32_t", mults), ctx.data.add("s", "int8_t", shifts)]


def fully_connected_s16(ctx: Ctx, op: Op, rows: int, depth: int, units: int) -> list[Step]:
    g = ctx.g
    x, w, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    require_dtype(op, w, "int8")
    require_dtype(op, y, "int16")
    require(x.zp == 0, op, f"{x.describe()} must have zero point 0 (16x8 quantization)")
    mults, shifts, per_channel = _per_channel(op, x, w, y, units)
    bias, acc32 = _bias64(op, b, units)
    lo, hi = _act(op, y)
    assert w.data is not None
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        ctx.data.add("w", "int8_t", w.data), ctx.data.add("b", "int64_t", bias),
        *_requant16(ctx, mults, shifts), ctx.data.add("q", "int32_t", [y.zp, lo, hi]),
        rows, depth, units, int(per_channel), int(acc32),
    ]
    return [Step("fc_s16", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def conv_s16(ctx: Ctx, op: Op, depthwise: bool, geometry: list[int]) -> list[Step]:
    """CONV_2D / DEPTHWISE_CONV_2D 16x8 (geometry: in h w c, out h w c, kernel, strides,
    dilations, pads, batches, as the int8 lowering found them)."""
    g = ctx.g
    x, w, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    oc = geometry[5]
    mults, shifts, per_channel = _per_channel(op, x, w, y, oc)
    bias, acc32 = _bias64(op, b, oc)
    if depthwise:
        acc32 = False  # TFLM's 16x8 depthwise conv always accumulates in 64 bits
    lo, hi = _act(op, y)
    assert w.data is not None
    geom = ctx.struct([*geometry, int(per_channel), int(depthwise), int(acc32)])
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        ctx.data.add("w", "int8_t", w.data), ctx.data.add("b", "int64_t", bias),
        *_requant16(ctx, mults, shifts), ctx.data.add("q", "int32_t", [lo, hi]), geom,
    ]
    return [Step("conv_s16", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def tconv_geometry(op: Op, w: Tensor, x: Tensor, y: Tensor) -> list[int]:
    """A transposed conv's geometry, as every dtype's kernel reads it: input, output and filter
    sizes, strides, TFLM's padding (ComputePaddingHeightWidth with the output as the "input"
    size) and the batch count."""
    require(w.is_const and w.data is not None, op, f"{w.describe()} must be constant weights")
    require(len(x.shape) == 4 and len(w.shape) == 4 and len(y.shape) == 4, op,
            "input, filter and output must be 4-D (NHWC)")
    nb, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    wo, kh, kw, wi = w.shape
    require(wo == oc and wi == ic, op, f"{w.describe()} does not match the channels")
    sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
    same = int(op.options.get("padding", 0)) == 0

    def pad(out: int, k: int, s: int) -> int:
        n = (out + s - 1) // s if same else (out + s - k) // s
        return max(0, (n - 1) * s + k - out) // 2
    return [ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, pad(oh, kh, sh), pad(ow, kw, sw), nb]


@lowers("TRANSPOSE_CONV", dtypes=("int8", "int16", "float32"), operand=2)
def transpose_conv(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    w, x, y = g.t(op.inputs[1]), g.t(op.inputs[2]), g.t(op.outputs[0])
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_extra import transpose_conv_f32

        return transpose_conv_f32(ctx, op)
    b = g.t(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] >= 0 else None
    require_dtype(op, w, "int8")
    require_dtype(op, y, x.dtype)
    shape = tconv_geometry(op, w, x, y)
    oc = shape[5]
    mults, shifts, per_channel = _per_channel(op, x, w, y, oc)
    wide = x.dtype == "int16"
    if b is not None and b.dtype == "int16":  # TFLM widens an int16 bias to 64 bits
        require(b.data is not None, op, f"{b.describe()} must be constant")
        assert b.data is not None
        bias = b.data.astype(np.int64).ravel()
    else:
        bias, _ = _bias64(op, b, oc)
        require(b is None or b.dtype == ("int64" if wide else "int32"), op,
                f"{b.describe() if b else ''}: TFLM takes an int64 bias for int16, int32 "
                "for int8")
    lo, hi = _act(op, y)
    zin, zout = (0, 0) if wide else (x.zp, y.zp)  # TFLM's int16 kernel ignores zero points
    assert w.data is not None
    geom = ctx.struct([*shape, int(per_channel), int(wide)])
    args: list[Arg] = [
        Buf(op.inputs[2], const=True), Buf(op.outputs[0]),
        ctx.data.add("w", "int8_t", w.data), ctx.data.add("b", "int64_t", bias),
        *_requant16(ctx, mults, shifts), ctx.data.add("q", "int32_t", [zin, zout, lo, hi]),
        geom,
    ]
    return [Step(f"tconv.{SUFFIX[x.dtype]}", args, [op.inputs[2]], [op.outputs[0]],
                 op.describe())]


@lowers("LEAKY_RELU", dtypes=("int8", "int16", "float32"))
def leaky_relu(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_extra import leaky_relu_f32

        return leaky_relu_f32(ctx, op)
    require_dtype(op, y, x.dtype)
    # The pinned TFLM computes both multipliers in double (its sources once used float).
    alpha = float(np.float32(op.options.get("alpha", 0.2)))
    ma, sa = quant.quantize_multiplier(float(x.scale) * alpha / float(y.scale))
    mi, si = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    lo, hi = QRANGE[y.dtype]
    if x.dtype == "int8":
        table = []
        for v in (_INT8 - x.zp).tolist():
            if v >= 0:
                r = y.zp + quant.mbqm(v, mi, si)
            else:
                s = quant.mbqm(v, abs(ma), sa)
                r = y.zp + (-s if ma < 0 else s)
            table.append(max(lo, min(hi, r)))
        return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")
    q = [mi, si, abs(ma), sa, int(ma < 0), x.zp, y.zp, lo, hi]
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", q), x.size]
    step = Step(f"leaky.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                op.describe())
    step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


@lowers("TRANSPOSE", dtypes=("int8", "int16", "int32", "float32"))
def transpose(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x = g.t(op.inputs[0])
    perm = g.t(op.inputs[1]).data
    require(perm is not None, op, "the permutation must be constant")
    assert perm is not None
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape).transpose(
        [int(p) for p in np.ravel(perm)])
    return [gather_step(ctx, op, op.inputs[0], op.outputs[0], index)]


@lowers("SVDF", dtypes=("int8",))
def svdf(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, wf, wt = (g.t(i) for i in op.inputs[:3])
    require(op.inputs[3] >= 0, op, "an SVDF without a bias is not supported (TFLM needs one)")
    b, st, y = g.t(op.inputs[3]), g.t(op.inputs[4]), g.t(op.outputs[0])
    require_dtype(op, y, "int8")
    require_dtype(op, wf, "int8")
    require_dtype(op, st, "int8", "int16")
    require_dtype(op, wt, st.dtype)
    require(st.is_variable, op, f"{st.describe()} must be a variable tensor (the state)")
    require(wf.is_const and wt.is_const and wf.data is not None and wt.data is not None, op,
            "the weights must be constant")
    assert wf.data is not None and wt.data is not None
    rank = int(op.options.get("rank", 1))
    nb, ni = x.shape[0], x.size // x.shape[0]
    nf, nm = wf.shape[0], wt.shape[1]
    require(nf % rank == 0 and st.size == nb * nf * nm, op, "the shapes do not match")
    # TFLM's Prepare multiplies the float scales in float, then widens to double.
    f32 = np.float32
    m1, s1 = quant.quantize_multiplier(float(f32(x.scale) * f32(wf.scale) / f32(st.scale)))
    m2, s2 = quant.quantize_multiplier(float(f32(st.scale) * f32(wt.scale) / f32(y.scale)))
    require(b.is_const and b.data is not None, op, f"{b.describe()} must be constant")
    assert b.data is not None
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]), Buf(op.inputs[4]),
        ctx.data.add("w", "int8_t", wf.data), ctx.data.add("w", CTYPES[wt.dtype], wt.data),
        ctx.data.add("b", "int32_t", b.data),
        ctx.data.add("q", "int32_t", [x.zp, m1, s1, st.zp, m2, s2, y.zp]),
        ctx.struct([nb, ni, nf, nm, rank], "int32_t"),
    ]
    return [Step(f"svdf.{SUFFIX[st.dtype]}", args, [op.inputs[0], op.inputs[4]],
                 [op.outputs[0]], op.describe())]

"""Per-op lowerings: TFLM's Prepare arithmetic, done once at compile time.

Each function checks what it supports (dtype, quantization, shape) and
raises UnsupportedModel naming the op and tensor otherwise; it then returns
the kernel call(s) with their model data. The C side lives in ``runtime/``.
"""

from __future__ import annotations

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op, Tensor
from tinymlaas.compilers.aot.lower import Arg, Buf, Ctx, Step, lowers, require, require_dtype


def _wrap32(a: np.ndarray) -> np.ndarray:
    return ((a.astype(np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def _per_channel(op: Op, x: Tensor, w: Tensor, y: Tensor, channels: int,
                 ) -> tuple[list[int], list[int], bool]:
    """Multipliers/shifts as TFLM's PopulateConvolutionQuantizationParams makes them."""
    require(w.quantized and x.quantized and y.quantized, op, "needs quantized tensors")
    assert w.scales is not None and w.zero_points is not None
    require(bool(np.all(w.zero_points == 0)), op,
            f"{w.describe()} has a non-zero weight zero point (only symmetric int8 weights)")
    scales = w.scales
    per_channel = len(scales) > 1
    require(not per_channel or len(scales) == channels, op,
            f"{w.describe()} has {len(scales)} scales for {channels} channels")
    mults, shifts = [], []
    for s in scales:
        m, sh = quant.quantize_multiplier(float(x.scale) * float(s) / float(y.scale))
        mults.append(m)
        shifts.append(sh)
    return mults, shifts, per_channel


def _act(op: Op, y: Tensor) -> tuple[int, int]:
    act = int(op.options.get("fusedActivationFunction", 0))
    require(act in (0, 1, 2, 3), op, f"fused activation code {act} is not supported "
            "(NONE, RELU, RELU_N1_TO_1, RELU6 are)")
    return quant.activation_range(act, y.scale, y.zp)


@lowers("FULLY_CONNECTED")
def fully_connected(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, w, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    require(w.is_const, op, f"{w.describe()} must be constant weights")
    require(int(op.options.get("weightsFormat", 0)) == 0, op, "only the default weights format")
    require(len(w.shape) == 2, op, f"{w.describe()} must be 2-D")
    units, depth = w.shape
    require(x.size % depth == 0, op, f"{x.describe()} is not a multiple of {depth}")
    rows = x.size // depth
    require(y.size == rows * units, op, f"{y.describe()} does not hold {rows}x{units} values")
    if x.dtype == "float32":
        return _fully_connected_f32(ctx, op, x, w, b, y, rows, depth, units)
    for t in (x, w, y):
        require_dtype(op, t, "int8")
    if b is not None:
        require_dtype(op, b, "int32")
        require(b.is_const, op, f"{b.describe()} must be constant")
    mults, shifts, per_channel = _per_channel(op, x, w, y, units)
    assert w.data is not None
    wsum = w.data.astype(np.int64).reshape(units, depth).sum(axis=1)
    bias = b.data.astype(np.int64).ravel() if b is not None and b.data is not None else 0
    bias = _wrap32(bias - x.zp * wsum)  # input offset folded: Σw(x-zp) = Σwx - zp·Σw
    lo, hi = _act(op, y)
    d = ctx.data
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        d.add("w", "int8_t", w.data), d.add("b", "int32_t", bias),
        d.add("m", "int32_t", mults), d.add("s", "int8_t", shifts),
        d.add("q", "int32_t", [y.zp, lo, hi]),
        rows, depth, units, int(per_channel),
    ]
    return [Step("fc_s8", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


def _fully_connected_f32(ctx: Ctx, op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor,
                         rows: int, depth: int, units: int) -> list[Step]:
    for t in (x, w, y):
        require_dtype(op, t, "float32")
    act = int(op.options.get("fusedActivationFunction", 0))
    lo, hi = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}.get(
        act, (None, None))
    require(lo is not None, op, f"fused activation code {act} is not supported")
    assert w.data is not None
    bias = b.data if b is not None and b.data is not None else np.zeros(units, np.float32)
    d = ctx.data
    big = float(np.finfo(np.float32).max)
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        d.add("w", "float", w.data), d.add("b", "float", bias),
        d.add("q", "float", [max(float(lo), -big), min(float(hi), big)]),
        rows, depth, units,
    ]
    return [Step("fc_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())]


# --- convolutions and pooling ---------------------------------------------

_BIG = np.iinfo(np.int64).max


def _padding(op: Op, in_size: int, k: int, stride: int, dil: int, out_size: int,
             axis: int) -> int:
    """TFLM's ComputePaddingHeightWidth for one axis (or the fused explicit pad)."""
    if "explicit_pad" in op.options:
        return int(op.options["explicit_pad"][axis])
    eff = (k - 1) * dil + 1
    same = int(op.options.get("padding", 0)) == 0
    expect = (in_size + stride - 1) // stride if same else (in_size + stride - eff) // stride
    require(expect == out_size, op, f"output size {out_size} does not match the padding "
            f"(expected {expect})")
    return max(0, (out_size - 1) * stride + eff - in_size) // 2


def _window_minread(ih: int, iw: int, ic: int, oh: int, ow: int, kh: int, kw: int, sh: int,
                    sw: int, dh: int, dw: int, pt: int, pl: int) -> np.ndarray:
    """Lowest input element (pixel start) each output pixel's window reads, [oh, ow]."""
    def lowest(o: int, s: int, p: int, k: int, d: int, n: int) -> int:
        for t in range(k):
            v = o * s - p + t * d
            if 0 <= v < n:
                return v
        return -1
    ys = np.array([lowest(o, sh, pt, kh, dh, ih) for o in range(oh)], dtype=np.int64)
    xs = np.array([lowest(o, sw, pl, kw, dw, iw) for o in range(ow)], dtype=np.int64)
    m = (ys[:, None] * iw + xs[None, :]) * ic
    m[(ys[:, None] < 0) | (xs[None, :] < 0)] = _BIG
    return m


def _overlap(step: Step, out: Tensor, x_index: int, x: Tensor, minread: np.ndarray) -> Step:
    from tinymlaas.compilers.aot.planner import overlap_distance

    step.overlap[(step.writes[0], x_index)] = overlap_distance(
        minread.ravel(), out.itemsize, x.itemsize)
    return step


def _conv_common(ctx: Ctx, op: Op, depthwise: bool) -> list[Step]:
    g = ctx.g
    x, w, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    for t in (x, w, y):
        require_dtype(op, t, "int8")
    require(w.is_const, op, f"{w.describe()} must be constant weights")
    require(len(x.shape) == 4 and len(w.shape) == 4 and len(y.shape) == 4, op,
            "input, filter and output must be 4-D (NHWC)")
    nb, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
    dh, dw = int(op.options.get("dilationHFactor", 1)), int(op.options.get("dilationWFactor", 1))
    if depthwise:
        _, kh, kw, wc = w.shape
        require(wc == oc and oc % ic == 0, op, f"{w.describe()} does not match the channels")
        dm = oc // ic
    else:
        wo, kh, kw, wi = w.shape
        require(wo == oc and wi == ic, op,
                f"{w.describe()} does not match {ic} input / {oc} output channels "
                "(grouped convolutions are not supported)")
    pt = _padding(op, ih, kh, sh, dh, oh, 0)
    pl = _padding(op, iw, kw, sw, dw, ow, 1)
    if b is not None:
        require_dtype(op, b, "int32")
        require(b.is_const, op, f"{b.describe()} must be constant")
    mults, shifts, per_channel = _per_channel(op, x, w, y, oc)
    assert w.data is not None
    wd = w.data.astype(np.int64)
    wsum = wd.reshape(kh * kw, oc).sum(axis=0) if depthwise else wd.reshape(oc, -1).sum(axis=1)
    bias = b.data.astype(np.int64).ravel() if b is not None and b.data is not None else 0
    bias = _wrap32(bias - x.zp * wsum)
    lo, hi = _act(op, y)
    d = ctx.data
    geom = ctx.struct([ih, iw, ic, oh, ow, dm if depthwise else oc, kh, kw, sh, sw, dh, dw,
                       pt, pl, nb, int(per_channel)])
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        d.add("w", "int8_t", w.data), d.add("b", "int32_t", bias),
        d.add("m", "int32_t", mults), d.add("s", "int8_t", shifts),
        d.add("q", "int32_t", [x.zp, y.zp, lo, hi]), geom,
    ]
    step = Step("dwconv_s8" if depthwise else "conv_s8", args, [op.inputs[0]], [op.outputs[0]],
                op.describe())
    if nb == 1:
        pix = _window_minread(ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl)
        if depthwise:
            chans = np.repeat(np.arange(ic, dtype=np.int64), dm)
            minread = np.where(pix[:, :, None] == _BIG, _BIG, pix[:, :, None] + chans)
        else:
            minread = np.repeat(pix[:, :, None], oc, axis=2)
        _overlap(step, y, op.inputs[0], x, minread)
    return [step]


@lowers("CONV_2D")
def conv_2d(ctx: Ctx, op: Op) -> list[Step]:
    return _conv_common(ctx, op, depthwise=False)


@lowers("DEPTHWISE_CONV_2D")
def depthwise_conv_2d(ctx: Ctx, op: Op) -> list[Step]:
    return _conv_common(ctx, op, depthwise=True)


@lowers("AVERAGE_POOL_2D", "MAX_POOL_2D")
def pool_2d(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, "int8")
    require(len(x.shape) == 4 and len(y.shape) == 4, op, "input and output must be 4-D (NHWC)")
    require(x.zp == y.zp and x.scale == y.scale, op,
            "input and output quantization must be equal (TFLM's int8 pooling assumes it)")
    nb, ih, iw, ch = x.shape
    _, oh, ow, _ = y.shape
    sh, sw = int(op.options.get("strideH", 1)), int(op.options.get("strideW", 1))
    kh, kw = int(op.options.get("filterHeight", 1)), int(op.options.get("filterWidth", 1))
    pt = _padding(op, ih, kh, sh, 1, oh, 0)
    pl = _padding(op, iw, kw, sw, 1, ow, 1)
    for o in range(oh):
        require(min(kh, ih - (o * sh - pt)) > max(0, pt - o * sh), op, "an empty pooling window")
    for o in range(ow):
        require(min(kw, iw - (o * sw - pl)) > max(0, pl - o * sw), op, "an empty pooling window")
    lo, hi = _act(op, y)
    is_max = op.kind == "MAX_POOL_2D"
    geom = ctx.struct([ih, iw, ch, oh, ow, kh, kw, sh, sw, pt, pl, nb, int(is_max)])
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", [lo, hi]), geom]
    step = Step("pool_s8", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    if nb == 1:
        pix = _window_minread(ih, iw, ch, oh, ow, kh, kw, sh, sw, 1, 1, pt, pl)
        chans = np.arange(ch, dtype=np.int64)
        _overlap(step, y, op.inputs[0], x,
                 np.where(pix[:, :, None] == _BIG, _BIG, pix[:, :, None] + chans))
    return [step]


@lowers("SOFTMAX")
def softmax(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, "int8")
    require(y.zp == -128 and abs(y.scale - 1 / 256) <= 0.001 / 256, op,
            f"{y.describe()} must have scale 1/256 and zero point -128 (TFLM's int8 softmax)")
    depth = x.shape[-1] if x.shape else 1
    rows = x.size // depth
    beta = float(np.float32(op.options.get("beta", 1.0)))
    real = min(beta * x.scale * (1 << (31 - 5)), (1 << 31) - 1.0)
    require(real > 1.0, op, "input scale times beta is too small for TFLM's int8 softmax")
    mult, ls = quant.quantize_multiplier(real)
    diff_min = -quant.calculate_input_radius(5, ls)
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", [mult, ls, diff_min]), rows, depth]
    step = Step("softmax_s8", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    step.overlap[(op.outputs[0], op.inputs[0])] = 0  # each row is read before it is written
    return [step]

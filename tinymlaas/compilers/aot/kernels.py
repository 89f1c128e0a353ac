"""Per-op lowerings: TFLM's Prepare arithmetic, done once at compile time.

Each function checks what it supports (dtype, quantization, shape) and
raises UnsupportedModel naming the op and tensor otherwise; it then returns
the kernel call(s) with their model data. The C side lives in ``runtime/``.
"""

from __future__ import annotations

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op, Tensor
from tinymlaas.compilers.aot.lower import (
    CTYPES,
    SUFFIX,
    Arg,
    Buf,
    Ctx,
    Step,
    Struct,
    lowers,
    require,
    require_dtype,
)


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


def same_quantization(a: Tensor, b: Tensor) -> bool:
    """Both unquantized, or the same per-tensor scale and zero point (raw copies agree)."""
    if not a.quantized or not b.quantized:
        return a.quantized == b.quantized
    return a.zp == b.zp and a.scale == b.scale


#: Raw value range of quantized dtypes.
QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-(1 << 31), (1 << 31) - 1)}


def _act(op: Op, y: Tensor) -> tuple[int, int]:
    act = int(op.options.get("fusedActivationFunction", 0))
    require(act in (0, 1, 2, 3), op, f"fused activation code {act} is not supported "
            "(NONE, RELU, RELU_N1_TO_1, RELU6 are)")
    return quant.activation_range(act, y.scale, y.zp, *QRANGE[y.dtype])


def _act_bounds(op: Op) -> int:
    """Which clamp bounds can be tighter than int8's: structure, from the activation code.

    0: none (NONE), 1: the lower one (RELU), 2: both (RELU_N1_TO_1, RELU6).
    """
    return {0: 0, 1: 1}.get(int(op.options.get("fusedActivationFunction", 0)), 2)


@lowers("FULLY_CONNECTED", dtypes=("int8", "int16", "float32"))
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
    if x.dtype == "int16":
        from tinymlaas.compilers.aot.kernels16 import fully_connected_s16

        return fully_connected_s16(ctx, op, rows, depth, units)
    for t in (x, w, y):
        require_dtype(op, t, "int8")
    if b is not None:
        require_dtype(op, b, "int32")
        require(b.is_const, op, f"{b.describe()} must be constant")
    mults, shifts, per_channel = _per_channel(op, x, w, y, units)
    assert w.data is not None
    return [_fc_step(ctx, op, op.inputs[0], op.outputs[0], w.data.reshape(units, depth), b,
                     mults, shifts, per_channel, rows)]


def _requant_data(ctx: Ctx, mults: list[int], shifts: list[int]) -> list[Arg]:
    """Multipliers, then TFLite's signed shifts split into left and right shifts."""
    d = ctx.data
    return [d.add("m", "int32_t", mults), d.add("l", "int8_t", [max(s, 0) for s in shifts]),
            d.add("r", "int8_t", [max(-s, 0) for s in shifts])]


def _fc_step(ctx: Ctx, op: Op, x_index: int, y_index: int, w: np.ndarray, b: Tensor | None,
             mults: list[int], shifts: list[int], per_channel: bool, rows: int,
             geometry: list[int] | None = None) -> Step:
    """``rows`` inputs of ``depth`` values times ``w`` [units, depth]: gathered (convg_s8,
    as the 1x1 conv of ``geometry`` if given) where that applies, else one fc_s8 call."""
    g = ctx.g
    x, y = g.t(x_index), g.t(y_index)
    units, depth = w.shape
    wsum = w.astype(np.int64).sum(axis=1)
    bias = b.data.astype(np.int64).ravel() if b is not None and b.data is not None else 0
    bias = _wrap32(bias - x.zp * wsum)  # input offset folded: Σw(x-zp) = Σwx - zp·Σw
    gathered = _convg_step(ctx, op, x_index, y_index, w, bias, mults, shifts, geometry or
                           [rows, 1, depth, rows, 1, units, 1, 1, 1, 1, 1, 1, 0, 0, 1], x.zp)
    if gathered is not None:
        return gathered
    lo, hi = _act(op, y)
    d = ctx.data
    args: list[Arg] = [
        Buf(x_index, const=True), Buf(y_index),
        d.add("w", "int8_t", w), d.add("b", "int32_t", bias),
        *_requant_data(ctx, mults, shifts), d.add("q", "int32_t", [y.zp, lo, hi]),
        rows, depth, units, int(per_channel), _act_bounds(op),
    ]
    step = Step("fc_s8", args, [x_index], [y_index], op.describe())
    # The kernel takes rows in pairs (the last odd one alone) and reads a pair's
    # inputs for every unit: an output may overwrite rows before its pair.
    first = np.arange(rows, dtype=np.int64)
    first -= np.where(first < rows - rows % 2, first % 2, 0)
    return _overlap(step, y, x_index, x, np.repeat(first * depth, units))


#: The ARMv7-M column kernel reaches the second output channel's weights with LDRSB's
#: 12-bit offset: windows of up to this many values (padded) take the gathered path.
GATHER_MAX_K = 4092


def _convg_step(ctx: Ctx, op: Op, x_index: int, y_index: int, w: np.ndarray,
                bias: np.ndarray, mults: list[int], shifts: list[int], geometry: list[int],
                pad: int) -> Step | None:
    """A convolution (or several rows of a fully connected layer) through gathered columns,
    when a column buffer of the window's size fits the scratch allowance; else None."""
    g = ctx.g
    x, y = g.t(x_index), g.t(y_index)
    ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, nb = geometry
    k = kh * kw * ic
    kp = -(-k // 4) * 4
    pixels = nb * oh * ow
    if kp > GATHER_MAX_K or 8 * kp > ctx.scratch_bytes or pixels < 4:
        return None
    wp = np.zeros((oc, kp), dtype=np.int8)
    wp[:, :k] = w.reshape(oc, k)
    lo, hi = _act(op, y)
    rq, fast = _requant_per_channel(bias, wp, mults, shifts, y.zp, oc)
    act = 0 if (lo, hi) == (-128, 127) else 1 if hi == 127 else 2
    d = ctx.data
    buf = ctx.scratch((2 * kp,), "int32", f"columns of {op.describe()}")
    geom = ctx.struct([ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, nb, kp,
                       int(fast), act])
    args: list[Arg] = [
        Buf(x_index, const=True), Buf(y_index), d.add("w", "int8_t", wp),
        d.add("b", "int32_t", np.broadcast_to(bias, (oc,))), d.add("rq", "int32_t", rq),
        d.add("q", "int32_t", [pad, y.zp, lo, hi]), Buf(buf), geom,
    ]
    step = Step("convg_s8", args, [x_index], [y_index, buf], op.describe())
    if nb == 1:
        # Four pixels' windows are read before any of their outputs is written.
        pix = _window_minread(ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl).ravel()
        blocks = np.minimum.reduceat(pix, np.arange(0, pixels, 4))
        first = np.full(pixels, _BIG, dtype=np.int64)
        first[::4] = blocks
        minread = np.full((pixels, oc), _BIG, dtype=np.int64)
        minread[:, 0] = first
        _overlap(step, y, x_index, x, minread)
    return step


def _dwg_step(ctx: Ctx, op: Op, w: np.ndarray, bias: np.ndarray, mults: list[int],
              shifts: list[int], geometry: list[int], pad: int) -> Step | None:
    """A depthwise conv through a band of padded input rows (dwg_s8.c), when it has no
    channel multiplier or dilation, channels in fours, a window of at most 3 rows and a band
    within the scratch allowance; else None."""
    g = ctx.g
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = g.t(x_index), g.t(y_index)
    ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, nb = geometry
    bw = (ow - 1) * sw + kw
    if (oc != ic or ic % 4 or dh != 1 or dw != 1 or kh > 3
            or kh * bw * ic > ctx.scratch_bytes):
        return None
    lo, hi = _act(op, y)
    rq, fast = _requant_per_channel(bias, w.reshape(-1, oc).T, mults, shifts, y.zp, oc)
    # Doubled (the fast requantization's operand), each group of four channels as the
    # int16 pairs (c0, c2) (c1, c3) in a word each: what SXTB16 pairs up.
    scale = 2 if fast else 1
    halves = (scale * w.astype(np.int64)).reshape(kh, kw, ic // 4, 4)[..., [0, 2, 1, 3]]
    words = halves.astype(np.int16).reshape(-1).view(np.uint16).astype(np.int64)
    words = (words[0::2] | (words[1::2] << 16)).astype(np.uint32).view(np.int32)
    act = 0 if (lo, hi) == (-128, 127) else 1 if hi == 127 else 2
    d = ctx.data
    band = ctx.scratch((kh * bw * ic // 4,), "int32", f"row band of {op.describe()}")
    geom = ctx.struct([ih, iw, ic, oh, ow, kh, kw, sh, sw, pt, pl, nb, bw, 2 if fast else 0,
                       act])
    args: list[Arg] = [
        Buf(x_index, const=True), Buf(y_index), d.add("w", "uint32_t", words.view(np.uint32)),
        d.add("b", "int32_t", scale * np.broadcast_to(bias, (oc,))), d.add("rq", "int32_t", rq),
        d.add("q", "int32_t", [pad, y.zp, lo, hi]), Buf(band), geom,
    ]
    step = Step("dwg_s8", args, [x_index], [y_index, band], op.describe())
    if nb == 1:
        _band_overlap(step, y, x_index, x, ih, iw * ic, oh, ow * oc, kh, sh, pt)
    return step


def fuse_pointwise_depthwise(ctx: Ctx, steps: list[Step]) -> list[Step]:
    """Merge each gathered 1x1 conv (one batch) whose output only the next step reads, a
    banded depthwise conv, into one pwdw_s8 step: the pointwise output is computed row by
    row into the depthwise band and never stored whole (it is often the largest tensor)."""
    g = ctx.g
    structs = {name: vals for name, _, vals in ctx.structs}
    readers: dict[int, int] = {}
    for s in steps:
        for t in s.reads:
            readers[g.root(t)] = readers.get(g.root(t), 0) + 1
    outputs = {g.root(o) for o in g.outputs}
    out: list[Step] = []
    i = 0
    while i < len(steps):
        pw = steps[i]
        dw = steps[i + 1] if i + 1 < len(steps) else None
        if dw is not None and pw.kernel == "convg_s8" and dw.kernel == "dwg_s8":
            pg, dg = pw.args[7], dw.args[7]
            assert isinstance(pg, Struct) and isinstance(dg, Struct)
            p, q = structs[pg.name], structs[dg.name]
            mid = g.root(pw.writes[0])
            ih, iw, ic, _, _, _, kh, kw, sh, sw, _, _, pt, pl, nb = p[:15]
            band_w, dpl = q[12], q[10]
            if ((kh, kw, sh, sw, pt, pl, nb) == (1, 1, 1, 1, 0, 0, 1) and q[11] == 1
                    and g.root(dw.reads[0]) == mid and readers.get(mid) == 1
                    and mid not in outputs and dpl + iw <= band_w):
                x_index, y_index = pw.reads[0], dw.writes[0]
                step = Step("pwdw_s8", [pw.args[0], dw.args[1], *pw.args[2:], *dw.args[2:]],
                            [x_index], [y_index, pw.writes[1], dw.writes[1]],
                            f"{pw.comment} into {dw.comment}")
                oh, ow, oc, dkh, dsh, dpt = q[3], q[4], q[2], q[5], q[7], q[9]
                out.append(_band_overlap(step, g.t(y_index), x_index, g.t(x_index), ih,
                                         iw * ic, oh, ow * oc, dkh, dsh, dpt))
                i += 2
                continue
        out.append(pw)
        i += 1
    return out


def _band_overlap(step: Step, y: Tensor, x_index: int, x: Tensor, ih: int, in_row: int,
                  oh: int, out_row: int, kh: int, sh: int, pt: int) -> Step:
    """The in-place model of a band kernel: output row oy is written once the input rows
    its window reaches (read once, in order) are in the band."""
    minread = np.full((oh, out_row), _BIG, dtype=np.int64)
    filled = 0
    for oy in range(oh):
        new = [t - pt for t in range(filled, oy * sh + kh) if 0 <= t - pt < ih]
        filled = max(filled, oy * sh + kh)
        if new:
            minread[oy, 0] = new[0] * in_row
    return _overlap(step, y, x_index, x, minread)


def _requant_per_channel(bias: np.ndarray, w: np.ndarray, mults: list[int], shifts: list[int],
                         zp: int, oc: int) -> tuple[np.ndarray, bool]:
    """rqc.c's per-channel requantization data ([oc][3]) and whether it is the fast form;
    w: [oc][k] the weights each channel's accumulator sums."""
    bias = np.broadcast_to(np.asarray(bias, dtype=np.int64), (oc,))
    ms = np.broadcast_to(np.asarray(mults, dtype=np.int64), (oc,))
    ss = np.broadcast_to(np.asarray(shifts, dtype=np.int64), (oc,))
    fast = _fast_requant(bias, w, ms, ss, zp)
    if fast:
        r = -ss
        return np.stack([ms, r, (1 << (r - 1)) + (np.int64(zp) << r)], axis=1), True
    return np.stack([ms, np.maximum(ss, 0), np.maximum(-ss, 0)], axis=1), False


def _fast_requant(bias: np.ndarray, w: np.ndarray, mults: np.ndarray, shifts: np.ndarray,
                  zp: int) -> bool:
    """Whether every channel takes rqc.c's one-multiply requantization: right shifts of
    1..22 (no left shift) and accumulators that provably stay below 2^30 in magnitude
    (|bias| + 128·Σ|w|), so that doubling one cannot overflow and the folded sums fit."""
    if not (np.all(shifts <= -1) and np.all(shifts >= -22) and np.all(mults > 0)):
        return False
    bound = np.abs(bias) + 128 * np.abs(w.astype(np.int64)).sum(axis=1)
    return bool(np.all(bound < (1 << 30))) and abs(zp) <= 128


def float_range(op: Op) -> tuple[float, float]:
    """A float op's fused activation as clamp bounds (the largest floats for none)."""
    act = int(op.options.get("fusedActivationFunction", 0))
    bounds = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
    require(act in bounds, op, f"fused activation code {act} is not supported")
    big = float(np.finfo(np.float32).max)
    lo, hi = bounds[act]
    return max(lo, -big), min(hi, big)


def _fully_connected_f32(ctx: Ctx, op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor,
                         rows: int, depth: int, units: int) -> list[Step]:
    for t in (x, w, y):
        require_dtype(op, t, "float32")
    assert w.data is not None
    bias = b.data if b is not None and b.data is not None else np.zeros(units, np.float32)
    d = ctx.data
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        d.add("w", "float", w.data), d.add("b", "float", bias),
        d.add("q", "float", list(float_range(op))), rows, depth, units,
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


def _skipped_tap_value(op: Op, x: Tensor) -> int:
    """The raw input value a filter tap outside the image stands for: the zero point.

    A dilated conv fused from SPACE_TO_BATCH_ND gets TFLite's meaning of that
    padding (a real zero). TFLM's own int8 SPACE_TO_BATCH_ND pads with an
    output offset it never initialises, so for SAME-padded dilated convs its
    border outputs vary from run to run; inside the image both agree exactly.
    """
    return x.zp


def _conv_common(ctx: Ctx, op: Op, depthwise: bool) -> list[Step]:
    g = ctx.g
    x, w, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    require_dtype(op, w, "float32" if x.dtype == "float32" else "int8")
    require_dtype(op, y, x.dtype)
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
    geometry = [ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, nb]
    if x.dtype == "int16":
        from tinymlaas.compilers.aot.kernels16 import conv_s16

        return conv_s16(ctx, op, depthwise, geometry)
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_more import conv_f32

        return conv_f32(ctx, op, depthwise, geometry)
    if b is not None:
        require_dtype(op, b, "int32")
        require(b.is_const, op, f"{b.describe()} must be constant")
    mults, shifts, per_channel = _per_channel(op, x, w, y, oc)
    assert w.data is not None
    if not depthwise and kh == kw == sh == sw == 1 and pt == pl == 0 and (oh, ow) == (ih, iw):
        # A pointwise conv is a fully connected layer over the pixels (gathered with its
        # image geometry, which a fused depthwise reader needs).
        return [_fc_step(ctx, op, op.inputs[0], op.outputs[0], w.data.reshape(oc, ic), b,
                         mults, shifts, per_channel, nb * oh * ow, geometry)]
    wd = w.data.astype(np.int64)
    wsum = wd.reshape(kh * kw, oc).sum(axis=0) if depthwise else wd.reshape(oc, -1).sum(axis=1)
    bias = b.data.astype(np.int64).ravel() if b is not None and b.data is not None else 0
    bias = _wrap32(bias - x.zp * wsum)
    if depthwise:
        banded = _dwg_step(ctx, op, w.data.reshape(kh, kw, oc), bias, mults, shifts, geometry,
                           _skipped_tap_value(op, x))
        if banded is not None:
            return [banded]
    else:
        gathered = _convg_step(ctx, op, op.inputs[0], op.outputs[0], w.data.reshape(oc, -1),
                               bias, mults, shifts, geometry, _skipped_tap_value(op, x))
        if gathered is not None:
            return [gathered]
    lo, hi = _act(op, y)
    d = ctx.data
    geom = ctx.struct([ih, iw, ic, oh, ow, dm if depthwise else oc, kh, kw, sh, sw, dh, dw,
                       pt, pl, nb, int(per_channel), _act_bounds(op)])
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
        d.add("w", "int8_t", w.data), d.add("b", "int32_t", bias),
        *_requant_data(ctx, mults, shifts),
        d.add("q", "int32_t", [_skipped_tap_value(op, x), y.zp, lo, hi]), geom,
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


@lowers("CONV_2D", dtypes=("int8", "int16", "float32"))
def conv_2d(ctx: Ctx, op: Op) -> list[Step]:
    return _conv_common(ctx, op, depthwise=False)


@lowers("DEPTHWISE_CONV_2D", dtypes=("int8", "int16", "float32"))
def depthwise_conv_2d(ctx: Ctx, op: Op) -> list[Step]:
    return _conv_common(ctx, op, depthwise=True)


@lowers("AVERAGE_POOL_2D", "MAX_POOL_2D", dtypes=("int8", "int16", "float32"))
def pool_2d(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    require(len(x.shape) == 4 and len(y.shape) == 4, op, "input and output must be 4-D (NHWC)")
    require(same_quantization(x, y), op,
            "input and output quantization must be equal (TFLM's pooling assumes it)")
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
    is_max = op.kind == "MAX_POOL_2D"
    geom = ctx.struct([ih, iw, ch, oh, ow, kh, kw, sh, sw, pt, pl, nb, int(is_max)])
    if x.dtype == "float32":
        big = float(np.finfo(np.float32).max)
        q = ctx.data.add("q", "float", [*float_range(op), -big])
    else:
        q = ctx.data.add("q", "int32_t", [*_act(op, y), QRANGE[x.dtype][0]])
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), q, geom]
    kernel = "pool_f32" if x.dtype == "float32" else f"pool.{SUFFIX[x.dtype]}"
    step = Step(kernel, args, [op.inputs[0]], [op.outputs[0]], op.describe())
    if nb == 1:
        pix = _window_minread(ih, iw, ch, oh, ow, kh, kw, sh, sw, 1, 1, pt, pl)
        chans = np.arange(ch, dtype=np.int64)
        _overlap(step, y, op.inputs[0], x,
                 np.where(pix[:, :, None] == _BIG, _BIG, pix[:, :, None] + chans))
    return [step]


@lowers("SOFTMAX", dtypes=("int8->int8", "int8->int16", "int16->int16", "float32->float32"),
        conversion=True)
def softmax(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    if x.dtype in ("int16", "float32"):
        from tinymlaas.compilers.aot.kernels_extra import softmax_s16_f32

        return softmax_s16_f32(ctx, op)
    require_dtype(op, y, "int8", "int16")
    bits = 8 * y.itemsize
    require(y.zp == -(1 << (bits - 1)) and abs(y.scale * (1 << bits) - 1) <= 0.001, op,
            f"{y.describe()} must have scale 1/{1 << bits} and zero point {-(1 << (bits - 1))}"
            " (TFLM's softmax of int8)")
    depth = x.shape[-1] if x.shape else 1
    rows = x.size // depth
    beta = float(np.float32(op.options.get("beta", 1.0)))
    real = min(beta * x.scale * (1 << (31 - 5)), (1 << 31) - 1.0)
    require(real > 1.0, op, "input scale times beta is too small for TFLM's int8 softmax")
    mult, ls = quant.quantize_multiplier(real)
    diff_min = -quant.calculate_input_radius(5, ls)
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", [mult, ls, diff_min]), rows, depth, bits]
    step = Step("softmax_s8", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    if bits == 8:  # each row is read before it is written
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


# --- elementwise ------------------------------------------------------------

_INT8 = np.arange(-128, 128, dtype=np.int64)


def _lut_order(values: list[int] | np.ndarray) -> np.ndarray:
    """Table indexed by the input byte: entries for 0..127, then -128..-1."""
    v = np.asarray(values)
    return np.concatenate([v[128:], v[:128]])


def _unary(ctx: Ctx, op: Op, kernel: str, table: np.ndarray, ctype: str) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require(x.size == y.size, op, f"{x.describe()} and {y.describe()} differ in size")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("t", ctype, _lut_order(table)), x.size]
    step = Step(kernel, args, [op.inputs[0]], [op.outputs[0]], op.describe())
    if x.itemsize == y.itemsize:
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


def _frexp_multiplier(real: float) -> tuple[int, int]:
    """TFLM's logistic/tanh Prepare: frexp and a rounded Q31 mantissa (no renormalising)."""
    import math

    q, shift = math.frexp(real)
    return quant.wrap32(quant.round_away(q * (1 << 31))), shift


@lowers("LOGISTIC", "TANH", dtypes=("int8", "int16", "float32"))
def logistic_tanh(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype in ("int16", "float32"):
        from tinymlaas.compilers.aot.kernels_rnn import logistic_tanh16

        return logistic_tanh16(ctx, op)
    for t in (x, y):
        require_dtype(op, t, "int8")
    if op.kind == "LOGISTIC":
        require(y.zp == -128, op, f"{y.describe()} must have zero point -128 (TFLM)")
    mult, shift = _frexp_multiplier(x.scale * float(1 << (31 - 4)))
    radius = quant.calculate_input_radius(4, shift, 31)
    table = []
    for v in _INT8.tolist():
        d = v - x.zp
        if d <= -radius:
            table.append(-128)
        elif d >= radius:
            table.append(127)
        else:
            q4 = quant.mbqm(d, mult, shift)
            if op.kind == "LOGISTIC":
                r = quant.rdbpot(quant.logistic(q4, 4), 31 - 8) - 128
            else:
                r = quant.rdbpot(quant.tanh(q4, 4), 31 - 7)
            table.append(max(-128, min(127, r)))
    return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")


@lowers("RELU", "RELU6", dtypes=("int8", "float32"))
def relu(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_more import unary_f32

        return unary_f32(ctx, op)
    for t in (x, y):
        require_dtype(op, t, "int8")
    if op.kind == "RELU6":  # TFLM clamps the raw values in the input's quantization
        six = max(-128, min(127, quant.round_away(
            float(np.float32(6.0) / np.float32(x.scale))) + x.zp))
        table = [six if v > six else x.zp if v < x.zp else v for v in _INT8.tolist()]
    else:
        mult, shift = quant.quantize_multiplier(float(x.scale) / float(y.scale))
        lo = max(-128, y.zp)
        table = [max(lo, min(127, y.zp + quant.mbqm(v - x.zp, mult, shift)))
                 for v in _INT8.tolist()]
    return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")


@lowers("QUANTIZE", dtypes=("float32->int8", "float32->int16", "int8->int8", "int16->int8", "int8->int16",
                             "int16->int16", "int16->int32", "int32->int16"), conversion=True)
def quantize(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype != "int8" or y.dtype != "int8":
        if x.dtype != "float32":
            return _requantize(ctx, op, x, y)
        require_dtype(op, y, "int8", "int16")
    if x.dtype == "float32":
        args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                           ctx.data.add("q", "float", [y.scale, float(y.zp)]), x.size,
                           8 * y.itemsize]
        return [Step("quantize_f32", args, [op.inputs[0]], [op.outputs[0]], op.describe())]
    mult, shift = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    table = [max(-128, min(127, quant.mbqm(v - x.zp, mult, shift) + y.zp))
             for v in _INT8.tolist()]
    return _unary(ctx, op, "lut_s8", np.array(table), "int8_t")


def _requantize(ctx: Ctx, op: Op, x: Tensor, y: Tensor) -> list[Step]:
    """TFLM's Requantize between integer types: (x - zp_in) rescaled, + zp_out, clamped."""
    mult, shift = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", [mult, shift, x.zp, y.zp]), x.size,
                       8 * y.itemsize]
    step = Step(f"requant.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                op.describe())
    if y.itemsize <= x.itemsize:
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


@lowers("DEQUANTIZE", dtypes=("int8->float32", "int16->float32"), conversion=True)
def dequantize(ctx: Ctx, op: Op) -> list[Step]:
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    require_dtype(op, y, "float32")
    if x.dtype == "int16":
        args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                           ctx.data.add("q", "float", [x.scale, float(x.zp)]), x.size]
        return [Step("dequant_s16", args, [op.inputs[0]], [op.outputs[0]], op.describe())]
    table = (np.float64(x.scale) * (_INT8 - x.zp)).astype(np.float32)
    return _unary(ctx, op, "lut_f32", table, "float")


def _operand(ctx: Ctx, index: int) -> Arg:
    """A run-time tensor, or a constant operand placed in the model data."""
    t = ctx.g.t(index)
    if t.is_const:
        assert t.data is not None
        return ctx.data.add("c", CTYPES[t.dtype], t.data)
    return Buf(index, const=True)


def _broadcast(op: Op, a: Tensor, b: Tensor, y: Tensor) -> list[int]:
    """Loop sizes and element strides (0 where broadcast) for a 4-D walk of ``y``."""
    require(len(y.shape) <= 4, op, f"{y.describe()} has more than 4 dimensions")
    out = [1] * (4 - len(y.shape)) + list(y.shape)

    def strides(t: Tensor) -> list[int]:
        require(len(t.shape) <= 4, op, f"{t.describe()} has more than 4 dimensions")
        shape = [1] * (4 - len(t.shape)) + list(t.shape)
        st, acc = [0] * 4, 1
        for d in range(3, -1, -1):
            require(shape[d] in (1, out[d]), op, f"{t.describe()} does not broadcast to "
                    f"{y.describe()}")
            st[d] = acc if shape[d] == out[d] and out[d] > 1 else 0
            acc *= shape[d]
        return st
    return out + strides(a) + strides(b)


@lowers("ADD", "SUB", "MUL", dtypes=("int8", "int16", "int32", "float32"))
def add_sub_mul(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    a, b, y = g.t(op.inputs[0]), g.t(op.inputs[1]), g.t(op.outputs[0])
    if a.dtype in ("float32", "int32"):
        from tinymlaas.compilers.aot.kernels_more import binary

        return binary(ctx, op)
    for t in (a, b, y):
        require_dtype(op, t, a.dtype)
    lo, hi = _act(op, y)
    if op.kind in ("ADD", "SUB"):  # TFLM's Prepare, in double
        twice = 2 * float(max(np.float32(a.scale), np.float32(b.scale)))
        ra, rb = float(a.scale) / twice, float(b.scale) / twice
        ro = twice / ((1 << (15 if y.dtype == "int16" else 20)) * float(y.scale))
    if op.kind in ("ADD", "SUB"):
        ma, sa = quant.quantize_multiplier(ra)
        mb, sb = quant.quantize_multiplier(rb)
        mo, so = quant.quantize_multiplier(ro)
        q = [-a.zp, -b.zp, ma, sa, mb, sb, mo, so, y.zp, lo, hi,
             15 if y.dtype == "int16" else 20, int(op.kind == "SUB")]
        kernel = "addsub"
    else:
        if a.dtype == "int16":
            require(a.zp == b.zp == y.zp == 0, op, "int16 MUL needs zero points 0 (TFLM)")
        mo, so = quant.quantize_multiplier(float(a.scale) * float(b.scale) / float(y.scale))
        q = [-a.zp, -b.zp, mo, so, y.zp, lo, hi]
        kernel = "mulq"
    geom = ctx.struct(_broadcast(op, a, b, y), "int32_t")
    args: list[Arg] = [_operand(ctx, op.inputs[0]), _operand(ctx, op.inputs[1]),
                       Buf(op.outputs[0]), ctx.data.add("q", "int32_t", q), geom]
    reads = [i for i in op.inputs[:2] if not g.t(i).is_const]
    step = Step(f"{kernel}.{SUFFIX[y.dtype]}", args, reads, [op.outputs[0]], op.describe())
    for i in reads:
        if g.t(i).size == y.size:
            step.overlap[(op.outputs[0], i)] = 0
    return [step]


# --- data movement ----------------------------------------------------------

def _pointer_list(ctx: Ctx, indices: list[int]) -> list[Buf | str]:
    """Inputs as pointers: run-time tensors, or constants placed in the model data."""
    items: list[Buf | str] = []
    for i in indices:
        t = ctx.g.t(i)
        if t.is_const:
            assert t.data is not None
            items.append(ctx.data.add("c", CTYPES[t.dtype], t.data))
        else:
            items.append(Buf(i, const=True))
    return items


@lowers("CONCATENATION", "PACK", dtypes=("int8", "int16", "int32", "float32"))
def concatenation(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    y = g.t(op.outputs[0])
    xs = [g.t(i) for i in op.inputs]
    for t in [*xs, y]:
        require_dtype(op, t, y.dtype)
        require(same_quantization(t, y), op,
                f"{t.describe()} is quantized differently from the output "
                "(TFLM's concatenation copies raw values)")
    axis = int(op.options.get("axis", 0))
    rank = len(y.shape)
    axis = axis + rank if axis < 0 else axis
    if op.kind == "CONCATENATION":
        act = int(op.options.get("fusedActivationFunction", 0))
        require(act == 0, op, "a fused activation on CONCATENATION is not supported")
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = [t.size // outer * t.itemsize for t in xs]
    require(sum(chunks) * outer == y.nbytes, op, "input sizes do not add up to the output")
    from tinymlaas.compilers.aot.lower import PtrList
    args: list[Arg] = [Buf(op.outputs[0]), PtrList(_pointer_list(ctx, op.inputs)),
                       ctx.struct(chunks, "int32_t"), len(xs), outer]
    reads = [i for i in op.inputs if not g.t(i).is_const]
    return [Step("concat", args, reads, [op.outputs[0]], op.describe())]


@lowers("STRIDED_SLICE", dtypes=("int8", "int16", "int32", "float32"))
def strided_slice(ctx: Ctx, op: Op) -> list[Step]:
    from tinymlaas.compilers.aot.graph import _strided_slice

    g = ctx.g
    x = g.t(op.inputs[0])
    require(not op.options.get("offset"), op, "the 'offset' form of STRIDED_SLICE is not "
            "supported")
    consts = [g.t(i).data for i in op.inputs[1:]]
    require(all(c is not None for c in consts), op, "begin, end and strides must be constant")
    begin, end = consts[0], consts[1]
    assert begin is not None and end is not None
    strides = consts[2] if len(consts) > 2 and consts[2] is not None else np.ones_like(begin)
    index = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    picked = _strided_slice(index, begin, end, strides, op.options)
    return [gather_step(ctx, op, op.inputs[0], op.outputs[0], picked)]


def gather_step(ctx: Ctx, op: Op, x_index: int, y_index: int, picked: np.ndarray) -> Step:
    """Copy ``x.flat[picked]`` (in ``picked``'s order) into the output, for ``picked`` an
    affine array: slices, transposes, strided slices, depth/space rearrangements."""
    x = ctx.g.t(x_index)
    dims: list[tuple[int, int]] = []  # (size, element stride), outermost first
    if picked.size:
        for d in range(picked.ndim):
            if picked.shape[d] > 1:
                at = [0] * picked.ndim
                at[d] = 1
                dims.append((picked.shape[d], int(picked[tuple(at)] - picked.flat[0])))
    merged: list[tuple[int, int]] = []
    for n, st in dims:  # a dimension that continues the next-outer one joins it
        if merged and merged[-1][1] == st * n:
            merged[-1] = (merged[-1][0] * n, st)
        else:
            merged.append((n, st))
    require(len(merged) <= 6, op, "more than 6 independent dimensions are not supported")
    merged = [(1, 0)] * (6 - len(merged)) + merged
    start = int(picked.flat[0]) if picked.size else 0
    geom = ctx.struct([x.itemsize, start * x.itemsize, *(n for n, _ in merged),
                       *(st * x.itemsize for _, st in merged)], "int32_t")
    args: list[Arg] = [Buf(x_index, const=True), Buf(y_index), geom]
    return Step("gather", args, [x_index], [y_index], op.describe())


@lowers("PAD", "PADV2", dtypes=("int8", "int16", "float32"))
def pad(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    require_dtype(op, y, x.dtype)
    require(x.zp == y.zp and (x.scale == y.scale or not x.quantized), op,
            "input and output quantization must be equal")
    pads = g.t(op.inputs[1]).data
    require(pads is not None, op, "the paddings must be constant")
    assert pads is not None
    pads = np.asarray(pads).reshape(-1, 2)
    require(len(x.shape) <= 4, op, f"{x.describe()} has more than 4 dimensions")
    value: float = y.zp if x.dtype == "int8" else 0  # TFLM: int16 pads with 0
    if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = g.t(op.inputs[2]).data
        require(cv is not None, op, "the constant value must be constant")
        assert cv is not None
        value = np.asarray(cv).ravel()[0]
    lead = 4 - len(x.shape)
    ins = [1] * lead + list(x.shape)
    outs = [1] * lead + list(y.shape)
    before = [0] * lead + [int(p[0]) for p in pads]
    geom = ctx.struct([*outs, *ins, *before], "int32_t")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("v", CTYPES[x.dtype], [value]), geom]
    return [Step(f"pad.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                 op.describe())]


@lowers("MEAN", dtypes=("int8", "int16", "float32"))
def mean(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    if x.dtype == "float32":
        from tinymlaas.compilers.aot.kernels_more import reduction

        return reduction(ctx, op, 2)
    for t in (x, y):
        require_dtype(op, t, x.dtype)
    axes = g.t(op.inputs[1]).data
    require(axes is not None, op, "the axes must be constant")
    assert axes is not None
    rank = len(x.shape)
    axes_set = sorted({int(a) + rank if int(a) < 0 else int(a) for a in np.ravel(axes)})
    nonunit = [d for d in range(rank) if x.shape[d] > 1]
    reduced = [d for d in nonunit if d in axes_set]
    if reduced:
        pos = [nonunit.index(d) for d in reduced]
        require(pos == list(range(pos[0], pos[0] + len(pos))), op,
                "only a contiguous block of reduced axes is supported")
        first, last = reduced[0], reduced[-1]
    else:
        first, last = 0, -1
    outer = int(np.prod(x.shape[:first], dtype=np.int64)) if reduced else x.size
    n = int(np.prod([x.shape[d] for d in axes_set], dtype=np.int64)) if axes_set else 1
    inner = int(np.prod(x.shape[last + 1:], dtype=np.int64)) if reduced else 1
    require(outer * inner == y.size, op, f"{y.describe()} does not match the reduction")
    # TFLM requantizes with 1/n folded into the multiplier, even when input and
    # output are quantized alike.
    mult, shift = quant.quantize_multiplier(float(x.scale) / float(y.scale))
    s = min(n.bit_length() - 1, 32, 31 + shift)
    mult = ((mult << s) // n) if s >= 0 else quant.tdiv(mult >> -s, n)
    q = [quant.wrap32(-x.zp * n), mult, shift - s, y.zp, *QRANGE[y.dtype]]
    geom = ctx.struct([outer, n, inner], "int32_t")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]),
                       ctx.data.add("q", "int32_t", q), geom]
    return [Step(f"mean.{SUFFIX[x.dtype]}", args, [op.inputs[0]], [op.outputs[0]],
                 op.describe())]

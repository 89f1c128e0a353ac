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

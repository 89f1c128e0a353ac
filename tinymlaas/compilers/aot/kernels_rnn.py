"""Recurrent layers and TFLM's int16 sigmoid/tanh: UNIDIRECTIONAL_SEQUENCE_LSTM (int8 and
16x8, as TensorFlow converts a Keras LSTM, hidden and cell state kept in the arena between
invokes) and int16 LOGISTIC and TANH.

TFLM computes int16 sigmoid and tanh by interpolating one table of sigmoid in 0.16
fixed point (:data:`SIGMOID_TABLE`); the LSTM kernel (``lstm_eval``) builds every gate
from two fully connected layers into Q3.12 and those functions into Q0.15. The
multipliers below are its Prepare's, computed once here.
"""

from __future__ import annotations

import math

import numpy as np

from tinymlaas.compilers.aot import quant
from tinymlaas.compilers.aot.graph import Op, Tensor
from tinymlaas.compilers.aot.lower import (
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

#: sigmoid(i/24) in 0.16 fixed point as TFLM's int16 kernels tabulate it (its entries are
#: not all the nearest integers, so they are data, checked against TFLM by the tests).
SIGMOID_TABLE = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
)

_F32 = np.float32
#: Q3.12 (gate pre-activations) and Q0.15 (gate outputs) as float32 scales.
_Q12, _Q15 = 2.0 ** -12, 2.0 ** -15


def sigmoid_table(ctx: Ctx) -> str:
    """The table in the model data, once per model."""
    for m in ctx.data.members:
        if m.name.startswith("sig"):
            return f"d->{m.name}"
    return ctx.data.add("sig", "uint16_t", list(SIGMOID_TABLE))


def checked_log2(x: float) -> tuple[int, bool]:
    """TFLite's CheckedLog2 in float32: log2 rounded half away, and whether x is a power of
    two."""
    v = _F32(math.log(_F32(x))) * (_F32(1.0) / _F32(math.log(_F32(2.0))))
    r = quant.round_away(float(v))
    return r, abs(float(v) - r) < 1e-3


def _pot_input(shift: int) -> list[int]:
    """A power-of-two input scale: TFLM multiplies by 3 << shift (or by 3 and shifts right
    with rounding for a negative shift)."""
    if shift >= 0:
        return [3 << shift, 0, 0]
    return [3, -shift, 1 << (-shift - 1)]


def logistic_tanh16(ctx: Ctx, op: Op) -> list[Step]:
    """int16 LOGISTIC/TANH: zero points 0, output scale 2^-15, input rescaled to the
    table's 1/(3·4096) steps (exactly for power-of-two input scales); float32 with the C
    library's exp and tanh, as TFLM."""
    x, y = ctx.g.t(op.inputs[0]), ctx.g.t(op.outputs[0])
    if x.dtype == "float32":
        require_dtype(op, y, "float32")
        args0: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), x.size,
                            int(op.kind == "TANH")]
        step = Step("act_f32", args0, [op.inputs[0]], [op.outputs[0]], op.describe())
        step.overlap[(op.outputs[0], op.inputs[0])] = 0
        return [step]
    require_dtype(op, y, "int16")
    require(x.zp == 0 and y.zp == 0, op, "int16 input and output need zero point 0 (TFLM)")
    out_log2, out_pot = checked_log2(y.scale)
    require(out_pot and out_log2 == -15, op, f"{y.describe()} must have scale 2^-15 (TFLM)")
    log2, pot = checked_log2(x.scale)
    shift = 12 + log2
    pot = pot and shift in ((0, 1) if op.kind == "TANH" else (0,))
    if pot:
        q = _pot_input(shift)
    else:
        mult, shift = float(x.scale) * 4096.0 * 3.0, 0
        while mult <= 32767.0 / 2.0 and shift <= 30:
            shift += 1
            mult *= 2.0
        q = [int(mult), shift, (1 << (shift - 1)) if shift > 0 else 0]
    require(q[0] <= 32767, op, f"{x.describe()}: its scale is too large for TFLM's int16 "
            f"{op.kind.lower()}")
    args: list[Arg] = [Buf(op.inputs[0], const=True), Buf(op.outputs[0]), sigmoid_table(ctx),
                       ctx.data.add("q", "int32_t", q), x.size, int(op.kind == "TANH")]
    step = Step("logtanh16", args, [op.inputs[0]], [op.outputs[0]], op.describe())
    step.overlap[(op.outputs[0], op.inputs[0])] = 0
    return [step]


#: Input tensors of the standard LSTM TFLM runs: input weights (1-4), recurrent weights
#: (5-8), biases (12-15), in the gate order input, forget, cell, output.
_IN_W, _REC_W, _BIAS = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
_HIDDEN, _CELL = 18, 19
_ACT_TANH, _ACT_SIGMOID = 4, 6


def _weights(ctx: Ctx, op: Op, index: int) -> Tensor:
    w = ctx.g.t(index)
    require(w.is_const and w.data is not None, op, f"{w.describe()} must be constant")
    if ctx.g.t(op.inputs[0]).dtype == "float32":
        require_dtype(op, w, "float32")
        return w
    require_dtype(op, w, "int8")
    require(w.scales is not None and len(w.scales) == 1, op,
            f"{w.describe()} is quantized per channel; TFLM's LSTM takes one scale per tensor")
    require(w.zp == 0, op, f"{w.describe()} must have zero point 0")
    return w


def _fc_multiplier(x: Tensor, w: Tensor) -> list[int]:
    """GetQuantizedConvolutionMultipler: the scales' product in float32, then double."""
    m, s = quant.quantize_multiplier(float(_F32(x.scale) * _F32(w.scale)) / _Q12)
    return [m, s]


def _mul_multiplier(a: float, b: float, out: float) -> list[int]:
    m, s = quant.quantize_multiplier(float(_F32(a)) * float(_F32(b)) / float(_F32(out)))
    return [m, s]


@lowers("UNIDIRECTIONAL_SEQUENCE_LSTM", dtypes=("int8", "int16", "float32"))
def unidirectional_sequence_lstm(ctx: Ctx, op: Op) -> list[Step]:
    g = ctx.g
    require(len(op.inputs) == 24, op, "TFLM's LSTM takes 24 inputs")
    x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
    h, c = g.t(op.inputs[_HIDDEN]), g.t(op.inputs[_CELL])
    for k in (*range(9, 12), 16, 17, *range(20, 24)):
        require(op.inputs[k] < 0, op, "peephole, projection and layer-norm LSTMs are not "
                "supported (TFLM runs the standard LSTM only)")
    for k in (*_IN_W, *_REC_W, *_BIAS):
        require(op.inputs[k] >= 0, op, "every gate needs its weights and bias (TFLM)")
    require_dtype(op, y, x.dtype)
    require_dtype(op, h, x.dtype)
    require_dtype(op, c, "float32" if x.dtype == "float32" else "int16")
    require(h.is_variable and c.is_variable, op, "hidden and cell state must be variables")
    require(len(x.shape) == 3 and len(y.shape) == 3, op, "input and output must be 3-D")
    tm = bool(op.options.get("timeMajor", False))
    nt, nb = (x.shape[0], x.shape[1]) if tm else (x.shape[1], x.shape[0])
    ni = x.shape[2]
    w_in = [_weights(ctx, op, op.inputs[k]) for k in _IN_W]
    w_rec = [_weights(ctx, op, op.inputs[k]) for k in _REC_W]
    ns = w_in[0].shape[0]
    require(all(w.shape == (ns, ni) for w in w_in) and
            all(w.shape == (ns, ns) for w in w_rec), op, "the weights do not match the shapes")
    require(h.size == c.size == nb * ns and y.shape[2] == ns, op,
            "the state and output do not match the shapes")
    act = int(op.options.get("fusedActivationFunction", _ACT_TANH))
    require(act in (_ACT_TANH, _ACT_SIGMOID), op, "the cell gate's activation must be tanh "
            "or sigmoid (TFLM)")
    geom = ctx.struct([nb, nt, ni, ns, int(tm), int(act == _ACT_TANH), int(x.dtype == "int8")],
                      "int32_t")
    if x.dtype == "float32":
        return _lstm_f32(ctx, op, w_in + w_rec, ns, geom)
    wide = x.dtype == "int16"
    biases = []
    for k in _BIAS:
        b = g.t(op.inputs[k])
        require_dtype(op, b, "int64" if wide else "int32")
        require(b.is_const and b.data is not None, op, f"{b.describe()} must be constant")
        assert b.data is not None
        require(b.data.size == ns, op, f"{b.describe()} must hold {ns} values")
        biases.append(b.data.astype(np.int64).ravel())
    q: list[int] = []
    for wi, wr in zip(w_in, w_rec, strict=True):
        q += _fc_multiplier(x, wi) + _fc_multiplier(h, wr)
    q += _mul_multiplier(_Q15, c.scale, c.scale)
    q += _mul_multiplier(_Q15, _Q15, c.scale)
    q += _mul_multiplier(_Q15, _Q15, h.scale)
    power, _ = checked_log2(c.scale)  # TFLM takes the rounded log2 either way
    tanh_shift = 15 + power - 3
    require(-31 < tanh_shift < 16, op, f"{c.describe()}: its scale is out of TFLM's range")
    clip = float(_F32(op.options.get("cellClip", 0.0)))
    qclip = -1
    if clip > 0:
        qclip = int(min(max(clip / float(_F32(c.scale)), -32768.0), 32767.0))
    q += [-x.zp, -h.zp, h.zp, *_pot_input(tanh_shift), qclip]
    weights = np.concatenate([w.data.ravel() for w in (*w_in, *w_rec) if w.data is not None])
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]), Buf(op.inputs[_HIDDEN]),
        Buf(op.inputs[_CELL]), ctx.data.add("w", "int8_t", weights),
        ctx.data.add("b", "int64_t", np.concatenate(biases)), ctx.data.add("q", "int32_t", q),
        sigmoid_table(ctx), geom,
    ]
    return [Step(f"lstm.{SUFFIX[x.dtype]}", args,
                 [op.inputs[0], op.inputs[_HIDDEN], op.inputs[_CELL]], [op.outputs[0]],
                 op.describe())]


def _lstm_f32(ctx: Ctx, op: Op, weights: list[Tensor], ns: int, geom: Struct) -> list[Step]:
    biases = []
    for k in _BIAS:
        b = ctx.g.t(op.inputs[k])
        require_dtype(op, b, "float32")
        require(b.is_const and b.data is not None and b.data.size == ns, op,
                f"{b.describe()} must be {ns} constant values")
        assert b.data is not None
        biases.append(b.data.ravel())
    clip = float(_F32(op.options.get("cellClip", 0.0)))
    args: list[Arg] = [
        Buf(op.inputs[0], const=True), Buf(op.outputs[0]), Buf(op.inputs[_HIDDEN]),
        Buf(op.inputs[_CELL]),
        ctx.data.add("w", "float", np.concatenate([np.ravel(w.data) for w in weights
                                                   if w.data is not None])),
        ctx.data.add("b", "float", np.concatenate(biases)),
        ctx.data.add("q", "float", [max(clip, 0.0)]), geom,
    ]
    return [Step("lstm_f32", args, [op.inputs[0], op.inputs[_HIDDEN], op.inputs[_CELL]],
                 [op.outputs[0]], op.describe())]

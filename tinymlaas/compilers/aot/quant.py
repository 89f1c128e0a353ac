"""TFLite's integer arithmetic, computed at compile time.

The generated C repeats the run-time half of TFLM's reference kernels; this
module is the compile-time half: multipliers and shifts as TFLM's Prepare
derives them from the float32 scales, activation ranges, and the
gemmlowp fixed-point functions used to fill int8 lookup tables (an int8 →
int8 elementwise op is fully described by 256 bytes). Python integers
emulate C's int32/int64 behaviour exactly where it matters.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_away(x: float) -> int:
    """std::round: halves go away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def wrap32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def tdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m ≈ q · 2^(shift-31), q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return tdiv(ab + nudge, 1 << 31)


def rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: round half away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's (double-rounding) MultiplyByQuantizedMultiplier."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rdbpot(srdhm(wrap32(x * (1 << left)), m), right)


def quantize_f32(scale: float, zero_point: int, f: float) -> int:
    """TFLite's Quantize() used for activation ranges: float32 division, std::round."""
    q = np.float32(f) / np.float32(scale)
    return zero_point + round_away(float(q))


def activation_range(act: int, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation code."""
    if act == 1:  # RELU
        return max(qmin, quantize_f32(scale, zero_point, 0.0)), qmax
    if act == 2:  # RELU_N1_TO_1
        return (max(qmin, quantize_f32(scale, zero_point, -1.0)),
                min(qmax, quantize_f32(scale, zero_point, 1.0)))
    if act == 3:  # RELU6
        return (max(qmin, quantize_f32(scale, zero_point, 0.0)),
                min(qmax, quantize_f32(scale, zero_point, 6.0)))
    return qmin, qmax


# --- gemmlowp fixed point (int32 raw values) -------------------------------

def _sat(x: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, x))


def _shl_sat(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT for a positive exponent."""
    return _sat(x * (1 << exponent))


def rescale(x: int, src_bits: int, dst_bits: int) -> int:
    e = src_bits - dst_bits
    if e > 0:
        return _shl_sat(x, e)
    if e < 0:
        return rdbpot(x, -e)
    return x


def _one(bits: int) -> int:
    return INT32_MAX if bits == 0 else 1 << (31 - bits)


def _const_pot(bits: int, exponent: int) -> int:
    return 1 << (31 - bits + exponent)


def rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return tdiv(s + (1 if s >= 0 else -1), 2)


def _exp_quarter(a: int) -> int:
    """exp on [-1/4, 0), Q0.31 in and out."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + _const_pot(0, -3))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    t = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + t)))


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, bits: int) -> int:
    """gemmlowp exp_on_negative_values: Q(bits) input ≤ 0, Q0.31 result."""
    frac = 31 - bits
    one_quarter = _const_pot(bits, -2)
    mask = one_quarter - 1
    a_mod = wrap32((a & mask) - one_quarter)
    result = _exp_quarter(rescale(a_mod, bits, 0))
    remainder = wrap32(a_mod - a)
    for exponent, mult in _BARREL:
        if bits > exponent:
            shift = frac + exponent
            if remainder & (1 << shift):
                result = srdhm(result, mult)
    if bits > 5:
        clamp = -(1 << (36 - bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = _one(0)
    return result


def _newton_reciprocal(a: int) -> int:
    """The Newton-Raphson core shared by 1/(1+x) and (1-x)/(1+x), Q2.29 result."""
    half_denominator = rounding_half_sum(a, _one(0))
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        hdx = srdhm(half_denominator, x)
        one_minus = wrap32(_one(2) - hdx)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x(a: int) -> int:
    x = _newton_reciprocal(a)
    return rescale(x, 1, 0)  # ExactMulByPot<-1> turns Q2 into Q1, then Rescale<0>


def one_minus_x_over_one_plus_x(a: int) -> int:
    x = _newton_reciprocal(a)
    return rescale(wrap32(x - _one(2)), 2, 0)


def logistic(a: int, bits: int) -> int:
    """gemmlowp logistic, Q(bits) in, Q0.31 out."""
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else wrap32(-a)
    pos = one_over_one_plus_x(exp_on_negative_values(wrap32(-abs_a), bits))
    return pos if a > 0 else wrap32(_one(0) - pos)


def tanh(a: int, bits: int) -> int:
    """gemmlowp tanh, Q(bits) in, Q0.31 out."""
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    # ExactMulByPot<1>: same raw value, one more integer bit.
    t = one_minus_x_over_one_plus_x(exp_on_negative_values(n, bits + 1))
    return wrap32(-t) if a < 0 else t


def calculate_input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    v = ((1 << integer_bits) - 1) * (1 << (total_bits - integer_bits)) / (1 << left_shift)
    return math.floor(v)

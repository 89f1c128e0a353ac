"""The per-core convolution kernels (issue 16): gathered columns, banded depthwise, the fused
pointwise-depthwise pair and the folded requantization, against TFLM on the host (each core's
data flow in portable C) and on emulated Cortex-M0, M3 and M4 boards (their inline asm)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import assert_bit_exact, convert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinymlaas.builders.local import LocalBuilder
from tinymlaas.compilers.aot import SCRATCH_BYTES, compile_source, quant
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm
from tinymlaas.emulators.qemu import QemuEmulator
from tinymlaas.services.compile import compile_model
from tinymlaas.services.mcu_device import McuDevice
from tinymlaas.targets import get_board

HYPOTHESIS = settings(max_examples=6, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rqc_library(tmp: Path, name: str, *defines: str) -> Any:
    runtime = resources.files("tinymlaas.compilers.aot").joinpath("runtime")
    src = tmp / f"{name}.c"
    src.write_text("#include <stdint.h>\n" + "".join(
        runtime.joinpath(f"{f}.c").read_text() for f in ("base", "mbqm", "rqc")) + """
void run(const int32_t *acc, const int32_t *rq, int32_t fast, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        out[i] = aot_rqc(acc[i], rq + 3 * i, fast, 0, -128, 127, 0);
    }
}
""")
    lib = tmp / f"lib{name}.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                    "-fPIC", "-shared", *defines, str(src), "-o", str(lib)], check=True)
    fn = ctypes.CDLL(str(lib)).run
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p,
                   ctypes.c_int32]
    return fn


def test_folded_requantization_is_tflites(tmp_path: Path) -> None:
    """(h + H - (acc < 0)) >> r with h the rounded doubled high product equals TFLite's
    double-rounding MultiplyByQuantizedMultiplier + zero point, clamped, for every
    accumulator below 2^30 in magnitude (doubled or not), on each core's data flow."""
    rng = np.random.default_rng(11)
    n = 30_000
    acc = np.concatenate([rng.integers(-2**30 + 1, 2**30, n), rng.integers(-2**16, 2**16, n),
                          np.array([0, 1, -1, 2**30 - 1, -2**30 + 1], np.int64)])
    m = rng.integers(2**30, 2**31, acc.size)
    m[:50] = 2**30
    r = rng.integers(1, 23, acc.size)
    zp = rng.integers(-128, 128, acc.size)
    # Accumulators at the rounding boundaries of the high product and of the shift.
    for i in range(2 * n, acc.size):
        r[i] = 1 + i % 22
    want = np.array([max(-128, min(127, quant.mbqm(int(a), int(b), -int(c)) + int(z)))
                     for a, b, c, z in zip(acc, m, r, zp, strict=True)], np.int8)
    rq = np.ascontiguousarray(np.stack([m, r, (1 << (r - 1)) + (zp << r)], axis=1), np.int32)
    for name, defines in (("pairs", ()), ("dsp", ("-DAOT_EMULATE_DSP",)),
                          ("v6m", ("-DAOT_MUL32_ONLY",))):
        fn = _rqc_library(tmp_path, name, *defines)
        for fast, values in ((1, acc), (2, 2 * acc)):
            out = np.zeros(acc.size, np.int8)
            a = np.ascontiguousarray(values, np.int32)
            fn(a.ctypes.data, rq.ctypes.data, fast, out.ctypes.data, acc.size)
            bad = np.flatnonzero(out != want)
            assert bad.size == 0, (name, fast, [(int(acc[i]), int(m[i]), int(r[i]), int(zp[i]),
                                                 int(out[i]), int(want[i])) for i in bad[:4]])


@st.composite
def wide_conv(draw: Any) -> dict[str, Any]:
    """Conv shapes the small-model tests miss: channels in fours and not, windows of more
    than 256 values (the packed pairs' chunking), odd filter counts, pixel counts that are
    not multiples of four, strides, dilation, padding."""
    k = draw(st.integers(1, 3))
    dil = draw(st.sampled_from([1, 1, 2]))
    span = (k - 1) * dil + 1
    return {
        "h": draw(st.integers(span, 7)), "w": draw(st.integers(span, 7)),
        "c": draw(st.sampled_from([3, 4, 8, 16, 30, 32])), "filters": draw(st.integers(1, 9)),
        "k": k, "stride": 1 if dil > 1 else draw(st.integers(1, 2)), "dil": dil,
        "padding": draw(st.sampled_from(["same", "valid"])),
        "act": draw(st.sampled_from([None, "relu", "relu6"])), "seed": draw(st.integers(0, 3)),
    }


@pytest.mark.slow
@HYPOTHESIS
@given(p=wide_conv())
def test_gathered_conv(p: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    def build(tf: Any, x: Any, q: dict[str, Any]) -> Any:
        return tf.keras.layers.Conv2D(q["filters"], q["k"], strides=q["stride"],
                                      dilation_rate=q["dil"], padding=q["padding"],
                                      activation=q["act"], bias_initializer="random_normal")(x)
    model = convert(settings, "wide_conv", p, build, (p["h"], p["w"], p["c"]))
    out = assert_bit_exact(model, tmp_path, samples=3, reference=p["dil"] > 1)
    span = (p["k"] - 1) * p["dil"] + 1
    oh, ow = ((-(-n // p["stride"]) if p["padding"] == "same" else (n - span) // p["stride"] + 1)
              for n in (p["h"], p["w"]))
    if oh * ow >= 4 and 8 * -(-p["k"] ** 2 * p["c"] // 4) * 4 <= SCRATCH_BYTES:
        assert "aot_convg_s8(" in out.source.c


@st.composite
def banded_depthwise(draw: Any) -> dict[str, Any]:
    return {
        "h": draw(st.integers(3, 9)), "w": draw(st.integers(3, 9)),
        "c": draw(st.sampled_from([4, 8, 12])), "kh": draw(st.integers(1, 3)),
        "kw": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 2)),
        "padding": draw(st.sampled_from(["same", "valid"])),
        "act": draw(st.sampled_from([None, "relu", "relu6"])),
        "pointwise": draw(st.booleans()), "seed": draw(st.integers(0, 3)),
    }


@pytest.mark.slow
@HYPOTHESIS
@given(p=banded_depthwise())
def test_banded_and_fused_depthwise(p: dict[str, Any], settings: Settings,
                                    tmp_path: Path) -> None:
    """Depthwise convs through the padded row band, alone and fed by a 1x1 conv whose
    output is never stored whole."""
    def build(tf: Any, x: Any, q: dict[str, Any]) -> Any:
        L = tf.keras.layers
        if q["pointwise"]:
            x = L.Conv2D(q["c"], 1, activation="relu", bias_initializer="random_normal")(x)
        return L.DepthwiseConv2D((q["kh"], q["kw"]), strides=q["stride"], padding=q["padding"],
                                 activation=q["act"], bias_initializer="random_normal")(x)
    shape = (p["h"], p["w"], 3 if p["pointwise"] else p["c"])
    model = convert(settings, "banded_dw", p, build, shape)
    out = assert_bit_exact(model, tmp_path, samples=3)
    # Fused where the band holds whole input rows (a valid window may stop short of them).
    whole_rows = p["padding"] == "same" or (p["w"] - p["kw"]) % p["stride"] == 0
    # The band, fused or alone: whether the 1x1 conv is fused also depends on the band's width
    # and the conv's lowering, so fusion itself is checked on a fixed model
    # (test_kernels_run_bit_exact_on_each_core).
    assert "aot_pwdw_s8(" in out.source.c or "aot_dwg_s8(" in out.source.c
    assert whole_rows or "aot_pwdw_s8(" not in out.source.c


def _kernels_model(settings: Settings) -> bytes:
    """Every new path at once, small enough for the micro:bit: a 1-channel 3x3 conv, a
    conv of more than 256 window values with an odd filter count over 5x5 pixels, a
    fused 1x1 + stride-2 depthwise pair, a banded depthwise, a 1x1 conv."""
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        ri = {"bias_initializer": "random_normal"}
        y = L.Conv2D(32, 3, padding="same", activation="relu", **ri)(x)
        y = L.Conv2D(7, 3, padding="valid", **ri)(y)
        y = L.Conv2D(12, 1, activation="relu6", **ri)(y)
        y = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", **ri)(y)
        y = L.DepthwiseConv2D(3, padding="same", **ri)(y)
        return L.Conv2D(5, 1, **ri)(y)
    return convert(settings, "kernels_all_paths", {"seed": 2}, build, (7, 7, 1))


@pytest.mark.qemu
@pytest.mark.skipif(QemuEmulator.unavailable() is not None or
                    shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
@pytest.mark.parametrize("board_name", ["microbit", "mps2-an385", "mps2-an386"])
def test_kernels_run_bit_exact_on_each_core(settings: Settings, tmp_path: Path,
                                            board_name: str) -> None:
    """The inline asm of each core profile (ARMv6-M, ARMv7-M, ARMv7E-M) on its board."""
    model = _kernels_model(settings)
    source = compile_source(model).source.c
    for kernel in ("aot_convg_s8", "aot_pwdw_s8", "aot_dwg_s8"):
        assert f"{kernel}(" in source
    board = get_board(settings.targets_dir, board_name)
    module = compile_model(model, board, tmp_path / "module", compiler="aot")
    assert module.compiler.options["scratch_bytes"] > 0
    LocalBuilder().build(tmp_path / "module", board, tmp_path / "fw")
    oracle = Tflm(model)
    rng = np.random.default_rng(9)
    xs = [rng.integers(-128, 128, (1, 7, 7, 1), dtype=np.int8) for _ in range(4)]
    xs += [np.full((1, 7, 7, 1), v, np.int8) for v in (-128, 127)]
    with McuDevice(board, tmp_path / "fw", emulator="qemu") as dev:
        for x in xs:
            assert dev.infer(x.tobytes()).output == oracle.invoke(x).tobytes()

"""The generated code's shape: per-structure kernel instances, code that depends on the
graph structure only, and the requantization arithmetic on cores without a 64-bit multiply."""

from __future__ import annotations

import ctypes
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import convert

from tinymlaas.compilers.aot import compile_source, quant
from tinymlaas.compilers.aot.hostrun import cross_compile
from tinymlaas.config import Settings


def _dense_stack(settings: Settings, seed: int) -> bytes:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        L = tf.keras.layers
        return L.Dense(3)(L.Dense(8, activation="relu")(L.Dense(8, activation="relu")(x)))
    return convert(settings, "dense_stack", {"seed": seed}, build, (8,))


def test_layers_of_one_structure_share_one_instance(settings: Settings) -> None:
    c = compile_source(_dense_stack(settings, 0)).source.c
    defined = re.findall(r"^static void (model_fc_s8_\d+)\(", c, flags=re.M)
    calls = re.findall(r"^    (model_fc_s8_\d+)\(", c, flags=re.M)
    assert len(defined) == 2 and len(calls) == 3  # 8->8 twice (same act), 8->3 once
    assert calls[0] == calls[1] != calls[2]


def _code(source: str, header: str, tmp: Path, cpu: str, opt: str) -> str:
    """Disassembly (with relocations) and contents of everything but the model data."""
    (tmp / "model.c").write_text(source)
    (tmp / "model.h").write_text(header)
    obj = cross_compile(tmp / "model.c", tmp / f"model-{cpu}{opt}.o", cpu, opt,
                        extra=(f"-I{tmp}",
                               '-DMODEL_SECTION=__attribute__((section(".tinymlaas_model")))'))
    dump = subprocess.run(["arm-none-eabi-objdump", "-dr", "-s", str(obj)], capture_output=True,
                          text=True, check=True).stdout
    blocks = re.split(r"^(?=Contents of section |Disassembly of section )", dump, flags=re.M)
    return "".join(b for b in blocks[1:] if not b.startswith(
        ("Contents of section .tinymlaas_model:", "Contents of section .comment:")))


@pytest.mark.parametrize(("cpu", "opt"), [("cortex-m3", "-Os"), ("cortex-m3", "-O2"),
                                          ("cortex-m0", "-Os"), ("cortex-m4", "-O2")])
def test_code_depends_on_structure_only(settings: Settings, tmp_path: Path, cpu: str,
                                        opt: str) -> None:
    """Two models that differ in every weight, bias, scale and zero point compile to the
    same instructions: a model-only update can replace the data section under them."""
    a, b = (compile_source(_dense_stack(settings, seed)) for seed in (0, 1))
    assert a.lowered.data.blob() != b.lowered.data.blob()
    assert a.source.graph_sha256 == b.source.graph_sha256
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert (_code(a.source.c, a.source.h, tmp_path / "a", cpu, opt)
            == _code(b.source.c, b.source.h, tmp_path / "b", cpu, opt))


def _mbqm_library(tmp: Path, name: str, *defines: str) -> Any:
    """The runtime's mbqm fragment built into a host library with an array entry point."""
    runtime = resources.files("tinymlaas.compilers.aot").joinpath("runtime")
    src = tmp / f"{name}.c"
    src.write_text("#include <stdint.h>\n" + runtime.joinpath("base.c").read_text()
                   + runtime.joinpath("mbqm.c").read_text() + """
void run(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        out[i] = aot_mbqm(x[i], m[i], s[i]);
    }
}
""")
    lib = tmp / f"lib{name}.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    *defines, str(src), "-o", str(lib)], check=True)
    fn = ctypes.CDLL(str(lib)).run
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int32]
    return fn


def test_mbqm_without_a_64_bit_multiply_matches_tflite(tmp_path: Path) -> None:
    """The 16-bit-halves product (ARMv6-M) and the 64-bit one agree with TFLite's
    MultiplyByQuantizedMultiplier on random and extreme operands."""
    rng = np.random.default_rng(3)
    n = 20_000
    edges = np.array([0, 1, -1, 2**31 - 1, -2**31, 2**30, -2**30, 12345, -54321], np.int64)
    x = np.concatenate([rng.integers(-2**31, 2**31, n), np.repeat(edges, 4),
                        rng.integers(-2**20, 2**20, n)])
    m = np.concatenate([rng.integers(2**30, 2**31, n), np.tile([2**30, 2**31 - 1, 0, 1], 9),
                        rng.integers(2**30, 2**31, n)])
    s = np.concatenate([rng.integers(-31, 8, n), np.tile([-31, 0, 1, -1], 9),
                        rng.integers(-12, 3, n)])
    # Products just below and at a rounding boundary of the high half: x*m + 2^30
    # within a few units of a multiple of 2^31 (x solved modulo 2^31 for odd m).
    odd = rng.integers(2**29, 2**30, 500) * 2 + 1
    near = [(2**30 + k) % 2**31 for k in (-2**16, -2, -1, 0, 1, 2**15)]
    bx = [(r * pow(int(mm), -1, 2**31)) % 2**31 - (2**31 if i % 2 else 0)
          for i, (mm, r) in enumerate((mm, r) for mm in odd for r in near)]
    x = np.concatenate([x, np.array(bx, np.int64)])
    m = np.concatenate([m, np.repeat(odd, len(near))])
    s = np.concatenate([s, np.tile([0, -1, -3], len(bx) // 3 + 1)[:len(bx)]])
    want = np.array([quant.mbqm(int(a), int(b), int(c)) for a, b, c in zip(x, m, s, strict=True)],
                    dtype=np.int64)
    args = [np.ascontiguousarray(v, dtype=np.int32) for v in (x, m, s)]
    for lib in (_mbqm_library(tmp_path, "mul64"),
                _mbqm_library(tmp_path, "mul32", "-DAOT_MUL32_ONLY")):
        out = np.zeros(len(x), np.int32)
        lib(*(a.ctypes.data for a in args), out.ctypes.data, len(x))
        bad = np.flatnonzero(out != want)
        assert bad.size == 0, [(int(x[i]), int(m[i]), int(s[i]), int(out[i]), int(want[i]))
                               for i in bad[:5]]

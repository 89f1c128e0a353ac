"""digits_cnn: conv, depthwise, pooling, dense and softmax, byte for byte against TFLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _models import HOST_VARIANT_IDS, HOST_VARIANTS

from tinymlaas.compilers.aot import SCRATCH_BYTES, compile_source
from tinymlaas.compilers.aot.hostrun import CORTEX_M_CPUS, HostModule, cross_compile
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm, quantize
from tinymlaas.errors import DoesNotFit
from tinymlaas.models import Board
from tinymlaas.services.compile import compile_model
from tinymlaas.zoo import get_recipe


@pytest.fixture(scope="module")
def digits(settings: Settings) -> bytes:
    return get_recipe("digits_cnn").load(settings.zoo_dir)


@pytest.mark.parametrize("cflags", HOST_VARIANTS, ids=HOST_VARIANT_IDS)
def test_digits_match_tflm_and_classify(digits: bytes, microbit_board: Board, tmp_path: Path,
                                        cflags: tuple[str, ...]) -> None:
    manifest = compile_model(digits, microbit_board, tmp_path / "mod", compiler="aot")
    recipe = get_recipe("digits_cnn")
    spec = manifest.inputs[0]
    samples = [quantize(v, spec.scale, spec.zero_point, np.int8) for v in recipe.sample_inputs()]
    rng = np.random.default_rng(7)
    samples += [rng.integers(-128, 128, (8, 8, 1), dtype=np.int8) for _ in range(20)]
    tflm = Tflm(digits)
    with HostModule(tmp_path / "mod", cflags=cflags) as mod:
        ours = np.stack([mod.invoke(s) for s in samples])
    theirs = np.stack([tflm.invoke(s[np.newaxis]).ravel() for s in samples])
    assert np.array_equal(ours, theirs), np.argwhere(ours != theirs)[:5]
    predicted = ours[: len(recipe.labels())].argmax(axis=1)
    assert (predicted == recipe.labels()).mean() >= 0.8


def test_digits_arena_fits_16k_but_not_8k(digits: bytes, microbit_board: Board,
                                          small_board: Board, tmp_path: Path) -> None:
    manifest = compile_model(digits, microbit_board, tmp_path / "mod", compiler="aot")
    assert 9 * 1024 <= manifest.memory.arena_bytes <= 12 * 1024
    assert microbit_board.ram_bytes - manifest.memory.arena_bytes >= 4 * 1024
    assert manifest.compiler.options["scratch_bytes"] == SCRATCH_BYTES
    # Column buffers only where the board has the RAM: a board that holds the arena
    # without them gets the module without them.
    lean = compile_source(digits, scratch_bytes=0).placement.arena_bytes
    assert lean < manifest.memory.arena_bytes
    tight = microbit_board.model_copy(update={"ram_bytes": lean})
    fitted = compile_model(digits, tight, tmp_path / "tight", compiler="aot")
    assert fitted.memory.arena_bytes == lean
    assert fitted.compiler.options["scratch_bytes"] == 0
    with pytest.raises(DoesNotFit, match="stm32vldiscovery") as exc:
        compile_model(digits, small_board, tmp_path / "small", compiler="aot")
    assert exc.value.details["region"] == "ram"
    assert exc.value.details["missing_bytes"] == lean - 8 * 1024


@pytest.mark.parametrize("cpu", sorted(CORTEX_M_CPUS.values()))
@pytest.mark.parametrize("opt", ["-Os", "-O2"])
def test_digits_cortex_m_compile_is_warning_free(digits: bytes, microbit_board: Board,
                                                 tmp_path: Path, cpu: str, opt: str) -> None:
    """Every kernel, on every core's code path (ARMv6-M: no 64-bit multiply; ARMv7E-M:
    dual MACs), freestanding as the firmware builds it."""
    compile_model(digits, microbit_board, tmp_path / "mod", compiler="aot")
    cross_compile(tmp_path / "mod" / "model.c", tmp_path / "model.o", cpu, opt,
                  extra=("-ffreestanding",))

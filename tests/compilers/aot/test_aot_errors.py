"""What the aot compiler refuses, and how: one clear error before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import convert

from tinymlaas.compilers.aot import compile_source
from tinymlaas.compilers.aot.hostrun import HostModule
from tinymlaas.config import Settings
from tinymlaas.edge.tflm import Tflm
from tinymlaas.errors import InvalidInput, UnsupportedModel
from tinymlaas.models import Board
from tinymlaas.services.compile import compile_model
from tinymlaas.zoo import get_recipe


def test_unsupported_op_is_named_with_the_supported_list(settings: Settings, m3_board: Board,
                                                         tmp_path: Path) -> None:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(
            tf.keras.layers.Dense(4)(x))
    model = convert(settings, "cumsum", {"seed": 0}, build, (3,))
    with pytest.raises(UnsupportedModel, match=r"CUMSUM.*x86 TFLM target.*Supported: .*FULLY_CONNECTED"):
        compile_model(model, m3_board, tmp_path / "mod", compiler="aot")
    with pytest.raises(UnsupportedModel, match=r"operator #\d+ CUMSUM is not supported.*x86 TFLM"):
        compile_source(model)  # the lowering names the operator and where it runs
    assert not (tmp_path / "mod").exists()


def test_bad_name_and_non_tflite_bytes(hello_world: bytes) -> None:
    with pytest.raises(InvalidInput, match="not a C identifier"):
        compile_source(hello_world, name="my-model")
    with pytest.raises(InvalidInput, match="TFL3"):
        compile_source(b"not a model at all")


def test_x86_tflm_board_refuses_c_source(hello_world: bytes, settings: Settings,
                                         tmp_path: Path) -> None:
    from tinymlaas.targets import get_board

    board = get_board(settings.targets_dir, "x86-tflm")
    with pytest.raises(UnsupportedModel, match="c-source"):
        compile_model(hello_world, board, tmp_path / "mod", compiler="aot")


def test_float_hello_world_matches_tflm(settings: Settings, tmp_path: Path) -> None:
    model = get_recipe("hello_world_float").load(settings.zoo_dir)
    out = compile_source(model)
    (tmp_path / "model.c").write_text(out.source.c)
    (tmp_path / "model.h").write_text(out.source.h)
    tflm = Tflm(model)
    xs = np.linspace(-1.0, 7.0, 64, dtype=np.float32)
    with HostModule(tmp_path) as mod:
        ours = np.concatenate([mod.invoke(np.array([x], np.float32)) for x in xs])
    theirs = np.concatenate([tflm.invoke(np.array([[x]], np.float32)).ravel() for x in xs])
    assert ours.tobytes() == theirs.tobytes()

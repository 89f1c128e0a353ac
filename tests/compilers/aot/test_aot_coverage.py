"""The coverage report: per op and dtype, whether aot and TFLM take it and why not; and
the refusals it mirrors (custom ops, unsupported dtypes) before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flatbuffers
import pytest
from _models import convert
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinymlaas.compilers.aot import compile_source, coverage
from tinymlaas.compilers.aot.lower import declaration
from tinymlaas.config import Settings
from tinymlaas.errors import UnsupportedModel
from tinymlaas.models import Board
from tinymlaas.services.compile import compile_model


def _dense_cumsum(settings: Settings) -> bytes:
    def build(tf: Any, x: Any, p: dict[str, Any]) -> Any:
        return tf.keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(
            tf.keras.layers.Dense(4)(x))
    return convert(settings, "cumsum", {"seed": 0}, build, (3,))


def as_custom(model: bytes, code: str) -> bytes:
    """The same model with its last operator turned into a custom op named ``code``."""
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    oc.customCode = code
    m.operatorCodes.append(oc)
    op = m.subgraphs[0].operators[-1]
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.builtinOptionsType, op.builtinOptions = 0, None
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_rows_per_op_and_dtype_with_reasons(settings: Settings, hello_world: bytes) -> None:
    rows = coverage(hello_world)
    assert [(r.op, r.dtype, r.count, r.aot, r.tflm) for r in rows] == [
        ("FULLY_CONNECTED", "int8", 3, True, True)]
    rows = {r.op: r for r in coverage(_dense_cumsum(settings))}
    assert rows["FULLY_CONNECTED"].aot and rows["FULLY_CONNECTED"].aot_reason == "compiled"
    assert not rows["CUMSUM"].aot and rows["CUMSUM"].tflm
    assert "x86 TFLM target" in rows["CUMSUM"].aot_reason


def test_custom_op_is_refused_naming_it_and_where_it_runs(hello_world: bytes, m3_board: Board,
                                                         tmp_path: Path) -> None:
    model = as_custom(hello_world, "SignalWindow")
    row = next(r for r in coverage(model) if r.op.startswith("CUSTOM"))
    assert (row.op, row.aot, row.tflm) == ("CUSTOM SignalWindow", False, False)
    with pytest.raises(UnsupportedModel, match=r"CUSTOM 'SignalWindow' is a custom op.*"
                                               r"x86 TFLM target"):
        compile_source(model)
    with pytest.raises(UnsupportedModel, match=r"CUSTOM \(a custom op.*x86 TFLM target"):
        compile_model(model, m3_board, tmp_path / "mod", compiler="aot")
    assert not (tmp_path / "mod").exists()


def test_declaration_lists_ops_with_dtypes() -> None:
    table = declaration()
    assert table["CONV_2D"] == ["float32", "int16", "int8"]
    assert "int16->int8" in table["QUANTIZE"]
    assert table["RESHAPE"] == ["any"]

"""Inference requests and reports of models with several tensors: packed by the device's own
description, addressed in order or by name, each tensor decoded with its own quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinymlaas.errors import InvalidInput
from tinymlaas.models import DeviceCapabilities, TensorInput
from tinymlaas.orchestrators.reports import inference_report
from tinymlaas.services.devices import input_tensor

TENSORS = {
    "inputs": [{"name": "motion", "dtype": "int8", "shape": [1, 3], "scale": 0.5, "zero_point": -1},
               {"name": "temp", "dtype": "float32", "shape": [1, 1]}],
    "outputs": [{"name": "score", "dtype": "int16", "shape": [1, 1], "scale": 0.25, "zero_point": 0},
                {"name": "cls", "dtype": "int8", "shape": [1, 2], "scale": 0.125, "zero_point": 2}],
}
CAPS = DeviceCapabilities(endpoint="dev", tensors=TENSORS)


def test_inputs_in_order_or_by_name_pack_the_same() -> None:
    ordered = input_tensor(CAPS, values=None, raw=None, inputs=[
        TensorInput(values=[1.0, -1.0, 0.4]), TensorInput(input=[21.5])])
    named = input_tensor(CAPS, values=None, raw=None, inputs=[
        TensorInput(name="temp", values=[21.5]), TensorInput(name="motion", input=[1, -3, 0])])
    want = np.array([1, -3, 0], np.int8).tobytes() + b"\0" + np.array([21.5], np.float32).tobytes()
    assert ordered == named == want


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"values": [1.0, 2.0, 3.0]}, "takes 2 input tensors ('motion', 'temp'): give each in 'inputs'"),
    ({"inputs": [TensorInput(values=[1.0, 2.0, 3.0])]}, "takes 2 input tensors ('motion', 'temp'), not 1"),
    ({"inputs": [TensorInput(name="motion", values=[0, 0, 0]), TensorInput(name="pressure", values=[1])]},
     "unknown or repeated: 'pressure'"),
    ({"inputs": [TensorInput(name="motion", values=[0, 0, 0]), TensorInput(name="motion", values=[1])]},
     "a repeated name"),
    ({"inputs": [TensorInput(input=[0, 0, 300]), TensorInput(values=[1])]}, "of 'motion' must be int8"),
    ({"inputs": [TensorInput(values=[0, 0]), TensorInput(values=[1])]}, "'motion' of the model on 'dev' "
                                                                      "takes 3 values, not 2"),
])
def test_bad_inputs_are_refused_naming_the_tensor(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^.*{message.replace('(', '.').replace(')', '.')}"):
        input_tensor(CAPS, values=kwargs.get("values"), raw=None,  # type: ignore[arg-type]
                     inputs=kwargs.get("inputs"))  # type: ignore[arg-type]


def test_a_report_decodes_every_tensor_with_its_own_quantization() -> None:
    raw_in = np.array([1, -3, 0], np.int8).tobytes() + b"\0" + np.array([21.5], np.float32).tobytes()
    raw_out = np.array([-8], np.int16).tobytes() + np.array([6, 2], np.int8).tobytes()
    r = inference_report("dev", count=1, raw_input=raw_in, raw_output=raw_out, tensors=TENSORS)
    assert [(t.name, t.raw, t.values) for t in r.inputs] == [
        ("motion", [1, -3, 0], [1.0, -1.0, 0.5]), ("temp", [21.5], [21.5])]
    assert [(t.name, t.raw, t.values) for t in r.outputs] == [
        ("score", [-8], [-2.0]), ("cls", [6, 2], [0.5, 0.0])]
    assert (r.input, r.output, r.values) == ([1, -3, 0], [-8], [-2.0])


def test_a_report_of_bytes_that_do_not_fit_the_description_keeps_them_as_the_first_tensor() -> None:
    r = inference_report("dev", count=1, raw_input=b"\x01\x02", raw_output=b"\x05\x00\x07",
                         tensors=TENSORS)
    assert (r.input, r.output, [t.name for t in r.outputs]) == ([1, 2], [5], ["score"])
    one = inference_report("dev", count=1, raw_input=b"\x01", raw_output=b"\x04\x04",
                           tensors={"outputs": [{"name": "y", "dtype": "int8", "shape": [1, 1],
                                                 "scale": 0.5, "zero_point": 0}]})
    assert one.values == [2.0, 2.0] and one.inputs[0].raw == [1]


def test_a_cloud_endpoint_is_refused_for_a_model_with_several_tensors(sensor_fusion: bytes,
                                                                       tmp_path: Path) -> None:
    """The hybrid policy judges one classifier output; a fusion model is refused, saying why."""
    from tinymlaas import tflite
    from tinymlaas.cost.models import EndpointCreate
    from tinymlaas.services.hybrid import create_endpoint
    from tinymlaas.store import Store

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "artifacts")
    try:
        m = store.add_model("fusion", sensor_fusion, source="test", info=tflite.inspect(sensor_fusion))
        with pytest.raises(InvalidInput, match="has 2 inputs and 2 outputs: a hybrid device escalates"):
            create_endpoint(store, EndpointCreate(model=m.id))
    finally:
        store.close()

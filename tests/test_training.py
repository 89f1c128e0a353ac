"""Training and bringing your own Keras model through the service's TensorFlow child process
(slow: TensorFlow starts in each child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinymlaas.config import Settings
from tinymlaas.datasets.models import DatasetCreate, TrainingSettings
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.errors import InvalidInput, NotFound
from tinymlaas.services import datasets as datasets_service
from tinymlaas.services.training import import_now, plan_training, train_now
from tinymlaas.store import Store

pytestmark = pytest.mark.slow

#: Writes DIR/plain.keras and DIR/lambda.keras (one TensorFlow start for both).
_KERAS = """
import sys, tensorflow as tf
for kind in ("plain", "lambda"):
    inp = tf.keras.Input(shape=(4,))
    x = tf.keras.layers.Dense(8, activation="relu")(inp)
    if kind == "lambda":
        x = tf.keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(x)
    out = tf.keras.layers.Softmax()(tf.keras.layers.Dense(3)(x))
    tf.keras.Model(inp, out).save(f"{sys.argv[1]}/{kind}.keras")
"""


@pytest.fixture
def iris(tmp_path: Path) -> tuple[Store, Settings]:
    settings = Settings(data_dir=tmp_path / "data")
    store = Store(settings.db_url, settings.artifacts_dir)
    ex = EXAMPLES["iris"]
    ex.write(tmp_path / "iris.csv", 0, 0)
    datasets_service.create(store, DatasetCreate(name="iris", task=ex.task, spec=ex.spec))
    with (tmp_path / "iris.csv").open("rb") as fh:
        assert len(datasets_service.upload(store, "iris", [("iris.csv", fh)]).accepted) == 150
    return store, settings


def test_training_settings_are_checked_before_any_work(iris: tuple[Store, Settings]) -> None:
    store, _ = iris
    with pytest.raises(InvalidInput, match="template: 'cnn' does not take tabular"):
        plan_training(store, TrainingSettings(dataset="iris", template="cnn"))
    with pytest.raises(InvalidInput, match="input_size: a tabular model"):
        plan_training(store, TrainingSettings(dataset="iris", input_size=[3]))
    with pytest.raises(NotFound, match="no model 'nothing-here'"):
        plan_training(store, TrainingSettings(dataset="iris", base="nothing-here"))
    with pytest.raises(ValueError, match="Extra inputs"):
        TrainingSettings.model_validate({"dataset": "iris", "epoch": 3})


def test_an_mlp_trains_and_a_keras_model_is_converted_or_refused(iris: tuple[Store, Settings],
                                                                   tmp_path: Path) -> None:
    store, settings = iris
    trained = train_now(store, settings, TrainingSettings(dataset="iris", epochs=30, seed=2))
    lineage = store.datasets.lineage(trained["model_id"])
    assert lineage.metrics["float"].accuracy > 0.7 and set(lineage.variants) == {"int8", "float", "keras"}
    assert store.datasets.versions(store.datasets.get("iris").id)[0].locked

    subprocess.run([sys.executable, "-c", _KERAS, str(tmp_path)], check=True, capture_output=True,
                   timeout=120)
    with (tmp_path / "plain.keras").open("rb") as fh, pytest.raises(InvalidInput, match="calibration data"):
        import_now(store, settings, name="mine", filename="plain.keras", body=fh, dataset=None,
                   quantize="int8")
    with (tmp_path / "plain.keras").open("rb") as fh:
        result = import_now(store, settings, name="mine", filename="plain.keras", body=fh, dataset="iris",
                            quantize="int8")
    imported = store.datasets.lineage(result["model_id"])
    assert imported.kind == "imported" and set(imported.metrics) == {"float", "int8"}
    assert store.model(result["model_id"]).info.inputs[0].dtype == "int8"
    with (tmp_path / "lambda.keras").open("rb") as fh, pytest.raises(InvalidInput, match="cannot load"):
        import_now(store, settings, name="mine", filename="lambda.keras", body=fh, dataset="iris",
                   quantize="int8")
    store.close()

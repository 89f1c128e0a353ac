"""The TensorFlow side, run as a child process (``python -m tinymlaas.datasets.trainer DIR``): train
a model template (or continue a model), load a user's Keras model, or make a template untrained
(what a pipeline checks against its boards before it trains); convert to float and full-
integer int8 TFLite calibrated on training samples.

A child, so that TensorFlow's memory and threads go when it ends and a cancel can kill it. It reads
``DIR/job.json`` and ``DIR/data.npz`` and writes ``float.tflite``, ``int8.tflite`` (unless asked
for float only), ``model.keras`` and ``result.json`` into DIR; on stdout it speaks one line per
event: ``@step TEXT``, ``@epoch {json}`` after each epoch, ``@error TEXT`` for a refusal.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinymlaas.datasets.tensors import fit_input, fits


class Refused(Exception):
    """The job cannot be done as asked; the message says why."""


def _say(kind: str, text: str) -> None:
    sys.stdout.write(f"@{kind} {text}\n")
    sys.stdout.flush()


def build_model(tf: Any, template: str, input_shape: list[int], classes: int, width: int) -> Any:
    """The templates: a small CNN, a depthwise-separable CNN, an MLP; every op one the aot compiler
    and TFLM run (time series are [length, 1, channels] images to the convolutions)."""
    layers = tf.keras.layers
    inp = tf.keras.Input(shape=tuple(input_shape))
    if template == "mlp":
        x = layers.Flatten()(inp) if len(input_shape) > 1 else inp
        x = layers.Dense(width, activation="relu")(x)
        x = layers.Dense(width, activation="relu")(x)
    else:
        x = inp if len(input_shape) == 3 else layers.Reshape((input_shape[0], 1, input_shape[-1]))(inp)
        image = x.shape[2] > 1
        k, pool = ((3, 3), (2, 2)) if image else ((3, 1), (2, 1))
        length = int(x.shape[1])
        stride = 1 if image or length < 64 else (2 if length < 256 else 4)
        first = k if image else ((9, 1) if stride > 1 else k)
        x = layers.Conv2D(
            width, first, strides=(stride, 1) if not image else 1, padding="same", activation="relu"
        )(x)
        for block in range(2):
            if template == "ds-cnn":
                x = layers.DepthwiseConv2D(k, padding="same", activation="relu")(x)
                x = layers.Conv2D(width * 2, 1, activation="relu")(x)
            elif block:
                x = layers.Conv2D(width * 2, k, padding="same", activation="relu")(x)
            if int(x.shape[1]) >= 4 and (not image or int(x.shape[2]) >= 4):
                x = layers.MaxPooling2D(pool)(x)
        x = layers.GlobalAveragePooling2D()(x) if template == "ds-cnn" else layers.Flatten()(x)
    x = layers.Dense(classes)(x)
    return tf.keras.Model(inp, layers.Softmax()(x))


def augment(x: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
    """A new random variant of every training sample (each epoch): images shift by a pixel and get
    noise, series shift in time and scale, tabular rows get noise of a twentieth of each feature's
    spread."""
    if task == "image":
        out = np.empty_like(x)
        for i, img in enumerate(x):
            dy, dx = rng.integers(-1, 2, size=2)
            out[i] = np.roll(img, (dy, dx), axis=(0, 1))
        noisy: np.ndarray = np.clip(out + rng.normal(0, 0.03, x.shape).astype(x.dtype), 0.0, 1.0)
        return noisy
    if task == "time-series":
        shifts = rng.integers(-x.shape[1] // 10, x.shape[1] // 10 + 1, size=len(x))
        scale = rng.uniform(0.8, 1.2, size=(len(x),) + (1,) * (x.ndim - 1)).astype(x.dtype)
        out = np.stack([np.roll(s, int(d), axis=0) for s, d in zip(x, shifts, strict=True)]) * scale
        shaken: np.ndarray = out + rng.normal(0, 0.01, x.shape).astype(x.dtype)
        return shaken
    spread = x.std(axis=0, keepdims=True) + 1e-6
    jittered: np.ndarray = x + (rng.normal(0, 1, x.shape) * spread / 20).astype(x.dtype)
    return jittered


def _compile(tf: Any, model: Any, job: dict[str, Any]) -> None:
    optimizers = {
        "adam": tf.keras.optimizers.Adam,
        "sgd": tf.keras.optimizers.SGD,
        "rmsprop": tf.keras.optimizers.RMSprop,
    }
    smoothing = job["label_smoothing"]
    loss = (
        tf.keras.losses.CategoricalFocalCrossentropy(label_smoothing=smoothing)
        if job["loss"] == "focal"
        else tf.keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    )
    model.compile(
        optimizer=optimizers[job["optimizer"]](job["learning_rate"]), loss=loss, metrics=["accuracy"]
    )


def train(job: dict[str, Any], data: dict[str, np.ndarray], out: Path) -> dict[str, Any]:
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(job["seed"])
    classes = len(job["classes"])
    if job.get("base"):
        _say("step", "loading the model to continue")
        model = tf.keras.models.load_model(job["base"], compile=False)
        shape = [int(d) for d in model.input_shape[1:]]
        if int(model.output_shape[-1]) != classes:
            raise Refused(
                f"the model to continue has {model.output_shape[-1]} outputs; the dataset has "
                f"{classes} classes"
            )
    else:
        shape = job["input_shape"]
        model = build_model(tf, job["template"], shape, classes, job["width"])
    x, xv = fit_input(data["x_train"], shape), fit_input(data["x_val"], shape)
    y = tf.keras.utils.to_categorical(data["y_train"], classes)
    yv = tf.keras.utils.to_categorical(data["y_val"], classes) if len(xv) else None
    _compile(tf, model, job)
    rng = np.random.default_rng(job["seed"])
    epochs = []
    for epoch in range(job["epochs"]):
        start = time.monotonic()
        xe = augment(x, job["task"], rng) if job["augmentation"] else x
        hist = model.fit(
            xe,
            y,
            batch_size=job["batch_size"],
            epochs=1,
            verbose=0,
            shuffle=True,
            validation_data=(xv, yv) if yv is not None else None,
        ).history
        row = {
            "epoch": epoch + 1,
            "loss": float(hist["loss"][-1]),
            "accuracy": float(hist["accuracy"][-1]),
            "val_loss": float(hist["val_loss"][-1]) if "val_loss" in hist else None,
            "val_accuracy": float(hist["val_accuracy"][-1]) if "val_accuracy" in hist else None,
            "seconds": round(time.monotonic() - start, 3),
        }
        epochs.append(row)
        _say("epoch", json.dumps(row))
    model.save(out / "model.keras")
    _convert(tf, model, fit_input(data["x_calib"], shape), out, quantize=True)
    return {"input_shape": shape, "epochs": epochs}


def untrained(job: dict[str, Any], data: dict[str, np.ndarray], out: Path) -> dict[str, Any]:
    """The template as a training would make it, untrained and converted the same way: the same ops,
    tensors and sizes, so whether it fits a board is known before any training (a pipeline's check)."""
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(job["seed"])
    shape = job["input_shape"]
    model = build_model(tf, job["template"], shape, len(job["classes"]), job["width"])
    _convert(tf, model, fit_input(data["x_calib"], shape), out, quantize=True)
    return {"input_shape": shape, "epochs": []}


def _convert(
    tf: Any,
    model: Any,
    calibration: np.ndarray,
    out: Path,
    *,
    quantize: bool,
    saved_model: Path | None = None,
) -> None:
    from tinymlaas.zoo._convert import to_float_tflite, to_int8_tflite

    _step = "converting to float TFLite"
    _say("step", _step)
    try:
        if saved_model is not None:
            conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
            (out / "float.tflite").write_bytes(bytes(conv.convert()))
        else:
            (out / "float.tflite").write_bytes(to_float_tflite(model))
        if quantize:
            _step = "converting to full-integer int8 TFLite (calibrated on training samples)"
            _say("step", _step)
            if saved_model is not None:
                (out / "int8.tflite").write_bytes(_saved_model_int8(tf, saved_model, calibration))
            else:
                (out / "int8.tflite").write_bytes(to_int8_tflite(model, calibration))
    except Exception as exc:  # the converter raises many kinds; the user needs its words
        raise Refused(f"{_step} failed: {_converter_words(exc)}") from None


def _saved_model_int8(tf: Any, path: Path, calibration: np.ndarray) -> bytes:
    def dataset() -> Any:
        for row in calibration:
            yield [row[np.newaxis].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_saved_model(str(path))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = dataset
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def _converter_words(exc: Exception) -> str:
    """The lines of a converter error that name the problem (ops, layers), without its stack."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [
        ln
        for ln in lines
        if any(w in ln.lower() for w in ("op", "layer", "not supported", "error"))
        and not ln.startswith(("<unknown>", "File "))
    ]
    text = " ".join(dict.fromkeys(useful or lines[:3]))
    return (text[:600] + " ...") if len(text) > 600 else text or type(exc).__name__


def import_model(job: dict[str, Any], data: dict[str, np.ndarray], out: Path) -> dict[str, Any]:
    """A user's .keras / .h5 / SavedModel (zip) to TFLite, int8 calibrated on the dataset or float."""
    from tinymlaas.zoo._convert import seed_everything

    tf = seed_everything(0)
    source = Path(job["source"])
    saved_model = None
    _say("step", "loading the model")
    try:
        if source.suffix == ".zip":
            saved_model = out / "saved_model"
            with zipfile.ZipFile(source) as zf:
                zf.extractall(saved_model)
            roots = [p.parent for p in saved_model.rglob("saved_model.pb")]
            if not roots:
                raise Refused("the zip holds no SavedModel (no saved_model.pb)")
            saved_model = roots[0]
            loaded = tf.saved_model.load(str(saved_model))
            sig = loaded.signatures.get("serving_default")
            if sig is None:
                raise Refused("the SavedModel has no 'serving_default' signature to convert")
            spec = next(iter(sig.structured_input_signature[1].values()))
            shape = [int(d) for d in spec.shape[1:]]
            outputs = int(next(iter(sig.structured_outputs.values())).shape[-1])
            model = None
        else:
            model = tf.keras.models.load_model(str(source), compile=False)
            shape = [int(d) for d in model.input_shape[1:]]
            outputs = int(model.output_shape[-1])
    except Refused:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, TypeError) as exc:
        raise Refused(f"cannot load the model: {_converter_words(exc)}") from None
    if any(d is None or d < 1 for d in shape):
        raise Refused(f"the model's input shape {shape} is not fixed; give it a fixed input shape")
    if job["sample_shape"] is not None and not fits(job["sample_shape"], shape):
        raise Refused(
            f"the model takes inputs of shape {shape}; the dataset's samples are {job['sample_shape']}"
        )
    if job["classes"] is not None and outputs != len(job["classes"]):
        raise Refused(f"the model has {outputs} outputs; the dataset has {len(job['classes'])} classes")
    calibration = fit_input(data["x_calib"], shape) if len(data["x_calib"]) else data["x_calib"]
    quantize = job["quantize"] == "int8"
    if quantize and not len(calibration):
        raise Refused(
            "int8 conversion needs calibration data: the dataset version has no labelled training samples"
        )
    if model is not None:
        model.save(out / "model.keras")
    _convert(tf, model, calibration, out, quantize=quantize, saved_model=saved_model)
    return {"input_shape": shape, "epochs": []}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    job = json.loads((out / "job.json").read_text())
    with np.load(out / "data.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    try:
        modes = {"import": import_model, "untrained": untrained, "train": train}
        result = modes[job["mode"]](job, data, out)
    except Refused as exc:
        _say("error", str(exc))
        return 2
    except Exception:
        traceback.print_exc()
        _say("error", "training crashed: " + traceback.format_exc().strip().splitlines()[-1])
        return 1
    (out / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Sample data without downloads: scikit-learn's bundled digits as PNG images, synthesized tones
(WAV) and accelerometer gestures (CSV), and iris as a tabular CSV. Each is an archive with a folder
per class (or a CSV with a label column), next to the dataset spec it fits."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymlaas.datasets.models import SampleSpec, Task


@dataclass(frozen=True)
class Example:
    name: str
    task: Task
    spec: SampleSpec
    suffix: str
    write: Callable[[Path, int, int], int]
    description: str


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def digits_images(count: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as uint8 images; past 1,797, copies shifted by a pixel with
    a little noise (so a large archive has no duplicates)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    base = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    labels = d.target.astype(np.int64)
    n = len(base) if count is None else count
    rng = np.random.default_rng(seed)
    images, ys = [], []
    for i in range(n):
        img, y = base[i % len(base)], labels[i % len(base)]
        if i >= len(base):
            shifted = np.roll(img.astype(np.int16), tuple(rng.integers(-1, 2, size=2)), axis=(0, 1))
            img = np.clip(shifted + rng.integers(-12, 13, size=img.shape), 0, 255).astype(np.uint8)
        images.append(img)
        ys.append(y)
    return np.stack(images), np.asarray(ys)


def write_digits(path: Path, count: int = 0, seed: int = 0) -> int:
    images, labels = digits_images(count or None, seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i, (img, y) in enumerate(zip(images, labels, strict=True)):
            zf.writestr(f"digits/{y}/{i:05d}.png", _png(img))
    return len(images)


TONE_RATE, TONE_LENGTH = 4000, 512
TONES = {"low": (150.0, 300.0), "mid": (500.0, 800.0), "high": (1100.0, 1600.0)}


def tone(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A tone of the kind's frequency band with a random phase, loudness and noise, as int16."""
    lo, hi = TONES[kind]
    t = np.arange(TONE_LENGTH) / TONE_RATE
    wave = rng.uniform(0.3, 0.9) * np.sin(2 * np.pi * rng.uniform(lo, hi) * t + rng.uniform(0, 2 * np.pi))
    wave += rng.normal(0, 0.05, TONE_LENGTH)
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)


def write_tones(path: Path, per_class: int = 0, seed: int = 0) -> int:
    import soundfile

    rng = np.random.default_rng(seed)
    n = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for kind in TONES:
            for i in range(per_class or 60):
                buf = io.BytesIO()
                soundfile.write(buf, tone(kind, rng), TONE_RATE, format="WAV", subtype="PCM_16")
                zf.writestr(f"tones/{kind}/{i:04d}.wav", buf.getvalue())
                n += 1
    return n


GESTURE_LENGTH = 64
GESTURES = ("idle", "shake", "circle")


def gesture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Three-axis accelerometer readings (g) of a gesture, 64 steps."""
    t = np.linspace(0, 1, GESTURE_LENGTH)
    x = np.zeros((GESTURE_LENGTH, 3))
    x[:, 2] = 1.0  # gravity
    if kind == "shake":
        x[:, 0] += rng.uniform(0.8, 1.5) * np.sin(2 * np.pi * rng.uniform(6, 9) * t + rng.uniform(0, 6.3))
    elif kind == "circle":
        f, p = rng.uniform(1, 2), rng.uniform(0, 6.3)
        x[:, 0] += rng.uniform(0.5, 1.0) * np.cos(2 * np.pi * f * t + p)
        x[:, 1] += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + p)
    return (x + rng.normal(0, 0.08, x.shape)).astype(np.float32)


def write_gestures(path: Path, per_class: int = 0, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for kind in GESTURES:
            for i in range(per_class or 60):
                buf = io.StringIO()
                w = csv.writer(buf)
                w.writerow(["ax", "ay", "az"])
                w.writerows([[f"{v:.4f}" for v in row] for row in gesture(kind, rng)])
                zf.writestr(f"gestures/{kind}/{i:04d}.csv", buf.getvalue())
                n += 1
    return n


IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


def write_iris(path: Path, _count: int = 0, _seed: int = 0) -> int:
    from sklearn.datasets import load_iris

    d = load_iris()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*IRIS_FEATURES, "label"])
        for row, y in zip(d.data, d.target, strict=True):
            w.writerow([*(f"{v:g}" for v in row), IRIS_CLASSES[int(y)]])
    return len(d.data)


EXAMPLES = {
    e.name: e
    for e in (
        Example(
            "digits",
            Task.image,
            SampleSpec(shape=[8, 8, 1], dtype="uint8", classes=[str(i) for i in range(10)]),
            ".zip",
            write_digits,
            "scikit-learn's 8x8 handwritten digits as PNG images, a folder per digit",
        ),
        Example(
            "tones",
            Task.time_series,
            SampleSpec(shape=[TONE_LENGTH, 1], dtype="int16", classes=list(TONES), sample_rate=TONE_RATE),
            ".zip",
            write_tones,
            f"synthesized low/mid/high tones, {TONE_LENGTH} samples at {TONE_RATE} Hz (WAV)",
        ),
        Example(
            "gestures",
            Task.time_series,
            SampleSpec(shape=[GESTURE_LENGTH, 3], classes=list(GESTURES)),
            ".zip",
            write_gestures,
            "synthesized 3-axis accelerometer gestures (CSV, 64 steps)",
        ),
        Example(
            "iris",
            Task.tabular,
            SampleSpec(shape=[4], classes=IRIS_CLASSES, features=IRIS_FEATURES),
            ".csv",
            write_iris,
            "scikit-learn's iris flowers: 4 measurements and a label column (CSV)",
        ),
    )
}

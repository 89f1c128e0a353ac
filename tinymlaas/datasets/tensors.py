"""Samples as model inputs: a dataset's stored dtype to the float values a model takes, and back
(for inputs collected from devices); and the deterministic split."""

from __future__ import annotations

import hashlib
import io

import numpy as np

from tinymlaas.datasets.models import SampleSpec, Split, SplitSpec

#: What one stored unit is as a model input: images' bytes and audio's int16 become [0, 1] / [-1, 1].
_SCALE = {"uint8": 255.0, "int16": 32768.0, "float32": 1.0}


def to_model(arr: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(arr, dtype=np.float32) / np.float32(_SCALE[dtype])


def from_model(values: np.ndarray, spec: SampleSpec) -> np.ndarray:
    """Model-input floats back to a sample of the dataset's dtype and shape."""
    scaled = np.asarray(values, dtype=np.float64).reshape(spec.shape) * _SCALE[spec.dtype]
    if spec.dtype == "float32":
        return scaled.astype(np.float32)
    info = np.iinfo(spec.dtype)
    return np.clip(np.round(scaled), info.min, info.max).astype(spec.dtype)


def split_of(sha256: str, split: SplitSpec) -> Split:
    """A sample's part from its content alone: the same data always lands in the same part."""
    u = int(hashlib.sha256(f"{split.seed}:{sha256}".encode()).hexdigest()[:13], 16) / 16**13
    if u < split.train:
        return Split.train
    if u < split.train + split.validation:
        return Split.validation
    return Split.test


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    arr: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return arr


def fits(sample_shape: list[int], shape: list[int]) -> bool:
    """Whether :func:`fit_input` can turn samples of one shape into the other: the same rank and
    channels (images resize, series resample), or the same shape."""
    return sample_shape == shape or (
        len(sample_shape) == len(shape) and len(shape) in (2, 3) and sample_shape[-1] == shape[-1]
    )


def fit_input(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """Samples ``[N, *sample shape]`` as a model's input ``shape``: images resized (bilinear), time
    series resampled (linear); the same shape passes through."""
    x = np.asarray(x, dtype=np.float32)
    if list(x.shape[1:]) == list(shape):
        return x
    if not fits(list(x.shape[1:]), shape):
        raise ValueError(f"samples of shape {list(x.shape[1:])} cannot become the input {shape}")
    if len(x) == 0:
        return np.zeros((0, *shape), dtype=np.float32)
    if len(shape) == 3:
        from PIL import Image

        out = np.empty((len(x), *shape), dtype=np.float32)
        for i, img in enumerate(x):
            for c in range(shape[2]):
                channel = Image.fromarray(np.ascontiguousarray(img[..., c]))
                out[i, ..., c] = np.asarray(channel.resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
        return out
    src, dst = np.linspace(0.0, 1.0, x.shape[1]), np.linspace(0.0, 1.0, shape[0])
    out = np.empty((len(x), *shape), dtype=np.float32)
    for i, series in enumerate(x):
        for c in range(shape[1]):
            out[i, :, c] = np.interp(dst, src, series[:, c])
    return out

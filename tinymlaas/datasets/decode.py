"""Uploaded files into samples: images (Pillow), WAV (soundfile), CSV, NPY, and zip or tar archives
of them read entry by entry. A file that cannot become a sample of the dataset's shape is refused
with the reason, alone; the others go on."""

from __future__ import annotations

import csv
import io
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from tinymlaas.datasets.models import SampleSpec, Task

IMAGE_EXT = frozenset({".png", ".jpg", ".jpeg"})
ARCHIVE_EXT = (".zip", ".tar", ".tar.gz", ".tgz")
SAMPLE_EXT = frozenset({*IMAGE_EXT, ".wav", ".csv", ".npy"})
#: Bytes one archive entry may expand to (a zip bomb stops here, alone).
MAX_ENTRY_BYTES = 64 << 20
_LABEL_COLUMNS = ("label", "class", "target")
_DTYPE_RANGE = {"uint8": (0, 255), "int16": (-32768, 32767)}


@dataclass(frozen=True)
class Decoded:
    """One sample, or why a file (or a row of it) is not one."""

    name: str
    array: np.ndarray | None = None
    label: str | None = None
    reason: str | None = None


def extension(name: str) -> str:
    lower = name.lower()
    for ext in (".tar.gz",):
        if lower.endswith(ext):
            return ext
    return posixpath.splitext(lower)[1]


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXT)


def decode(name: str, data: bytes, task: Task, spec: SampleSpec, label: str | None = None) -> list[Decoded]:
    """The samples in one file (a CSV or NPY may hold many)."""
    ext = extension(name)
    try:
        if ext in IMAGE_EXT:
            if task is not Task.image:
                return [Decoded(name, reason=f"an image, but this is a {task.value} dataset")]
            return [_checked(name, _image(data, spec), spec, label)]
        if ext == ".wav":
            if task is not Task.time_series:
                return [Decoded(name, reason=f"audio, but this is a {task.value} dataset")]
            return [_checked(name, _wav(data, spec), spec, label)]
        if ext == ".npy":
            return _npy(name, data, spec, label)
        if ext == ".csv":
            return _csv(name, data, task, spec, label)
    except _Refused as exc:
        return [Decoded(name, reason=str(exc))]
    return [
        Decoded(
            name,
            reason=f"unsupported file type '{ext or name}' (PNG, JPEG, WAV, CSV, NPY, "
            "or a zip/tar archive of them)",
        )
    ]


class _Refused(ValueError):
    """Why a file is not a sample (becomes a Refusal, not an error of the upload)."""


def _image(data: bytes, spec: SampleSpec) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            height, width, channels = spec.shape
            if img.size != (width, height):
                raise _Refused(
                    f"image is {img.size[0]}x{img.size[1]} (width x height); the dataset "
                    f"takes {width}x{height}"
                )
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise _Refused("not a readable image (PNG or JPEG)") from None
    except (OSError, SyntaxError) as exc:
        raise _Refused(f"a broken image: {exc}") from None
    arr = pixels.reshape(spec.shape)
    return arr.astype(np.float32) / 255.0 if spec.dtype == "float32" else arr


def _wav(data: bytes, spec: SampleSpec) -> np.ndarray:
    import soundfile

    if spec.dtype == "uint8":
        raise _Refused("audio goes into int16 or float32 datasets")
    try:
        frames, rate = soundfile.read(io.BytesIO(data), dtype=spec.dtype, always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _Refused(f"not a readable WAV file: {exc}") from None
    if spec.sample_rate is not None and rate != spec.sample_rate:
        raise _Refused(f"sampled at {rate} Hz; the dataset takes {spec.sample_rate} Hz")
    return np.asarray(frames)


def _npy(name: str, data: bytes, spec: SampleSpec, label: str | None) -> list[Decoded]:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _Refused(f"not a readable .npy array: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise _Refused(f"an array of {getattr(arr, 'dtype', '?')}, not of numbers")
    shape = tuple(spec.shape)
    if arr.shape == shape or (len(shape) == 3 and shape[2] == 1 and arr.shape == shape[:2]):
        return [_checked(name, arr, spec, label)]
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
        return [_checked(f"{name}[{i}]", row, spec, label) for i, row in enumerate(arr)]
    raise _Refused(
        f"array of shape {list(arr.shape)}: the dataset takes {list(shape)} (or N x {list(shape)})"
    )


def _csv(name: str, data: bytes, task: Task, spec: SampleSpec, label: str | None) -> list[Decoded]:
    try:
        text = data.decode("utf-8-sig")
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _Refused(f"not a readable CSV file: {exc}") from None
    if not rows:
        raise _Refused("an empty CSV file")
    header = None if _numeric(rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    if task is Task.time_series:
        try:
            arr = np.array([[float(c) for c in r] for r in body], dtype=np.float64)
        except ValueError as exc:
            raise _Refused(f"a time series CSV holds numbers only: {exc}") from None
        return [_checked(name, arr, spec, label)]
    if task is not Task.tabular:
        raise _Refused(f"a CSV file, but this is a {task.value} dataset")
    n = spec.shape[0]
    pick, label_at = list(range(n)), None
    if header is not None:
        label_at = next((header.index(c) for c in _LABEL_COLUMNS if c in header), None)
        if spec.features is not None:
            missing = [f for f in spec.features if f not in header]
            if missing:
                raise _Refused(f"the CSV has no column(s) {', '.join(missing)}")
            pick = [header.index(f) for f in spec.features]
        else:
            pick = [i for i in range(len(header)) if i != label_at]
            if len(pick) != n:
                raise _Refused(f"the CSV has {len(pick)} feature columns; the dataset takes {n}")
    out = []
    for i, row in enumerate(body, start=2 if header else 1):
        where = f"{name}:{i}"
        at = label_at if header is not None else (n if len(row) == n + 1 else None)
        if header is None and len(row) not in (n, n + 1):
            out.append(Decoded(where, reason=f"{len(row)} values; the dataset takes {n} (and a label)"))
            continue
        try:
            values = np.array([float(row[j]) for j in pick], dtype=np.float64)
        except (ValueError, IndexError):
            out.append(Decoded(where, reason="a value is missing or not a number"))
            continue
        row_label = row[at].strip() if at is not None and at < len(row) and row[at].strip() else None
        out.append(_checked(where, values, spec, label if label is not None else row_label))
    return out


def _numeric(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def _checked(name: str, arr: np.ndarray, spec: SampleSpec, label: str | None) -> Decoded:
    """The array in the dataset's shape and dtype, or why it cannot be."""
    arr = np.asarray(arr)
    shape = list(arr.shape)
    grey = len(spec.shape) == 3 and spec.shape[2] == 1 and shape == spec.shape[:2]
    if shape != spec.shape and not grey:
        return Decoded(name, reason=f"shape {shape}; the dataset takes {spec.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        return Decoded(name, reason="contains NaN or infinity")
    if spec.dtype in _DTYPE_RANGE:
        lo, hi = _DTYPE_RANGE[spec.dtype]
        if arr.size and (
            arr.min() < lo or arr.max() > hi or (arr.dtype.kind == "f" and np.any(arr != np.round(arr)))
        ):
            return Decoded(name, reason=f"values must be {spec.dtype} integers in {lo}..{hi}")
    return Decoded(name, array=arr.reshape(spec.shape).astype(spec.dtype), label=label)


def archive_entries(name: str, fh: IO[bytes]) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Each file of a zip or tar archive as (path, bytes or None, why not); tar is read as a stream,
    zip from the spooled file (its index is at the end). Folders and hidden files are skipped."""
    if name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError) as exc:
            yield name, None, f"not a readable zip archive: {exc}"
            return
        with zf:
            for info in zf.infolist():
                if info.is_dir() or _hidden(info.filename):
                    continue
                if info.file_size > MAX_ENTRY_BYTES:
                    yield (
                        info.filename,
                        None,
                        f"expands to {info.file_size} bytes (at most {MAX_ENTRY_BYTES})",
                    )
                    continue
                try:
                    yield info.filename, zf.read(info), None
                except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                    yield info.filename, None, f"cannot be read from the archive: {exc}"
        return
    try:
        with tarfile.open(fileobj=fh, mode="r|*") as tf:
            for member in tf:
                if not member.isfile() or _hidden(member.name):
                    continue
                if member.size > MAX_ENTRY_BYTES:
                    yield member.name, None, f"is {member.size} bytes (at most {MAX_ENTRY_BYTES})"
                    continue
                f = tf.extractfile(member)
                yield member.name, f.read() if f is not None else b"", None
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield name, None, f"not a readable tar archive: {exc}"


def _hidden(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def folder_label(path: str, classes: list[str]) -> tuple[str | None, str | None]:
    """The label an archive path gives: the innermost folder. A single folder that names no class is
    taken as the archive's top folder (unlabelled); deeper, it is an unknown label."""
    folders = [p for p in path.split("/")[:-1] if p and p != "."]
    if not folders:
        return None, None
    inner = folders[-1]
    if inner in classes:
        return inner, None
    if len(folders) == 1:
        return None, None
    return None, f"unknown label '{inner}' (its folder); the classes are {', '.join(classes)}"

"""Dataset use cases: create, upload (files or one archive), label, browse, versions, and collect
the inputs devices run inferences on. Each request is checked here, once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np

from tinymlaas.datasets.decode import Decoded, archive_entries, decode, folder_label, is_archive
from tinymlaas.datasets.models import (
    Changed,
    Collector,
    CollectRequest,
    Dataset,
    DatasetCreate,
    DatasetDetail,
    DatasetUpdate,
    Refusal,
    Sample,
    SamplePage,
    Split,
    Task,
    UploadResult,
)
from tinymlaas.datasets.tensors import from_model, npy_bytes, npy_load, split_of
from tinymlaas.errors import Conflict, DeviceUnreachable, InvalidInput, NotFound
from tinymlaas.jobs import JobRunner
from tinymlaas.models import DeviceCapabilities, InferenceReport, Job
from tinymlaas.plugins.base import Orchestrator, Progress
from tinymlaas.store import Store
from tinymlaas.store.datasets import NewSample

#: Bytes one uploaded file (not an archive) may have.
MAX_FILE_BYTES = 64 << 20
#: Samples one upload may add (an archive of 10,000 images is well within).
MAX_SAMPLES = 200_000


def create(store: Store, req: DatasetCreate) -> Dataset:
    return store.datasets.create(req)


def resolve(store: Store, ref: str) -> tuple[Dataset, int]:
    """``name`` or id (its head version), or ``name:version``."""
    name, sep, version = ref.rpartition(":")
    if sep and version.isdigit():
        ds = store.datasets.get(name)
        store.datasets.check_version(ds.id, int(version))
        return ds, int(version)
    ds = store.datasets.get(ref)
    return ds, ds.head


def detail(store: Store, ref: str) -> DatasetDetail:
    ds, version = resolve(store, ref)
    return DatasetDetail(
        **ds.model_dump(),
        counts=store.datasets.counts(ds.id, version),
        versions=store.datasets.versions(ds.id),
    )


def update(store: Store, ref: str, req: DatasetUpdate) -> Dataset:
    ds = store.datasets.get(ref)
    return store.datasets.update(ds.id, add_classes=req.add_classes, description=req.description)


def delete(store: Store, ref: str) -> None:
    store.datasets.delete(store.datasets.get(ref).id)


def upload(
    store: Store, ref: str, files: Iterable[tuple[str, IO[bytes]]], *, label: str | None = None
) -> UploadResult:
    """Add the samples in ``files`` (each a sample file, a CSV/NPY of many, or a zip/tar archive);
    every sample that cannot be one is refused with its reason and the others are kept."""
    ds = store.datasets.get(ref)
    if label is not None and label not in ds.spec.classes:
        raise InvalidInput(f"label: unknown label '{label}'; the classes are {', '.join(ds.spec.classes)}")
    new: list[NewSample] = []
    refused: list[Refusal] = []
    for decoded in _decoded(ds, files, label):
        if len(new) >= MAX_SAMPLES:
            refused.append(
                Refusal(name=decoded.name, reason=f"the upload already holds {MAX_SAMPLES} samples")
            )
            continue
        if decoded.array is None:
            refused.append(Refusal(name=decoded.name, reason=decoded.reason or "not a sample"))
        elif decoded.label is not None and decoded.label not in ds.spec.classes:
            refused.append(
                Refusal(
                    name=decoded.name,
                    reason=f"unknown label '{decoded.label}'; the classes are {', '.join(ds.spec.classes)}",
                )
            )
        else:
            sha = store.artifacts.put_bytes(npy_bytes(decoded.array))
            new.append(NewSample(sha, decoded.label, split_of(sha, ds.split), decoded.name))
    version, accepted = store.datasets.add_samples(ds.id, new) if new else (ds.head, [])
    return UploadResult(dataset=ds.name, version=version, accepted=accepted, refused=refused)


def _decoded(ds: Dataset, files: Iterable[tuple[str, IO[bytes]]], label: str | None) -> Iterator[Decoded]:
    for name, fh in files:
        if is_archive(name):
            for path, data, why in archive_entries(name, fh):
                where = f"{name}/{path}" if path != name else name
                if data is None:
                    yield Decoded(where, reason=why)
                    continue
                inner, problem = (label, None) if label is not None else folder_label(path, ds.spec.classes)
                if problem is not None:
                    yield Decoded(where, reason=problem)
                    continue
                yield from decode(where, data, ds.task, ds.spec, inner)
            continue
        data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            yield Decoded(name, reason=f"larger than {MAX_FILE_BYTES} bytes")
            continue
        yield from decode(name, data, ds.task, ds.spec, label)


def set_label(store: Store, ref: str, keys: list[str], label: str | None) -> Changed:
    ds = store.datasets.get(ref)
    if label is not None and label not in ds.spec.classes:
        raise InvalidInput(f"label: unknown label '{label}'; the classes are {', '.join(ds.spec.classes)}")
    version, changed = store.datasets.set_label(ds.id, keys, label)
    return Changed(dataset=ds.name, version=version, changed=changed)


def remove(store: Store, ref: str, keys: list[str]) -> Changed:
    ds = store.datasets.get(ref)
    return Changed(dataset=ds.name, version=store.datasets.remove_samples(ds.id, keys), changed=len(keys))


def browse(
    store: Store,
    ref: str,
    *,
    label: str | None = None,
    unlabelled: bool = False,
    split: Split | None = None,
    source: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> SamplePage:
    ds, version = resolve(store, ref)
    if label is not None and unlabelled:
        raise InvalidInput("filter by a label or by 'unlabelled', not both")
    return store.datasets.samples(
        ds.id,
        version,
        label=label,
        unlabelled=unlabelled,
        split=split,
        source=source,
        offset=offset,
        limit=limit,
    )


def sample(store: Store, ref: str, key: str) -> Sample:
    ds, version = resolve(store, ref)
    return store.datasets.sample(ds.id, key, version)


def sample_data(store: Store, ref: str, key: str, fmt: str = "npy") -> tuple[bytes, str]:
    """The sample's data: its .npy, or for images a PNG."""
    ds, version = resolve(store, ref)
    rec = store.datasets.sample(ds.id, key, version)
    data = store.artifacts.get(rec.sha256).read_bytes()
    if fmt == "npy":
        return data, "application/octet-stream"
    if fmt != "png" or ds.task is not Task.image:
        raise InvalidInput("format: npy, or png for an image dataset")
    from PIL import Image

    arr = npy_load(data)
    pixels = arr if arr.dtype == np.uint8 else np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


# -- collecting from devices -------------------------------------------------------------------


def _input_spec(caps: DeviceCapabilities) -> dict[str, Any]:
    specs: list[dict[str, Any]] = (caps.tensors or {}).get("inputs") or []
    if not specs:
        raise InvalidInput(f"device '{caps.endpoint}' does not describe its input tensor")
    if len(specs) > 1:
        raise InvalidInput(f"the model on '{caps.endpoint}' takes {len(specs)} input tensors; a dataset "
                           "collects samples of a model with one")
    return specs[0]


def report_sample(report: InferenceReport, tensor: dict[str, Any], ds: Dataset) -> np.ndarray:
    """The input a device ran, as a sample of the dataset (ValueError saying why it is not one)."""
    raw = np.asarray(report.input, dtype=np.float64)
    if raw.size != ds.spec.size:
        raise ValueError(
            f"the device's input has {raw.size} values; the dataset's samples have {ds.spec.size}"
        )
    if tensor.get("scale"):
        raw = (raw - float(tensor.get("zero_point") or 0)) * float(tensor["scale"])
    return from_model(raw, ds.spec)


class Collectors:
    """The collections running in this service, by (dataset id, endpoint)."""

    def __init__(self) -> None:
        self.running: dict[tuple[str, str], Collector] = {}


COLLECTORS = Collectors()


def start_collecting(
    store: Store,
    orch: Orchestrator,
    runner: JobRunner,
    ref: str,
    req: CollectRequest,
    collectors: Collectors = COLLECTORS,
) -> Collector:
    """Add the inputs of the device's next inferences to the dataset (unlabelled), as a job that
    ends after ``count`` samples or, ``continuous``, when it is cancelled."""
    ds = store.datasets.get(ref)
    orch.device(req.endpoint)  # NotFound for a device never seen
    key = (ds.id, req.endpoint)
    if key in collectors.running:
        raise Conflict(
            f"device '{req.endpoint}' is already being collected into '{ds.name}' "
            f"(job {collectors.running[key].job_id})"
        )
    job = store.new_job("collect")
    rec = Collector(
        dataset=ds.name,
        endpoint=req.endpoint,
        job_id=job.id,
        continuous=req.continuous,
        collected=0,
        refused=0,
    )
    collectors.running[key] = rec

    async def run(progress: Progress) -> dict[str, Any]:
        try:
            if req.continuous:
                await _collect(store, orch, ds, req, rec, progress)
            else:
                async with asyncio.timeout(req.timeout_s):
                    await _collect(store, orch, ds, req, rec, progress)
        except TimeoutError:
            raise DeviceUnreachable(
                f"device '{req.endpoint}' ran {rec.collected} of {req.count} "
                f"inferences within {req.timeout_s:.0f} s"
            ) from None
        finally:
            collectors.running.pop(key, None)
        return rec.model_dump()

    runner.submit_async(job, run, cancellable=True)
    return rec


async def _collect(
    store: Store, orch: Orchestrator, ds: Dataset, req: CollectRequest, rec: Collector, progress: Progress
) -> None:
    caps = await orch.capabilities(req.endpoint)
    tensor = _input_spec(caps)
    stream = await orch.subscribe(req.endpoint)
    progress(f"collecting from {req.endpoint}", 0.0)
    try:
        async for report in stream:
            if report.model_sha256 and caps.model_sha256 and report.model_sha256 != caps.model_sha256:
                caps = await orch.capabilities(req.endpoint)  # a new model: its own input scale
                tensor = _input_spec(caps)
            try:
                arr = report_sample(report, tensor, ds)
            except ValueError:
                rec.refused += 1
                continue
            data = npy_bytes(arr)
            await asyncio.to_thread(_add_one, store, ds, data, f"device:{req.endpoint}#{report.count}")
            rec.collected += 1
            progress(
                f"collected {rec.collected} sample(s) from {req.endpoint}",
                0.0 if req.continuous else rec.collected / req.count,
            )
            if not req.continuous and rec.collected >= req.count:
                return
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _add_one(store: Store, ds: Dataset, data: bytes, source: str) -> None:
    sha = store.artifacts.put_bytes(data)
    store.datasets.add_samples(ds.id, [NewSample(sha, None, split_of(sha, ds.split), source)])


def collectors(store: Store, ref: str, running: Collectors = COLLECTORS) -> list[Collector]:
    ds = store.datasets.get(ref)
    return [c for (dataset_id, _), c in running.running.items() if dataset_id == ds.id]


def stop_collecting(
    store: Store, runner: JobRunner, ref: str, endpoint: str, running: Collectors = COLLECTORS
) -> Job:
    ds = store.datasets.get(ref)
    rec = running.running.get((ds.id, endpoint))
    if rec is None:
        raise NotFound(f"nothing is being collected from '{endpoint}' into '{ds.name}'")
    return runner.cancel(rec.job_id)

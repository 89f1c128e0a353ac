"""Datasets in the store (SQLite and PostgreSQL): copy-on-write versions locked by a model, labels,
paging and filters; decoding uploads sample by sample; the deterministic split; cancellable jobs."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tinymlaas.datasets.decode import decode, folder_label
from tinymlaas.datasets.models import DatasetCreate, SampleSpec, Split, SplitSpec, Task
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.datasets.tensors import fit_input, split_of
from tinymlaas.errors import Conflict, InvalidInput, NotFound
from tinymlaas.jobs import JobRunner
from tinymlaas.models import JobState
from tinymlaas.plugins.base import Progress
from tinymlaas.services import datasets as service
from tinymlaas.store import Store

SPEC = SampleSpec(shape=[2, 2, 1], dtype="uint8", classes=["a", "b"])


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url, tmp_path / "artifacts")
    yield s
    s.close()


def _npy(arr: np.ndarray) -> io.BytesIO:
    buf = io.BytesIO()
    np.save(buf, arr)
    buf.seek(0)
    return buf


def test_versions_are_copy_on_write_once_locked(store: Store) -> None:
    service.create(store, DatasetCreate(name="d", task=Task.image, spec=SPEC))
    up = service.upload(store, "d", [("x.npy", _npy(np.arange(12, dtype=np.uint8).reshape(3, 2, 2, 1)))],
                        label="a")
    assert (up.version, len(up.accepted), up.refused) == (1, 3, [])
    first = up.accepted[0].id
    assert service.set_label(store, "d", [first], "b").version == 1  # unlocked: changed in place
    ds = store.datasets.get("d")
    store.datasets.lock(ds.id, 1)
    changed = service.set_label(store, "d", [first], None)
    assert (changed.version, changed.changed) == (2, 1)
    assert store.datasets.sample(ds.id, first, 1).label == "b"
    assert store.datasets.sample(ds.id, first, 2).label is None
    assert service.remove(store, "d", [up.accepted[1].id]).version == 2
    v1, v2 = store.datasets.counts(ds.id, 1), store.datasets.counts(ds.id, 2)
    assert (v1.total, v1.unlabelled, v1.labels) == (3, 0, {"a": 2, "b": 1})
    assert (v2.total, v2.unlabelled, v2.labels) == (2, 1, {"a": 1})
    assert [(v.version, v.locked) for v in store.datasets.versions(ds.id)] == [(1, True), (2, False)]
    assert service.browse(store, "d", unlabelled=True).total == 1
    assert service.browse(store, "d:1", label="a").total == 2
    page = service.browse(store, "d:1", offset=1, limit=1)
    assert (page.total, len(page.items)) == (3, 1)
    with pytest.raises(NotFound, match="no sample"):
        service.set_label(store, "d", ["nope", first], "a")
    with pytest.raises(InvalidInput, match="unknown label 'c'"):
        service.set_label(store, "d", [first], "c")
    with pytest.raises(NotFound, match="no version 3"):
        service.browse(store, "d:3")
    with pytest.raises(Conflict, match="exists"):
        service.create(store, DatasetCreate(name="d", task=Task.image, spec=SPEC))


def test_an_upload_keeps_the_good_samples_and_says_why_each_bad_one_is_not(store: Store) -> None:
    service.create(store, DatasetCreate(name="d", task=Task.image, spec=SPEC))
    from PIL import Image

    def png(size: tuple[int, int]) -> bytes:
        buf = io.BytesIO()
        Image.new("L", size).save(buf, format="PNG")
        return buf.getvalue()

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/a/ok.png", png((2, 2)))
        zf.writestr("top/b/big.png", png((3, 2)))
        zf.writestr("top/c/odd.png", png((2, 2)))
        zf.writestr("top/loose.png", png((2, 2)))
        zf.writestr("top/a/notes.txt", b"hello")
        zf.writestr("__MACOSX/top/a/._ok.png", b"junk")
    archive.seek(0)
    result = service.upload(store, "d", [("set.zip", archive), ("bad.npy", io.BytesIO(b"nope"))])
    assert [(s.label, s.source) for s in result.accepted] == [("a", "set.zip/top/a/ok.png"),
                                                              (None, "set.zip/top/loose.png")]
    why = {r.name.rsplit("/", 1)[-1]: r.reason for r in result.refused}
    assert set(why) == {"big.png", "odd.png", "notes.txt", "bad.npy"}
    assert "3x2" in why["big.png"] and "unknown label 'c'" in why["odd.png"]
    assert "unsupported file type" in why["notes.txt"] and "not a readable .npy" in why["bad.npy"]


def test_decoders_of_audio_csv_and_arrays() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.arange(4, dtype=np.int16).tobytes())
    audio = SampleSpec(shape=[4, 1], dtype="int16", classes=["x", "y"], sample_rate=8000)
    [ok] = decode("t.wav", buf.getvalue(), Task.time_series, audio)
    assert ok.array is not None and ok.array.ravel().tolist() == [0, 1, 2, 3]
    slow = audio.model_copy(update={"sample_rate": 16000})
    assert "8000 Hz" in (decode("t.wav", buf.getvalue(), Task.time_series, slow)[0].reason or "")
    table = SampleSpec(shape=[2], classes=["x", "y"], features=["f1", "f2"])
    rows = decode("t.csv", b"f2,label,f1\n1,x,2\n3,y,oops\n5,z,6\n", Task.tabular, table)
    assert rows[0].array is not None and rows[0].array.tolist() == [2.0, 1.0] and rows[0].label == "x"
    assert rows[1].reason == "a value is missing or not a number"
    assert rows[2].label == "z"  # an unknown label is refused by the upload, which knows the classes
    nan = decode("n.npy", _npy(np.array([np.nan, 1.0])).getvalue(), Task.tabular, table)
    assert nan[0].reason == "contains NaN or infinity"
    assert folder_label("a/b/c.png", ["b"]) == ("b", None)
    assert folder_label("top/c.png", ["b"]) == (None, None)
    assert folder_label("x/y/c.png", ["b"])[1] is not None


def test_the_split_follows_the_content_alone() -> None:
    split = SplitSpec()
    parts = [split_of(f"{i:064x}", split) for i in range(3000)]
    assert parts == [split_of(f"{i:064x}", split) for i in range(3000)]
    share = {p: parts.count(p) / len(parts) for p in Split}
    assert abs(share[Split.train] - 0.7) < 0.03 and abs(share[Split.test] - 0.15) < 0.03
    assert [split_of(f"{i:064x}", SplitSpec(seed=1)) for i in range(50)] != parts[:50]


def test_inputs_fit_a_model_shape() -> None:
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    assert fit_input(images, [4, 4, 1]).shape == (2, 4, 4, 1)
    series = np.linspace(0, 1, 20, dtype=np.float32).reshape(1, 10, 2)
    assert fit_input(series, [5, 2]).shape == (1, 5, 2)
    with pytest.raises(ValueError, match="cannot become"):
        fit_input(images, [8, 8, 3])


def test_sample_data_fits_its_spec(tmp_path: Path) -> None:
    for ex in EXAMPLES.values():
        path = tmp_path / f"{ex.name}{ex.suffix}"
        n = ex.write(path, 4 if ex.name != "digits" else 20, 0)
        store = Store(f"sqlite:///{tmp_path / ex.name}.db", tmp_path / "art")
        service.create(store, DatasetCreate(name=ex.name, task=ex.task, spec=ex.spec))
        with path.open("rb") as fh:
            result = service.upload(store, ex.name, [(path.name, fh)])
        store.close()
        assert (len(result.accepted), result.refused) == (n, []), ex.name
        assert all(s.label in ex.spec.classes for s in result.accepted)


def test_a_cancelled_thread_job_stops_at_its_next_progress(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/db.sqlite3", tmp_path / "a")
    unwound = threading.Event()

    def slow(progress: Progress) -> dict[str, int]:
        try:
            for i in range(200):
                progress("working", i / 200)
                time.sleep(0.02)
        finally:
            unwound.set()
        return {}

    async def go() -> tuple[str, str]:
        runner = JobRunner(store)
        job = runner.submit(store.new_job("t"), slow, cancellable=True)
        plain = runner.submit(store.new_job("build"), lambda p: {})
        await asyncio.sleep(0.2)
        runner.cancel(job.id)
        await runner.drain()
        with pytest.raises(Conflict, match="already ended"):
            runner.cancel(plain.id)
        return job.id, plain.id

    cancelled, plain = asyncio.run(go())
    assert store.job(cancelled).state == JobState.cancelled and unwound.is_set()
    assert store.job(plain).state == JobState.succeeded

"""Steps for the data scientist's stories, against the live API over real HTTP: datasets uploaded
as archives, training jobs, profiles on the emulated boards, an x86 device over LwM2M."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_jobs import follow_job
from pytest_bdd import given, parsers, scenarios, then, when

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.samples import EXAMPLES, digits_images
from tinymlaas.models import LwM2MAttach
from tinymlaas.services.x86_device import X86Device
from tinymlaas.targets import get_board

scenarios("datascientist")

DIGITS = EXAMPLES["digits"]


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _archive(images: np.ndarray, labels: np.ndarray, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (img, y) in enumerate(zip(images, labels, strict=True)):
            zf.writestr(f"digits/{y}/{i:05d}.png", _png(img))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _create(api: httpx.Client) -> None:
    r = api.post("/datasets", json={"name": "digits", "task": "image", "spec": DIGITS.spec.model_dump()})
    assert r.status_code == 201, r.text


def _train(api: httpx.Client, **settings: Any) -> dict[str, Any]:
    r = api.post("/trainings", json={"dataset": "digits", **settings})
    assert r.status_code == 202, r.text
    states = follow_job(api, r.json()["job_id"], timeout=300)
    assert states[-1]["state"] == "succeeded", states[-1]
    return {"training": api.get(f"/trainings/{r.json()['id']}").json(), "states": states,
            "job": states[-1]}


# -- scenario 1 ---------------------------------------------------------------------------------


@when("I upload scikit-learn's handwritten digits as one archive with three bad files in it",
      target_fixture="upload")
def upload_digits(api: httpx.Client) -> dict[str, Any]:
    _create(api)
    images, labels = digits_images()
    bad = {"digits/7/torn.png": b"\x89PNG not really", "digits/3/big.png": _png(np.zeros((28, 28), np.uint8)),
           "digits/eleven/x.png": _png(images[0])}
    r = api.post("/datasets/digits/samples", files={"files": ("digits.zip", _archive(images, labels, bad))})
    assert r.status_code == 200, r.text
    return {"answer": r.json(), "good": len(images)}


@then("each bad file is refused with its reason and every other image is kept")
def refused_one_by_one(api: httpx.Client, upload: dict[str, Any]) -> None:
    answer = upload["answer"]
    reasons = {r["name"].rsplit("/", 1)[-1]: r["reason"] for r in answer["refused"]}
    assert set(reasons) == {"torn.png", "big.png", "x.png"}, reasons
    assert "not a readable image" in reasons["torn.png"]
    assert "28x28" in reasons["big.png"] and "8x8" in reasons["big.png"]
    assert "unknown label 'eleven'" in reasons["x.png"]
    assert len(answer["accepted"]) == upload["good"]
    counts = api.get("/datasets/digits").json()["counts"]
    assert counts["total"] == upload["good"] and counts["unlabelled"] == 0
    assert set(counts["splits"]) == {"train", "validation", "test"}


@when(parsers.parse('I train a model on "digits" with {epochs:d} epochs, batch size {batch:d}, learning rate '
                    '{lr:g} and seed {seed:d}'), target_fixture="trained")
def train_digits(api: httpx.Client, epochs: int, batch: int, lr: float, seed: int) -> dict[str, Any]:
    bad = api.post("/trainings", json={"dataset": "digits", "epochs": epochs, "epoch_count": 3})
    assert bad.status_code == 422 and "epoch_count" in bad.json()["detail"], bad.text
    return _train(api, epochs=epochs, batch_size=batch, learning_rate=lr, seed=seed)


@then("the training reports every epoch's loss and accuracy until it succeeds")
def epochs_reported(trained: dict[str, Any]) -> None:
    training = trained["training"]
    assert training["state"] == "succeeded"
    assert [e["epoch"] for e in training["epochs"]] == list(range(1, training["settings"]["epochs"] + 1))
    assert all(e["loss"] > 0 and 0 <= e["accuracy"] <= 1 for e in training["epochs"])
    assert training["epochs"][-1]["loss"] < training["epochs"][0]["loss"]
    steps = [s["step"] for s in trained["states"]]
    assert any(re.match(r"epoch \d+/\d+: loss [\d.]+, accuracy [\d.]+", s) for s in steps), steps


@then("the int8 model's accuracy on the test split is within 2 points of the float model's")
def int8_close_to_float(api: httpx.Client, trained: dict[str, Any]) -> None:
    lineage = api.get(f"/models/{trained['training']['model_id']}/lineage").json()
    fl, q = lineage["metrics"]["float"], lineage["metrics"]["int8"]
    assert fl["accuracy"] > 0.9, fl["accuracy"]
    assert abs(fl["accuracy"] - q["accuracy"]) <= 0.02, (fl["accuracy"], q["accuracy"])
    assert len(q["confusion"]) == 10 and sum(map(sum, q["confusion"])) == q["samples"]
    evaluation = trained["job"]["result"]["evaluation_id"]
    png = api.get(f"/evaluations/{evaluation}/confusion.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


@then("the model version keeps its lineage: dataset version 1, the settings and the seed")
def lineage_kept(api: httpx.Client, trained: dict[str, Any]) -> None:
    model = api.get(f"/models/{trained['training']['model_id']}").json()
    lineage = api.get(f"/models/{model['id']}/lineage").json()
    assert (lineage["dataset"], lineage["dataset_version"], lineage["seed"]) == ("digits", 1, 3)
    assert lineage["settings"]["epochs"] == 12 and lineage["settings"]["learning_rate"] == 0.005
    assert lineage["variants"]["int8"] == model["sha256"]
    float_model = api.get(f"/models/{model['id']}/variants/float")
    assert float_model.status_code == 200 and len(float_model.content) > 1000
    assert model["info"]["inputs"][0]["dtype"] == "int8"


@then("dataset version 1 no longer changes: relabelling a sample makes version 2")
def version_locked(api: httpx.Client) -> None:
    sample = api.get("/datasets/digits/samples", params={"label": "1", "limit": 1}).json()["items"][0]
    changed = api.patch("/datasets/digits/samples", json={"samples": [sample["id"]], "label": "7"}).json()
    assert changed["version"] == 2
    assert api.get(f"/datasets/digits:1/samples/{sample['id']}").json()["label"] == "1"
    assert api.get(f"/datasets/digits:2/samples/{sample['id']}").json()["label"] == "7"
    versions = api.get("/datasets/digits/versions").json()
    assert [(v["version"], v["locked"]) for v in versions] == [(1, True), (2, False)]


@when("I profile the model across the boards", target_fixture="profile")
def profile_model(api: httpx.Client, trained: dict[str, Any], images: dict[str, bool]) -> dict[str, Any]:
    r = api.post("/profiles", json={"model": trained["training"]["model_id"]})
    assert r.status_code == 202, r.text
    states = follow_job(api, r.json()["id"], timeout=300)
    assert states[-1]["state"] == "succeeded", states[-1]
    return dict(states[-1]["result"])


@then("the profile says which boards it fits, with instructions and latency measured on their emulators")
def profile_rows(api: httpx.Client, profile: dict[str, Any], settings: Settings) -> None:
    from tinymlaas.targets import load_boards

    rows = {r["board"]: r for r in profile["boards"]}
    assert set(rows) == set(load_boards(settings.targets_dir))
    m3 = rows["lm3s6965evb"]
    assert m3["fits"] and m3["emulator"] == "qemu" and m3["instructions"] > 10_000
    assert m3["latency_ms"] == pytest.approx(m3["instructions"] / m3["clock_hz"] * 1000, rel=1e-3)
    assert m3["flash_bytes"] < m3["flash_total"] and m3["ram_bytes"] < m3["ram_total"]
    assert rows["mps2-an386"]["instructions"] < rows["microbit"]["instructions"]  # M4 vs M0
    assert rows["x86-tflm"]["fits"] and rows["x86-tflm"]["instructions"] is None
    assert api.get(f"/artifacts/{profile['plot_sha256']}").content.startswith(b"\x89PNG")


@when(parsers.parse('I deploy the model to an emulated "{board}" and run the test split on it'),
      target_fixture="on_device")
def evaluate_on_device(api: httpx.Client, trained: dict[str, Any], board: str) -> dict[str, Any]:
    model = trained["training"]["model_id"]
    r = api.post("/evaluations", json={"model": model, "dataset": "digits:1", "target": board})
    assert r.status_code == 202, r.text
    states = follow_job(api, r.json()["id"], timeout=300)
    assert states[-1]["state"] == "succeeded", states[-1]
    return dict(states[-1]["result"])


@then("the device's accuracy equals the int8 model's and its outputs are the interpreter's bytes")
def device_matches(api: httpx.Client, trained: dict[str, Any], on_device: dict[str, Any]) -> None:
    lineage = api.get(f"/models/{trained['training']['model_id']}/lineage").json()
    device = on_device["device"]
    assert device["bit_exact"] and device["mismatches"] == 0 and device["emulator"] == "qemu"
    assert device["samples"] == lineage["metrics"]["int8"]["samples"]
    assert on_device["metrics"]["device"]["accuracy"] == lineage["metrics"]["int8"]["accuracy"]
    assert device["instructions"] > 10_000


# -- scenario 2 ---------------------------------------------------------------------------------

LABELLED, UNSEEN = 150, 300


@given(parsers.parse("a digits dataset with {n:d} labelled images and a model trained on it"),
       target_fixture="first")
def first_model(api: httpx.Client, n: int) -> dict[str, Any]:
    _create(api)
    images, labels = digits_images()
    r = api.post("/datasets/digits/samples", files={"files": ("few.zip", _archive(images[:n], labels[:n]))})
    assert len(r.json()["accepted"]) == n, r.text
    return _train(api, epochs=15, seed=5)["training"]


@pytest.fixture
def device_box() -> Iterator[dict[str, Any]]:
    box: dict[str, Any] = {}
    yield box
    if "device" in box:
        box["device"].close()


@given(parsers.parse('the model runs on x86 device "{ep}", managed by the service'))
def device_runs_model(api: httpx.Client, service: BackgroundServer, first: dict[str, Any], ep: str,
                      tmp_path: Path, images: dict[str, bool], device_box: dict[str, Any]) -> None:
    r = api.post("/builds", json={"model": first["model_id"], "target": "x86-tflm", "version": "1.0.0"})
    assert r.status_code == 202, r.text
    assert follow_job(api, r.json()["job"]["id"])[-1]["state"] == "succeeded"
    build = api.get(f"/builds/{r.json()['build']['id']}").json()
    flash = tmp_path / ep
    flash.mkdir()
    image = build["firmware"]["image"]
    (flash / image).write_bytes(api.get(f"/artifacts/{build['firmware']['image_sha256']}").content)
    uri = api.get("/orchestrator").json()["uri"]
    board = get_board(service.settings.targets_dir, "x86-tflm")
    device_box["device"] = X86Device(board, flash, attach=LwM2MAttach(uri=uri, endpoint=ep, lifetime_s=60))
    deadline = time.monotonic() + 30
    while not any(d["endpoint"] == ep and d["online"] for d in api.get("/devices").json()):
        assert time.monotonic() < deadline, f"{ep} did not register"
        time.sleep(0.2)
    device_box["endpoint"] = ep


@when(parsers.parse('I collect the inputs of the next {n:d} inferences of "{ep}" into the dataset'),
      target_fixture="collector")
def collect(api: httpx.Client, n: int, ep: str) -> dict[str, Any]:
    r = api.post("/datasets/digits/collect", json={"endpoint": ep, "count": n, "timeout_s": 120})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 20
    while not api.get(f"/jobs/{r.json()['job_id']}").json()["step"].startswith("collecting"):  # subscribed
        assert time.monotonic() < deadline, "the collector did not subscribe"
        time.sleep(0.05)
    return dict(r.json())


@when(parsers.parse("the device runs inferences on {n:d} images it has not seen"), target_fixture="unseen")
def run_unseen(api: httpx.Client, device_box: dict[str, Any], collector: dict[str, Any], n: int
               ) -> list[int]:
    images, labels = digits_images()
    ep = device_box["endpoint"]
    for i, img in enumerate(images[LABELLED:LABELLED + n]):
        r = api.post(f"/devices/{ep}/infer", json={"values": (img.astype(np.float64) / 255).ravel().tolist()})
        assert r.status_code == 200, r.text
        # The results stream is the device's latest inference, not a queue: one at a time.
        deadline = time.monotonic() + 10
        while (i + 1 < n and api.get("/datasets/digits/collectors").json()[0]["collected"] <= i):
            assert time.monotonic() < deadline, f"inference {i} was not collected"
            time.sleep(0.01)
    states = follow_job(api, collector["job_id"], timeout=120)
    assert states[-1]["state"] == "succeeded", states[-1]
    return [int(y) for y in labels[LABELLED:LABELLED + n]]


@then(parsers.parse('the dataset has {n:d} unlabelled samples from "{ep}"'))
def unlabelled(api: httpx.Client, n: int, ep: str) -> None:
    page = api.get("/datasets/digits/samples", params={"unlabelled": True, "limit": 1}).json()
    assert page["total"] == n
    from_device = api.get("/datasets/digits/samples", params={"source": f"device:{ep}#", "limit": 1}).json()
    assert from_device["total"] == n


@when("I label them and train again from the first model", target_fixture="second")
def label_and_retrain(api: httpx.Client, first: dict[str, Any], unseen: list[int]) -> dict[str, Any]:
    images, _ = digits_images()
    seen = images[LABELLED:LABELLED + len(unseen)].reshape(len(unseen), -1).astype(np.int32)
    by_label: dict[str, list[str]] = {}
    offset = 0
    while True:
        page = api.get("/datasets/digits/samples", params={"unlabelled": True, "limit": 200,
                                                           "offset": offset}).json()
        for s in page["items"]:
            data = np.load(io.BytesIO(api.get(f"/datasets/digits/samples/{s['id']}/data").content))
            nearest = int(np.abs(seen - data.reshape(1, -1).astype(np.int32)).sum(axis=1).argmin())
            by_label.setdefault(str(unseen[nearest]), []).append(s["id"])
        offset += len(page["items"])
        if offset >= page["total"]:
            break
    for label, ids in by_label.items():
        r = api.patch("/datasets/digits/samples", json={"samples": ids, "label": label})
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
    return _train(api, epochs=15, seed=5, base=first["model_id"])["training"]


@then("version 2 of the model is more accurate than version 1 on the new test split")
def better(api: httpx.Client, first: dict[str, Any], second: dict[str, Any]) -> None:
    v2 = api.get(f"/models/{second['model_id']}").json()
    assert v2["name"] == "digits" and v2["version"] == 2
    r = api.post("/evaluations", json={"model": first["model_id"], "dataset": "digits:2"})
    old = follow_job(api, r.json()["id"])[-1]["result"]["metrics"]["int8"]
    new = api.get(f"/models/{second['model_id']}/lineage").json()["metrics"]["int8"]
    assert old["samples"] == new["samples"]
    assert new["accuracy"] > old["accuracy"], (old["accuracy"], new["accuracy"])


@then("the lineage of version 2 names dataset version 2 and version 1 as its parent")
def lineage_v2(api: httpx.Client, first: dict[str, Any], second: dict[str, Any]) -> None:
    lineage = api.get(f"/models/{second['model_id']}/lineage").json()
    assert lineage["dataset_version"] == 2 and lineage["parent_model_id"] == first["model_id"]
    versions = api.get("/datasets/digits/versions").json()
    assert [v["locked"] for v in versions] == [True, True]

"""The data scientist's targets: training the digits CNN (< 60 s on the 2-core machine), int8
accuracy within 1 point of float on digits, 10,000 images uploaded as one archive (< 30 s) and a
profile of one model on every board (< 20 s warm).

Training runs the service's own path (child process, TensorFlow start-up and both conversions
included) with the default settings; the upload goes through the real HTTP API (multipart, one zip
of 10,000 PNGs); the profile compiles, builds and boots on every board, measured the second time
(images built, caches warm).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bar_plot, report

from tinymlaas.api.server import BackgroundServer
from tinymlaas.config import Settings
from tinymlaas.datasets.models import DatasetCreate, TrainingSettings
from tinymlaas.datasets.samples import EXAMPLES
from tinymlaas.images import ensure_all
from tinymlaas.services import datasets as datasets_service
from tinymlaas.services.profile import boards_for, profile
from tinymlaas.services.training import train_now
from tinymlaas.store import Store

TARGETS = {"train_s": 60.0, "int8_drop_points": 1.0, "upload_10k_s": 30.0, "profile_warm_s": 20.0}


def _upload(work: Path) -> dict[str, Any]:
    archive = work / "digits-10k.zip"
    n = EXAMPLES["digits"].write(archive, 10_000, 1)
    settings = Settings(data_dir=work / "service", lwm2m={"port": 0})
    with BackgroundServer(settings) as server, server.client(timeout=300) as api:
        api.post("/datasets", json={"name": "digits", "task": "image",
                                    "spec": EXAMPLES["digits"].spec.model_dump()}).raise_for_status()
        start = time.monotonic()
        with archive.open("rb") as fh:
            r = api.post("/datasets/digits/samples", files={"files": ("digits-10k.zip", fh)})
        seconds = time.monotonic() - start
        r.raise_for_status()
    return {"images": n, "archive_bytes": archive.stat().st_size, "accepted": len(r.json()["accepted"]),
            "refused": len(r.json()["refused"]), "seconds": round(seconds, 2),
            "images_per_s": round(n / seconds)}


def _train(work: Path) -> tuple[dict[str, Any], bytes]:
    settings = Settings(data_dir=work / "train")
    store = Store(settings.db_url, settings.artifacts_dir)
    ex = EXAMPLES["digits"]
    ex.write(work / "digits.zip", 0, 0)
    datasets_service.create(store, DatasetCreate(name="digits", task=ex.task, spec=ex.spec))
    with (work / "digits.zip").open("rb") as fh:
        datasets_service.upload(store, "digits", [("digits.zip", fh)])
    start = time.monotonic()
    result = train_now(store, settings, TrainingSettings(dataset="digits"))
    seconds = time.monotonic() - start
    model = store.model(result["model_id"])
    data = store.artifacts.get(model.sha256).read_bytes()
    lineage = store.datasets.lineage(model.id)
    store.close()
    fl, q = lineage.metrics["float"], lineage.metrics["int8"]
    return {"epochs": 20, "seconds": round(seconds, 1), "float_accuracy": fl.accuracy,
            "int8_accuracy": q.accuracy, "test_samples": q.samples,
            "int8_drop_points": round((fl.accuracy - q.accuracy) * 100, 2), "tflite_bytes": len(data)}, data


def run(json_path: Path | None, plots: Path) -> None:
    settings = Settings()
    ensure_all(settings)
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        work = Path(tmp)
        trained, model = _train(work)
        uploaded = _upload(work)
        boards = boards_for(settings, None)
        profile(settings, model, boards)  # cold: builds what the boards need once
        start = time.monotonic()
        warm = profile(settings, model, boards)
        profile_s = time.monotonic() - start
    rows = [
        {"what": "train the digits CNN (20 epochs, TF start and conversions included)",
         "measured": trained["seconds"], "unit": "s", "target": f"< {TARGETS['train_s']:g}",
         "met": trained["seconds"] < TARGETS["train_s"]},
        {"what": f"int8 vs float test accuracy ({trained['float_accuracy']:.2%} float, "
                 f"{trained['int8_accuracy']:.2%} int8)",
         "measured": trained["int8_drop_points"], "unit": "points",
         "target": f"<= {TARGETS['int8_drop_points']:g}",
         "met": trained["int8_drop_points"] <= TARGETS["int8_drop_points"]},
        {"what": f"upload {uploaded['images']:,} PNGs as one zip over HTTP ({uploaded['images_per_s']:,}/s)",
         "measured": uploaded["seconds"], "unit": "s", "target": f"< {TARGETS['upload_10k_s']:g}",
         "met": uploaded["seconds"] < TARGETS["upload_10k_s"]},
        {"what": f"profile on all {len(boards)} boards, warm", "measured": round(profile_s, 1), "unit": "s",
         "target": f"< {TARGETS['profile_warm_s']:g}", "met": profile_s < TARGETS["profile_warm_s"]},
    ]
    report("Datasets, training and profiles", rows, json_path=json_path,
           extra={"training": trained, "upload": uploaded, "targets": TARGETS,
                  "profile": warm.model_dump(mode="json")})
    measured = [r for r in warm.boards if r.latency_ms is not None]
    bar_plot(plots / "datasets_profile_latency.png", "digits CNN: latency per inference at the board's clock",
             [r.board for r in measured], {"ms": [r.latency_ms or 0.0 for r in measured]}, "ms")

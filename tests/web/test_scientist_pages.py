"""The data scientist's pages without a browser: datasets with thumbnails or waveforms, upload and
labelling through the same services as the API, training's settings refused in the API's words."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
from _web import Web

from tinymlaas.datasets.samples import EXAMPLES


def _digits(n: int) -> bytes:
    """An archive of ``n`` of scikit-learn's digits, a folder per class."""
    from tinymlaas.datasets.samples import _png, digits_images

    images, labels = digits_images(n)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (img, y) in enumerate(zip(images, labels, strict=True)):
            zf.writestr(f"d/{y}/{i}.png", _png(img))
    return buf.getvalue()


def _create(web: Web, name: str, example: str) -> None:
    ex = EXAMPLES[example]
    r = web.client.post("/datasets", json={"name": name, "task": ex.task.value, "spec": ex.spec.model_dump(
        exclude_none=True)}, headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 201, r.text


def test_a_dataset_is_created_uploaded_to_and_labelled_from_its_page(web: Web) -> None:
    client = web.login("ana")
    csrf = web.csrf()
    r = client.post("/ui/scientist/datasets", data={"name": "digits", "task": "image", "shape": "8, 8, 1",
                                                    "dtype": "uint8", "classes": "0 1 2 3 4 5 6 7 8 9"},
                    headers=csrf)
    assert r.status_code == 204 and r.headers["HX-Redirect"] == "/ui/scientist/datasets/digits", r.text
    r = client.post("/ui/scientist/datasets/digits/upload", files=[("files", ("d.zip", _digits(30)))],
                    headers=csrf)
    assert r.status_code == 200 and "Added 30 samples" in r.text
    assert r.headers["HX-Trigger"] == "samples-changed"
    r = client.post("/ui/scientist/datasets/digits/upload", data={"label": "3"},
                    files=[("files", ("x.npy", b"not an array"))], headers=csrf)
    assert "refused 1" in r.text and "x.npy" in r.text
    page = client.get("/ui/scientist/datasets/digits").text
    assert page.count('<img src="/datasets/digits/samples/') == 30 and 'data-key="1"' in page
    keys = re.findall(r'name="samples" value="([^"]+)"', page)
    r = client.patch("/ui/scientist/datasets/digits/labels", data={"samples": keys[:2], "label": "",
                                                                    "show": "unlabelled"}, headers=csrf)
    assert r.status_code == 200 and "labelled 2" in r.text and 'hx-swap-oob="true"' in r.text
    assert len(re.findall(r'name="samples"', r.text)) == 2  # the unlabelled ones now
    assert 'data-testid="unlabelled">2<' in r.text
    # Refusals come back as the API's problem.
    r = client.patch("/ui/scientist/datasets/digits/labels", data={"samples": keys[:1], "label": "eleven"},
                     headers=csrf)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "unknown label 'eleven'" in r.json()["detail"]
    r = client.patch("/ui/scientist/datasets/digits/labels", data={"label": "1"}, headers=csrf)
    assert r.status_code == 422 and "select the samples" in r.json()["detail"]
    r = client.post("/ui/scientist/datasets", data={"name": "bad", "task": "image", "shape": "8, 8",
                                                    "classes": "a b"}, headers=csrf)
    assert r.status_code == 422 and "[height, width, channels]" in r.json()["detail"]


def test_time_series_samples_are_drawn_as_waveforms_and_tabular_rows_as_bars(web: Web) -> None:
    _create(web, "gestures", "gestures")
    buf = io.BytesIO()
    np.save(buf, np.stack([np.sin(np.linspace(0, 6, 64 * 3)).reshape(64, 3).astype(np.float32)]))
    client = web.login("ana")
    r = client.post("/ui/scientist/datasets/gestures/upload", files=[("files", ("g.npy", buf.getvalue()))],
                    headers=web.csrf())
    assert "Added 1 sample " in r.text, r.text
    page = client.get("/ui/scientist/datasets/gestures/rows").text
    assert page.count("<polyline") == 3 and 'aria-label="waveform, 3 channel(s)"' in page


def test_training_settings_are_the_apis_and_refused_in_its_words(web: Web) -> None:
    _create(web, "iris", "iris")
    client = web.login("ana")
    page = client.get("/ui/scientist/trainings").text
    assert 'name="epochs"' in page and 'name="batch_size"' in page and "iris (tabular" in page
    r = client.post("/ui/scientist/trainings", data={"dataset": "iris", "epochs": "5", "batch_size": "0"},
                    headers=web.csrf())
    assert r.status_code == 422 and r.json()["detail"].startswith("batch_size:")
    r = client.post("/ui/scientist/trainings", data={"dataset": "iris", "epochs": "5"}, headers=web.csrf())
    assert r.status_code == 422 and "has 0 labelled samples" in r.json()["detail"]


def test_a_viewer_sees_the_data_but_no_labelling(web: Web) -> None:
    _create(web, "iris", "iris")
    client = web.login("viewer")
    page = client.get("/ui/scientist/datasets/iris").text
    assert "Browse</h2>" in page and "Upload" not in page and 'data-key=' not in page
    r = client.patch("/ui/scientist/datasets/iris/labels", data={"samples": ["x"], "label": "setosa"},
                     headers=web.csrf())
    assert r.status_code == 403
    assert client.get("/ui/scientist/models").status_code == 200
    assert client.get("/ui/scientist/models/ghost").status_code == 404


def test_classes_named_by_a_digit_keep_it_as_their_key() -> None:
    from tinymlaas.web.pages.scientist import class_keys

    assert class_keys([str(i) for i in range(10)]) == {str(i): str(i) for i in range(10)}
    assert class_keys(["low", "mid", "high"]) == {"low": "1", "mid": "2", "high": "3"}
    assert class_keys(["a", "1", "b"]) == {"1": "1", "a": "2", "b": "3"}
    assert len(class_keys([f"c{i}" for i in range(12)])) == 10


def test_a_training_is_watched_epoch_by_epoch_on_its_chart(web: Web) -> None:
    """A training's record as the job writes it (two epochs in), on its page and its stream."""
    from tinymlaas.datasets.models import TrainingSettings
    from tinymlaas.store import Store

    _create(web, "iris", "iris")
    store = web.client.app.state.store  # type: ignore[attr-defined]
    assert isinstance(store, Store)
    ds = store.datasets.get("iris")
    t = store.datasets.add_training(job_id=store.new_job("train").id, dataset_id=ds.id, version=ds.head,
                                    settings=TrainingSettings(dataset="iris", epochs=5))
    epochs = [{"epoch": i, "loss": 1.0 / i, "accuracy": 0.3 * i, "val_loss": 1.1 / i,
               "val_accuracy": 0.25 * i} for i in (1, 2)]
    store.datasets.update_training(t.id, state="running", epochs=epochs)
    client = web.login("viewer")
    page = client.get(f"/ui/scientist/trainings/{t.id}").text
    assert 'sse-connect="/ui/scientist/trainings/' in page and "epoch 2 of 5" in page
    spec = re.search(r"data-chart='([^']+)'", page)
    assert spec is not None and '"label": "validation accuracy"' in spec.group(1).replace("&#34;", '"')
    store.datasets.update_training(t.id, state="succeeded", model_id="m1", seconds=3.0)
    with client.stream("GET", f"/ui/scientist/trainings/{t.id}/events") as events:
        body = "".join(events.iter_text())
    assert "event: training" in body and "model <a href=\"/ui/scientist/models/m1\">" in body
    assert body.rstrip().endswith("event: done\ndata:")

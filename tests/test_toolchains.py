"""Toolchains registered at run time, against the real Docker engine: a small partner image
(its self-test only, built FROM scratch) uploaded as a ``docker save`` archive or taken from
the engine, accepted only when its self-test passes and names the boards; refusals name why."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from _auth import as_admin
from fastapi.testclient import TestClient

from tinymlaas.api.main import create_app
from tinymlaas.config import REPO_ROOT, Settings

pytestmark = pytest.mark.docker
SOURCE = REPO_ROOT / "tests" / "data" / "tiny_builder"


@pytest.fixture(scope="module")
def engine() -> Any:
    from tinymlaas.errors import BuildFailed
    from tinymlaas.images import docker_client

    try:
        return docker_client()
    except BuildFailed as exc:
        pytest.skip(exc.message)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny partner image's build context, its entry point compiled static."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the test image's static entry point")
    ctx = tmp_path_factory.mktemp("tiny-builder")
    shutil.copy2(SOURCE / "Dockerfile", ctx / "Dockerfile")
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(ctx / "selftest"), str(SOURCE / "selftest.c")],
                   check=True)
    return ctx


@pytest.fixture
def images(engine: Any, context: Path) -> Iterator[dict[str, str]]:
    """Two tags of the tiny partner image (self-test passing, and failing), built offline."""
    name = f"tinymlaas-test/tiny-builder-{uuid.uuid4().hex[:8]}"
    tags = {"ok": f"{name}:ok", "broken": f"{name}:broken"}
    for kind, tag in tags.items():
        engine.images.build(path=str(context), tag=tag, network_mode="none", pull=False, rm=True,
                            buildargs={"BROKEN": "yes" if kind == "broken" else ""})
    yield tags
    for tag in tags.values():
        try:
            engine.images.remove(tag, force=True)
        except Exception:  # a test removed it already
            continue


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, lwm2m={"port": 0}))) as client:
        yield as_admin(client, tmp_path)


def archive(engine: Any, tag: str, dest: Path) -> Path:
    """``docker save`` of one tag, which then leaves the engine (the upload must bring it back)."""
    with dest.open("wb") as out:
        for chunk in engine.images.get(tag).save(named=True):
            out.write(chunk)
    engine.images.remove(tag, force=True)
    return dest


def test_an_uploaded_archive_is_accepted_after_its_self_test(api: TestClient, engine: Any,
                                                           images: dict[str, str], tmp_path: Path) -> None:
    tar = archive(engine, images["ok"], tmp_path / "tiny.tar")
    with tar.open("rb") as fh:
        reply = api.post("/toolchains/archive", data={"name": "tiny", "boards": "x86-tflm"},
                         files={"file": ("tiny.tar", fh, "application/x-tar")})
    assert reply.status_code == 201, reply.text
    tc = reply.json()
    assert (tc["source"], tc["boards"], tc["reference"]) == ("archive", ["x86-tflm"], "archive:tiny.tar")
    assert "@selftest {\"boards\": [\"x86-tflm\"], \"toolchain\": \"tiny 1.0\"}" in tc["self_test"]
    assert engine.images.get(tc["image_id"]).id == tc["image_id"]  # loaded, kept under its own tag
    assert [t["name"] for t in api.get("/toolchains").json()] == ["tiny"]
    assert api.post("/toolchains", json={"name": "tiny", "image": images["broken"], "boards": ["x86-tflm"]}
                    ).status_code == 409
    assert api.delete("/toolchains/tiny").status_code == 204
    assert api.get("/toolchains/tiny").status_code == 404
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(tc["image_id"])  # it came in the archive; with its tag it went


def test_refusals_name_the_problem(api: TestClient, engine: Any, images: dict[str, str],
                                   tmp_path: Path) -> None:
    def refused(reply: Any, status: int, words: str) -> None:
        assert reply.status_code == status, reply.text
        assert words in reply.json()["detail"], reply.json()["detail"]

    refused(api.post("/toolchains", json={"name": "bad", "image": images["broken"], "boards": ["x86-tflm"]}),
            422, "the self-test failed (exit 1): checking the cross compiler: cc1 not found")
    refused(api.post("/toolchains", json={"name": "ok", "image": images["ok"], "boards": ["lm3s6965evb"]}),
            422, "says it builds for x86-tflm; not for lm3s6965evb")
    refused(api.post("/toolchains", json={"name": "ok", "image": "tinymlaas-test/none:here",
                                          "boards": ["x86-tflm"]}), 404, "nothing is ever pulled")
    refused(api.post("/toolchains", json={"name": "ok", "image": images["ok"], "boards": ["pdp-11"]}),
            422, "board(s) pdp-11 unknown")
    refused(api.post("/toolchains", json={"name": "Bad Name", "image": images["ok"], "boards": ["x86-tflm"]}),
            422, "name")
    broken_id = engine.images.get(images["broken"]).id
    tar = archive(engine, images["broken"], tmp_path / "broken.tar")
    with tar.open("rb") as fh:
        refused(api.post("/toolchains/archive", data={"name": "bad", "boards": "x86-tflm"},
                         files={"file": ("broken.tar", fh)}), 422, "cc1 not found")
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(broken_id)  # the refused image does not stay behind
    refused(api.post("/toolchains/archive", data={"name": "bad", "boards": "x86-tflm"},
                     files={"file": ("junk.tar", b"not a tar")}), 422, "is not a 'docker save' archive")
    assert api.get("/toolchains").json() == []


def test_a_build_names_a_toolchain_that_serves_its_board(api: TestClient, images: dict[str, str],
                                                        hello_world: bytes) -> None:
    assert api.post("/toolchains", json={"name": "tiny", "image": images["ok"], "boards": ["x86-tflm"],
                                         "description": "a test partner"}).status_code == 201
    api.post("/models", files={"file": ("m.tflite", hello_world)}, data={"name": "hw"})
    jobs = len(api.get("/jobs").json())
    for body, words in (({"toolchain": "tiny", "target": "lm3s6965evb"},
                         "toolchain 'tiny' builds for x86-tflm; not for board 'lm3s6965evb'"),
                        ({"toolchain": "nope", "target": "x86-tflm"}, "no toolchain 'nope'"),
                        ({"toolchain": "tiny", "builder": "local", "target": "x86-tflm"}, "not both")):
        reply = api.post("/builds", json={"model": "hw", **body})
        assert reply.status_code in (404, 422) and words in reply.json()["detail"], reply.text
    assert len(api.get("/jobs").json()) == jobs
    assert api.delete("/toolchains/tiny").status_code == 204

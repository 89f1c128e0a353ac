"""Toolchains registered at run time: a partner's builder image (the README's builder
contract), from an image already in the local engine or from an uploaded ``docker save``
archive (no registry is ever contacted), accepted only after its self-test passes:

    docker run --network none <image> --self-test

must exit 0 and print ``@selftest {"boards": [...]}`` naming every board it is registered
for. An accepted image is kept by its id (and tagged ``tinymlaas/toolchain-<name>``, so no
prune takes it away): builds that choose the toolchain run exactly the image that passed.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from tinymlaas.builders.container import ToolchainBuilder
from tinymlaas.config import Settings
from tinymlaas.errors import BuildFailed, Conflict, InvalidInput, NotFound
from tinymlaas.fleet.models import NAME, Toolchain, ToolchainSpec
from tinymlaas.images import docker_client
from tinymlaas.models import Board
from tinymlaas.store import Store
from tinymlaas.targets import load_boards

if TYPE_CHECKING:
    from docker import DockerClient

SELF_TEST = "@selftest "
SELF_TEST_TIMEOUT_S = 120.0
TAG = "tinymlaas/toolchain-{name}"


def _check_request(store: Store, settings: Settings, name: str, boards: list[str]) -> None:
    import re

    if not re.match(NAME, name):
        raise InvalidInput(f"toolchain name '{name}' must be 1-64 lowercase letters, digits, '.', '_' "
                           "or '-'")
    if store.toolchains.exists(name):
        raise Conflict(f"toolchain '{name}' is registered already")
    known = load_boards(settings.targets_dir)
    unknown = [b for b in boards if b not in known]
    if unknown or not boards:
        raise InvalidInput(f"board(s) {', '.join(unknown) or '(none)'} unknown; "
                           f"boards: {', '.join(sorted(known))}")


def register_local(store: Store, settings: Settings, spec: ToolchainSpec) -> Toolchain:
    """Register an image the local engine has (never pulled), once its self-test passes."""
    import docker

    _check_request(store, settings, spec.name, spec.boards)
    client = docker_client()
    try:
        image = client.images.get(spec.image)
    except docker.errors.ImageNotFound:
        raise NotFound(f"the Docker engine has no image '{spec.image}' (nothing is ever pulled: load it, "
                       "or upload a 'docker save' archive)") from None
    except docker.errors.APIError as exc:
        raise InvalidInput(f"'{spec.image}' is not an image reference: {exc.explanation}") from None
    return _accept(store, client, image, name=spec.name, boards=spec.boards, reference=spec.image,
                   source="local", description=spec.description)


def register_archive(store: Store, settings: Settings, *, name: str, boards: list[str], description: str,
                     archive: IO[bytes], filename: str, limit: int) -> Toolchain:
    """Register the one image of an uploaded ``docker save`` archive, once its self-test passes;
    a refused image is removed again, and an accepted one that was not in the engine before is
    held under the toolchain's tag only (so removing the toolchain removes it)."""
    import docker

    _check_request(store, settings, name, boards)
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="toolchain-", dir=settings.data_dir) as tmp:
        path = Path(tmp) / "image.tar"
        with path.open("wb") as out:
            copied = _copy(archive, out, limit)
        if copied == 0:
            raise InvalidInput("the uploaded archive is empty")
        known = {i.id for i in client.images.list(all=True)}
        try:
            with path.open("rb") as data:
                loaded = client.images.load(data)
        except docker.errors.DockerException as exc:  # ImageLoadError is no APIError
            why = getattr(exc, "explanation", None) or str(exc)
            raise InvalidInput(f"'{filename}' is not a 'docker save' archive: {why}") from None
    if len(loaded) != 1:
        for img in loaded:
            _forget(client, img.id, known)
        raise InvalidInput(f"'{filename}' holds {len(loaded)} images; a toolchain is one image")
    image = loaded[0]
    try:
        toolchain = _accept(store, client, image, name=name, boards=boards, reference=f"archive:{filename}",
                            source="archive", description=description)
    except BaseException:
        _forget(client, image.id, known)
        raise
    if image.id not in known:  # it came with the archive: held by the toolchain's tag only
        image.reload()
        for tag in image.tags:
            if not tag.startswith(TAG.format(name=name) + ":"):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag)
    return toolchain


def _copy(src: IO[bytes], dst: IO[bytes], limit: int) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        n += len(chunk)
        if n > limit:
            raise InvalidInput(f"the archive is larger than {limit} bytes")
        dst.write(chunk)
    return n


def _forget(client: DockerClient, image_id: str, known: set[str]) -> None:
    """Remove an image an archive brought in (never one the engine had before)."""
    import docker

    if image_id not in known:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image_id, force=True)


def self_test(client: DockerClient, image_id: str, timeout_s: float = SELF_TEST_TIMEOUT_S
              ) -> tuple[dict[str, Any], list[str]]:
    """Run the image's self-test (no network); its ``@selftest`` report and every line it printed."""
    container = client.containers.run(image_id, ["--self-test"], network_mode="none", detach=True,
                                      labels={"org.tinymlaas.role": "toolchain-self-test"})
    try:
        try:
            code = container.wait(timeout=timeout_s)["StatusCode"]
        except Exception as exc:  # the engine's read timeout: the self-test hangs
            raise InvalidInput(f"the self-test did not finish within {timeout_s:.0f} s") from exc
        lines = container.logs().decode(errors="replace").splitlines()
    finally:
        container.remove(force=True)
    tail = " | ".join(ln for ln in lines if ln.strip())[-300:] or "no output"
    if code != 0:
        raise InvalidInput(f"the self-test failed (exit {code}): {tail}")
    reports = [ln[len(SELF_TEST):] for ln in lines if ln.startswith(SELF_TEST)]
    try:
        report = json.loads(reports[-1])
        assert isinstance(report, dict) and isinstance(report.get("boards"), list)
    except (IndexError, ValueError, AssertionError):
        raise InvalidInput(f"the self-test printed no '{SELF_TEST}{{\"boards\": [...]}}' line, as the "
                           f"builder contract asks: {tail}") from None
    return report, lines


def _accept(store: Store, client: DockerClient, image: Any, *, name: str, boards: list[str], reference: str,
            source: Literal["local", "archive"], description: str) -> Toolchain:
    report, lines = self_test(client, image.id)
    missing = [b for b in boards if b not in report["boards"]]
    if missing:
        said = ", ".join(report["boards"]) or "no board"
        raise InvalidInput(f"the self-test of '{reference}' says it builds for {said}; "
                           f"not for {', '.join(missing)}")
    image.tag(TAG.format(name=name), tag=image.id.split(":")[-1][:12])
    return store.toolchains.add(Toolchain(name=name, image_id=image.id, reference=reference, source=source,
                                          boards=sorted(set(boards)), description=description,
                                          self_test=lines[-50:], created_at=datetime.now(UTC)))


def remove(store: Store, name: str) -> Toolchain:
    """Unregister a toolchain; its tag goes (and with it an image that came in an archive)."""
    import docker

    gone = store.toolchains.delete(name)
    with contextlib.suppress(BuildFailed, docker.errors.APIError):
        docker_client().images.remove(f"{TAG.format(name=name)}:{gone.image_id.split(':')[-1][:12]}")
    return gone


def toolchain_builder(store: Store, name: str, board: Board) -> ToolchainBuilder:
    """The builder of a registered toolchain for ``board`` (refused if it does not serve it)."""
    tc = store.toolchains.get(name)
    if board.name not in tc.boards:
        raise InvalidInput(f"toolchain '{name}' builds for {', '.join(tc.boards)}; "
                           f"not for board '{board.name}'")
    return ToolchainBuilder(tc.image_id, tc.name)


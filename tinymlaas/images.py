"""Container images, built offline from local inputs only; nothing is ever pulled.

``tinymlaas/base`` is a Debian rootfs made by ``mmdebstrap`` from the machine's
own apt sources and ``docker import``-ed. Every other image is a folder under
``targets/`` built ``FROM tinymlaas/base`` with ``--network none``; what it
needs from outside is downloaded on the host first and copied into the build
context:

* ``wheels.txt`` -- pip requirements, downloaded as wheels into ``wheels/``;
* ``sdists.txt`` -- packages PyPI has only as source, built into wheels on the host
  (Debian bookworm and CPython 3.11 like the base) and added to ``wheels/``;
* ``debs.txt``   -- Debian packages missing from the base, into ``debs/``;
* ``package.txt`` (any content) -- a copy of the ``tinymlaas`` package into ``src/``.

An image is tagged with the hash of its inputs (its folder, the board files,
the package when one is copied in, and the base image id), so checkouts of
different code share one engine without replacing each other's images, and
an image is rebuilt only when that hash has no image yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tinymlaas.config import REPO_ROOT, Settings
from tinymlaas.errors import BuildFailed, InvalidInput
from tinymlaas.plugins.base import Progress, no_progress
from tinymlaas.targets import load_boards

if TYPE_CHECKING:
    from docker import DockerClient

BASE_TAG = "tinymlaas/base"
HASH_LABEL = "org.tinymlaas.context-sha256"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
_BASE_RECIPE_VERSION = "1"


@dataclass(frozen=True)
class ImageSource:
    tag: str
    context: Path
    boards: tuple[str, ...] = ()


def docker_client() -> DockerClient:
    """A client for the local engine, or a one-line reason why there is none."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"no Docker engine answers ({exc}); run 'make setup' to start one") from exc
    return client


def image_label(client: DockerClient, tag: str) -> str | None:
    import docker

    try:
        img = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    label = (img.labels or {}).get(HASH_LABEL)
    return str(label) if label is not None else None


def image_id(client: DockerClient, tag: str) -> str:
    return str(client.images.get(tag).id)


def apt_sources() -> list[Path]:
    """The machine's enabled Debian apt sources, handed to mmdebstrap as-is."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    found = [
        p
        for p in candidates
        if p.is_file() and p.suffix in (".list", ".sources") and "/debian" in p.read_text()
    ]
    if not found:
        raise BuildFailed("no Debian apt sources found under /etc/apt")
    return found


def base_inputs_hash() -> str:
    h = hashlib.sha256(f"{_BASE_RECIPE_VERSION}|{BASE_SUITE}|{','.join(BASE_PACKAGES)}".encode())
    for p in apt_sources():
        h.update(p.read_bytes())
    return h.hexdigest()


def ensure_base(settings: Settings, client: DockerClient, progress: Progress = no_progress) -> bool:
    """Build ``tinymlaas/base`` if its inputs changed; True when it was (re)built."""
    with _building(settings, BASE_TAG):
        return _ensure_base(settings, client, progress)


def _ensure_base(settings: Settings, client: DockerClient, progress: Progress) -> bool:
    want = base_inputs_hash()
    status_file = settings.data_dir / "images" / "base.dpkg-status"
    if image_label(client, BASE_TAG) == want:
        if not status_file.exists():
            _save_base_status(client, status_file)
        return False
    work = settings.data_dir / "images"
    work.mkdir(parents=True, exist_ok=True)
    tar = work / "base-rootfs.tar"
    progress("mmdebstrap base rootfs", 0.0)
    cmd = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(BASE_PACKAGES),
        "--aptopt=Acquire::Languages \"none\"",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        BASE_SUITE,
        str(tar),
        *[str(p) for p in apt_sources()],
    ]
    _run(cmd, settings.data_dir / "images" / "mmdebstrap.log")
    progress("docker import base", 0.8)
    with tarfile.open(tar) as tf:
        member = tf.extractfile("./var/lib/dpkg/status")
        assert member is not None
        status_file.write_bytes(member.read())
    client.api.import_image_from_file(
        str(tar),
        repository=BASE_TAG,
        tag="latest",
        changes=[f"LABEL {HASH_LABEL}={want}", 'CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"],
    )
    tar.unlink()
    progress("base ready", 1.0)
    return True


def _save_base_status(client: DockerClient, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    out = client.containers.run(
        BASE_TAG, ["cat", "/var/lib/dpkg/status"], network_mode="none", remove=True
    )
    dest.write_bytes(out)


def _run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise BuildFailed(f"{cmd[0]} failed (exit {proc.returncode}), see {log}: {' | '.join(tail)}")


def image_sources(settings: Settings) -> list[ImageSource]:
    """Every image the boards under targets/ declare (builders and devices)."""
    seen: dict[str, ImageSource] = {}
    for board in load_boards(settings.targets_dir).values():
        for spec in (board.builder, board.device):
            if spec is None:
                continue
            ctx = (settings.targets_dir / board.name / spec.context).resolve()
            prev = seen.get(spec.image)
            if prev is not None and prev.context != ctx:
                raise InvalidInput(f"image {spec.image} is declared with two different contexts")
            boards = (prev.boards if prev else ()) + (board.name,)
            seen[spec.image] = ImageSource(spec.image, ctx, boards)
    return list(seen.values())


def _download_wheels(req: Path, cache: Path) -> Path:
    key = hashlib.sha256(req.read_bytes()).hexdigest()[:16]
    dest = cache / "wheels" / key
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        _run(
            [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
             "--dest", str(dest), "-r", str(req)],
            cache / "wheels" / f"{key}.log",
        )
        (dest / ".complete").touch()
    return dest


def _build_wheels(req: Path, cache: Path) -> Path:
    """Wheels built on the host from source distributions (e.g. DTLSSocket: Cython from
    PyPI, autotools from Debian), for images that install offline."""
    key = hashlib.sha256(req.read_bytes() + sys.version.encode()).hexdigest()[:16]
    dest = cache / "built-wheels" / key
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest), "-r", str(req)],
             cache / "built-wheels" / f"{key}.log")
        (dest / ".complete").touch()
    return dest


def _download_debs(pkgs: Path, settings: Settings) -> Path:
    status = settings.data_dir / "images" / "base.dpkg-status"
    names = [ln.strip() for ln in pkgs.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    key = hashlib.sha256(("|".join(names)).encode() + status.read_bytes()).hexdigest()[:16]
    dest = settings.data_dir / "images" / "debs" / key
    if (dest / ".complete").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "partial").mkdir(parents=True)
    cmd = [
        "apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends",
        "-o", f"Dir::State::status={status}", "-o", f"Dir::Cache::archives={dest}",
        "-o", "Debug::NoLocking=1", *names,
    ]
    log = dest.parent / f"{key}.log"
    try:
        _run(cmd, log)
    except BuildFailed:  # package lists may be missing on a fresh machine
        _run(["apt-get", "update", "-qq"], dest.parent / "apt-update.log")
        _run(cmd, log)
    shutil.rmtree(dest / "partial")
    (dest / ".complete").touch()
    return dest


def assemble_context(src: ImageSource, settings: Settings) -> Path:
    """Copy the folder plus its downloaded inputs into a fresh build context."""
    ctx = settings.data_dir / "images" / "contexts" / src.tag.replace("/", "_")
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(src.context, ctx, ignore=shutil.ignore_patterns("__pycache__"))
    cache = settings.data_dir / "images"
    for name in src.boards:  # builders read their boards' files at /builder/boards
        (ctx / "boards").mkdir(exist_ok=True)
        shutil.copy2(settings.targets_dir / name / "board.toml", ctx / "boards" / f"{name}.toml")
    if (ctx / "wheels.txt").exists():
        shutil.copytree(_download_wheels(ctx / "wheels.txt", cache), ctx / "wheels",
                        ignore=shutil.ignore_patterns(".complete"))
    if (ctx / "sdists.txt").exists():
        shutil.copytree(_build_wheels(ctx / "sdists.txt", cache), ctx / "wheels", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".complete"))
    if (ctx / "debs.txt").exists():
        shutil.copytree(_download_debs(ctx / "debs.txt", settings), ctx / "debs",
                        ignore=shutil.ignore_patterns(".complete", "lock"))
    if (ctx / "package.txt").exists():
        shutil.copytree(REPO_ROOT / "tinymlaas", ctx / "src" / "tinymlaas",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO_ROOT / name, ctx / "src" / name)
    return ctx


def _files(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*") if p.is_file())


def context_hash(ctx: Path, base_id: str) -> str:
    h = hashlib.sha256(base_id.encode())
    for p in _files(ctx):
        h.update(str(p.relative_to(ctx)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def inputs_hash(src: ImageSource, settings: Settings, base_id: str) -> str:
    """What an image is made of, hashed before anything is downloaded or copied.

    The downloads are named by their lists (``wheels.txt``, ``sdists.txt``, ``debs.txt``), which
    are part of the folder; the package is hashed from the checkout.
    """
    h = hashlib.sha256(base_id.encode())
    roots = [(src.context, "ctx")]
    if (src.context / "package.txt").exists():
        roots.append((REPO_ROOT / "tinymlaas", "pkg"))
    for root, name in roots:
        for p in _files(root):
            if "__pycache__" in p.parts or p.suffix == ".pyc":
                continue
            h.update(f"{name}/{p.relative_to(root)}".encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    if len(roots) > 1:  # the package is installed from these too
        for name in ("pyproject.toml", "README.md"):
            h.update(name.encode() + b"\0" + (REPO_ROOT / name).read_bytes())
    for board in src.boards:
        h.update(board.encode() + b"\0" + (settings.targets_dir / board / "board.toml").read_bytes())
    return h.hexdigest()


def image_ref(settings: Settings, name: str, client: DockerClient | None = None) -> str:
    """The tag of the image declared as ``name`` (e.g. a board's builder) for this checkout."""
    for src in image_sources(settings):
        if src.tag == name:
            client = client or docker_client()
            return f"{name}:{inputs_hash(src, settings, image_id(client, BASE_TAG))[:16]}"
    raise InvalidInput(f"no board declares an image named {name}")


def current_image(settings: Settings, name: str, client: DockerClient,
                  progress: Progress = no_progress) -> str:
    """The tag of image ``name`` for this checkout, built first if it has none (yet, or any more:
    a checkout of other code may have pruned it)."""
    for src in image_sources(settings):
        if src.tag == name:
            ensure_image(src, settings, client, progress)
            return image_ref(settings, name, client)
    raise InvalidInput(f"no board declares an image named {name}")


def ensure_image(
    src: ImageSource, settings: Settings, client: DockerClient, progress: Progress = no_progress
) -> bool:
    """Build one image unless its inputs already have one; True when it was built. One build of
    an image at a time (boards share builders; processes share the data directory): the others
    wait for it and find the image built."""
    import docker

    ref = image_ref(settings, src.tag, client)
    try:
        client.images.get(ref)
        return False
    except docker.errors.ImageNotFound:
        pass
    with _building(settings, src.tag):
        try:
            client.images.get(ref)
            return False  # built while this one waited
        except docker.errors.ImageNotFound:
            pass
        return _build_image(src, ref, settings, client, progress)


@contextlib.contextmanager
def _building(settings: Settings, tag: str) -> Iterator[None]:
    import fcntl

    lock = settings.data_dir / "images" / f"{tag.replace('/', '_')}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_image(src: ImageSource, ref: str, settings: Settings, client: DockerClient,
                 progress: Progress) -> bool:
    # Built FROM the base, with Debian packages resolved against its package status: a service
    # with a new data directory has neither file yet.
    ensure_base(settings, client, progress)
    ctx = assemble_context(src, settings)
    want = context_hash(ctx, image_id(client, BASE_TAG))
    log = settings.data_dir / "images" / f"{src.tag.replace('/', '_')}.log"
    for attempt in (1, 2, 3):
        try:
            _build(client, ctx, ref, want, log, progress)
            break
        except BuildFailed as exc:
            # The engine is shared: a layer it meant to reuse may have been removed meanwhile.
            if attempt == 3 or not any(s in exc.message for s in _VANISHED):
                raise
    _prune(client, src.tag)
    return True


#: What the engine says when a cached layer it meant to reuse was removed during the build.
_VANISHED = ("failed to get digest", "No such image", "no such file or directory")


def _build(client: DockerClient, ctx: Path, ref: str, want: str, log: Path, progress: Progress) -> None:
    lines: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(ctx), tag=ref, network_mode="none", labels={HASH_LABEL: want},
            rm=True, forcerm=True, pull=False, decode=True,
        ):
            if "stream" in chunk:
                line = chunk["stream"].rstrip()
                lines.append(line)
                if line.startswith("Step "):
                    n, _, total = line.split()[1].partition("/")
                    progress(line, int(n) / max(int(total or 1), 1))
            if "error" in chunk:
                lines.append(chunk["error"])
                raise BuildFailed(f"building image {ref} failed: {chunk['error'].strip()}")
    finally:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(lines) + "\n")


def _created(stamp: str) -> float:
    """An RFC 3339 time with nanoseconds, as the engine writes it, in seconds since the epoch."""
    return datetime.fromisoformat(stamp[:19]).replace(tzinfo=UTC).timestamp()


def _prune(client: DockerClient, repository: str, keep: int = 3, min_age_s: float = 12 * 3600) -> None:
    """Drop a repository's old tags: beyond the newest ``keep``, those older than ``min_age_s``
    (other checkouts may still use a recent one: it costs only its own small layers); an
    image a container still uses stays."""
    import docker

    images = sorted(client.images.list(name=repository), key=lambda i: i.attrs["Created"], reverse=True)
    cutoff = time.time() - min_age_s
    for img in images[keep:]:
        if _created(img.attrs["Created"]) > cutoff:
            continue
        for tag in img.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, noprune=False)


def ensure_all(settings: Settings, progress: Progress = no_progress) -> dict[str, bool]:
    """Make sure the base and every declared image are current."""
    client = docker_client()
    built = {BASE_TAG: ensure_base(settings, client, progress)}
    for src in image_sources(settings):
        built[src.tag] = ensure_image(src, settings, client, progress)
    if any(built.values()):
        # A rebuilt tag leaves its previous image untagged: drop ours, keep anyone else's.
        client.images.prune(filters={"dangling": True, "label": HASH_LABEL})
    return built

"""Image contexts: hashes move with their inputs and nothing else."""

from __future__ import annotations

from pathlib import Path

from tinymlaas.config import Settings
from tinymlaas.images import context_hash, image_sources


def test_context_hash_tracks_content_and_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM tinymlaas/base\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    h = context_hash(tmp_path, "sha256:base1")
    assert h == context_hash(tmp_path, "sha256:base1")
    assert h != context_hash(tmp_path, "sha256:base2")
    (tmp_path / "sub" / "a.txt").write_text("b")
    assert h != context_hash(tmp_path, "sha256:base1")


def test_every_board_image_has_a_dockerfile_from_base(settings: Settings) -> None:
    for src in image_sources(settings):
        text = (src.context / "Dockerfile").read_text()
        froms = [ln.split()[1] for ln in text.splitlines() if ln.startswith("FROM ")]
        assert froms and all(f.startswith("tinymlaas/") for f in froms), src.tag


def test_one_build_of_an_image_at_a_time(tmp_path: Path) -> None:
    """Boards share builder images, so a profile's threads (and workers' processes) could assemble
    one image's context at once: builds of one image wait for each other, other images do not."""
    import threading
    import time

    from tinymlaas.images import _building

    settings = Settings(data_dir=tmp_path)
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def build(tag: str) -> None:
        with _building(settings, tag):
            inside.append(tag)
            overlaps.append(tuple(inside))
            time.sleep(0.2)
            inside.remove(tag)

    threads = [threading.Thread(target=build, args=(t,)) for t in ("a/x", "a/x", "b/y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o.count("a/x") == 1 for o in overlaps)  # never two builds of a/x at once
    assert any(set(o) == {"a/x", "b/y"} for o in overlaps)  # b/y did not wait for a/x

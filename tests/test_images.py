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

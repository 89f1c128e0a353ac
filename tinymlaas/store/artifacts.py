"""Immutable blobs addressed by their SHA-256: ``artifacts/sha256/ab/abcdef…``.

Written by rename, so a reader never sees half a file; rows refer to them by hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tinymlaas.edge.archive import sha256_file
from tinymlaas.errors import InvalidInput, NotFound

_HEX = frozenset("0123456789abcdef")


class ArtifactStore:
    """Content-addressed files; the directory leaves room for an object store behind the same calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise InvalidInput(f"'{sha256}' is not a SHA-256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path:
        p = self.path(sha256)
        if not p.is_file():
            raise NotFound(f"no artifact {sha256}")
        return p

    def size(self, sha256: str) -> int:
        return self.get(sha256).stat().st_size

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if not dest.exists():
            self._write(dest, lambda fh: fh.write(data))
        return sha

    def put_file(self, src: Path) -> str:
        sha = sha256_file(src)
        dest = self.path(sha)
        if not dest.exists():
            self._write(dest, lambda fh: fh.write(src.read_bytes()))
        return sha

    @staticmethod
    def _write(dest: Path, write: Callable[[BinaryIO], object]) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

"""File hashes and reproducible zip archives, shared by the service and the devices.

Import-light (standard library only): it is packed into the x86 firmware too.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

#: zip's earliest date: a fixed timestamp, so the same members give the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reproducible_zip(members: dict[str, bytes]) -> bytes:
    """A deflated zip whose bytes depend only on the members (names sorted, fixed times)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return buf.getvalue()

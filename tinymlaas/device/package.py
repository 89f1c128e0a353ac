"""The SOTA package: an inference module (manifest + model) as one reproducible zip.

The service packs a compiled module with :func:`pack`; a device checks it with
:func:`unpack` before installing. Standard library only (runs on devices).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

MODULE_FORMAT = "tinymlaas.inference-module/1"
MANIFEST = "manifest.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def pack(manifest: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """Same inputs, same bytes (so the package's hash names its content)."""
    buf = io.BytesIO()
    members = {MANIFEST: json.dumps(manifest, indent=2, sort_keys=True).encode(), **files}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return buf.getvalue()


def unpack(path: Path) -> tuple[dict[str, Any], bytes]:
    """(module manifest, model bytes); ValueError naming what is wrong."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(MANIFEST))
            model_file = manifest.get("model_file", "model.tflite")
            model = zf.read(model_file)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValueError(f"not an inference-module package: {exc}") from exc
    if manifest.get("format") != MODULE_FORMAT:
        raise ValueError(f"package format {manifest.get('format')!r} is not {MODULE_FORMAT}")
    if hashlib.sha256(model).hexdigest() != manifest.get("model_sha256"):
        raise ValueError("the model in the package does not match its manifest's hash")
    return manifest, model

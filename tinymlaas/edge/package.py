"""The SOTA package: an inference module's manifest plus the one payload a device loads,
as one reproducible zip.

The payload is what the device swaps in: the ``.tflite`` for an interpreter
(x86/TFLM), the model-data blob of the model region for compiled C (MCU). The
service packs it with :func:`pack`; a device checks it with :func:`unpack`
before installing anything. Standard library only (runs on devices).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from tinymlaas.edge.archive import reproducible_zip

MODULE_FORMAT = "tinymlaas.inference-module/1"
MANIFEST = "manifest.json"


def pack(manifest: dict[str, Any], payload_name: str, payload: bytes) -> bytes:
    """Same inputs, same bytes (so the package's hash names its content)."""
    doc = {**manifest, "payload": payload_name, "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return reproducible_zip(
        {MANIFEST: json.dumps(doc, indent=2, sort_keys=True).encode(), payload_name: payload})


def unpack(path: Path) -> tuple[dict[str, Any], bytes]:
    """(module manifest, payload bytes); ValueError naming what is wrong."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(MANIFEST))
            payload = zf.read(manifest["payload"])
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValueError(f"not an inference-module package: {exc}") from exc
    if manifest.get("format") != MODULE_FORMAT:
        raise ValueError(f"package format {manifest.get('format')!r} is not {MODULE_FORMAT}")
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise ValueError("the package's payload does not match its manifest's hash")
    return manifest, payload

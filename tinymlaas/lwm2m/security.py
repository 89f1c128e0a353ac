"""Per-device OSCORE credentials (RFC 8613) for the LwM2M server.

Why OSCORE and not DTLS-PSK: aiocoap's DTLS needs the DTLSSocket package, which
PyPI only has as a source distribution (autotools + Cython to build, on the
host and in the offline device image), and aiocoap 0.4.17's DTLS server listens
on port+1 and cannot send server-initiated requests (Read, Write, Execute,
Observe), which is most of LwM2M. OSCORE protects each CoAP message end to end
over the same UDP socket in both directions, is pure Python on wheels that
exist (cryptography, cbor2), and is an LwM2M 1.1 security mode (Object 21).

Each device gets a master secret and salt, a recipient id that names it to the
server (its sender id), and an empty server sender id. The server keeps one
:class:`aiocoap.oscore.FilesystemSecurityContext` directory per device (secret
file mode 0600; sequence numbers persist, so a restart never reuses a nonce);
the device gets the same material, mirrored, once, when it is provisioned.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

from tinymlaas.errors import Conflict, InvalidInput, NotFound

ALGORITHM = "AES-CCM-16-64-128"


def write_context(directory: Path, material: dict[str, str], *, role: str) -> Path:
    """An aiocoap security-context directory from provisioned material.

    ``role`` is "server" or "device"; the two are mirror images (one's sender
    id is the other's recipient id).
    """
    directory.mkdir(parents=True, exist_ok=True)
    device_id, server_id = material["device_id_hex"], material["server_id_hex"]
    sender, recipient = (server_id, device_id) if role == "server" else (device_id, server_id)
    (directory / "settings.json").write_text(json.dumps(
        {"sender-id_hex": sender, "recipient-id_hex": recipient, "algorithm": material["algorithm"]}))
    secret = directory / "secret.json"
    secret.write_text(json.dumps({"secret_hex": material["secret_hex"], "salt_hex": material["salt_hex"]}))
    os.chmod(secret, 0o600)
    (directory / "sequence.json").unlink(missing_ok=True)
    return directory


class CredentialStore:
    """The server's OSCORE contexts, one directory per endpoint under ``root``."""

    def __init__(self, root: Path) -> None:
        from aiocoap.credentials import CredentialsMap

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self._map = CredentialsMap()
        self._by_ctx: dict[int, str] = {}
        self._lock = threading.Lock()
        for d in sorted(root.iterdir()):
            if (d / "secret.json").is_file():
                self._load(d.name)

    def _load(self, endpoint: str) -> None:
        from aiocoap.oscore import FilesystemSecurityContext

        ctx = FilesystemSecurityContext(str(self.root / endpoint))
        self._map[f":device:{endpoint}"] = ctx
        self._by_ctx[id(ctx)] = endpoint

    def credentials_map(self) -> Any:
        """The live map the server's OSCORE site wrapper looks contexts up in."""
        return self._map

    def endpoints(self) -> list[str]:
        return sorted(self._by_ctx.values())

    def has(self, endpoint: str) -> bool:
        return f":device:{endpoint}" in self._map

    def identity_of(self, ctx: object) -> str | None:
        return self._by_ctx.get(id(ctx))

    def provision(self, endpoint: str, *, replace: bool = False) -> dict[str, str]:
        """New credentials for ``endpoint``; the material is returned once and not kept readable."""
        if not endpoint or not all(c.isalnum() or c in "-_.:" for c in endpoint) or len(endpoint) > 128:
            raise InvalidInput(f"'{endpoint}' is not a valid endpoint name (letters, digits, -_.:)")
        with self._lock:
            if self.has(endpoint) and not replace:
                raise Conflict(f"device '{endpoint}' already has credentials; revoke them first "
                               "or ask to replace them")
            self._drop(endpoint)
            used = {bytes.fromhex(json.loads((d / "settings.json").read_text())["recipient-id_hex"])
                    for d in self.root.iterdir() if (d / "settings.json").is_file()}
            device_id = secrets.token_bytes(4)
            while device_id in used:
                device_id = secrets.token_bytes(4)
            material = {"endpoint": endpoint, "algorithm": ALGORITHM, "device_id_hex": device_id.hex(),
                        "server_id_hex": "", "secret_hex": secrets.token_bytes(32).hex(),
                        "salt_hex": secrets.token_bytes(8).hex()}
            write_context(self.root / endpoint, material, role="server")
            self._load(endpoint)
        return material

    def revoke(self, endpoint: str) -> None:
        with self._lock:
            if not self.has(endpoint):
                raise NotFound(f"device '{endpoint}' has no credentials")
            self._drop(endpoint)

    def close(self) -> None:
        """Persist sequence numbers and release the directories (a restart loads them again)."""
        with self._lock:
            for key in list(self._map):
                ctx = self._map.pop(key)
                if getattr(ctx, "lockfile", None) is not None:
                    ctx._destroy()
            self._by_ctx.clear()

    def _drop(self, endpoint: str) -> None:
        ctx = self._map.pop(f":device:{endpoint}", None)
        if ctx is not None:
            self._by_ctx.pop(id(ctx), None)
            lock = getattr(ctx, "lockfile", None)
            if lock is not None:  # let a new context for this endpoint take the directory
                lock.release()
                ctx.lockfile = None
        shutil.rmtree(self.root / endpoint, ignore_errors=True)

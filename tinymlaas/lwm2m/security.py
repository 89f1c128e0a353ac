"""Per-device credentials for the LwM2M server: OSCORE (RFC 8613) or DTLS 1.2 PSK.

OSCORE protects each CoAP message end to end over the server's UDP socket in both
directions (pure Python: cryptography, cbor2; LwM2M 1.1 Object 21). DTLS with a
pre-shared key (LwM2M's mandatory-to-implement security mode, what Zephyr,
Wakaama and Anjay clients and Leshan servers use) runs on the server's CoAPS port
through aiocoap's tinydtls transport (:mod:`tinymlaas.lwm2m.dtls`; DTLSSocket is
built from its source distribution at set-up).

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
        _check_endpoint(endpoint)
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


class PskStore:
    """The server's DTLS pre-shared keys (LwM2M Security mode 0), one file per endpoint.

    The PSK identity is the endpoint name (as Leshan and Wakaama default to), so the
    identity a device proves in its handshake names the only endpoint it may register
    as. A key cannot be hashed (the server needs it for the handshake): each file is
    mode 0600 in a 0700 directory, and the key is shown once, when provisioned.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self._lock = threading.Lock()
        self._keys: dict[bytes, tuple[bytes, str]] = {}
        for f in sorted(root.glob("*.json")):
            material = json.loads(f.read_text())
            self._keys[material["psk_identity"].encode()] = (bytes.fromhex(material["psk_key_hex"]),
                                                             material["endpoint"])

    def lookup(self, identity: bytes) -> tuple[bytes, str] | None:
        """(key, endpoint) for a PSK identity a device presents in its handshake."""
        return self._keys.get(identity)

    def endpoints(self) -> list[str]:
        return sorted(ep for _, ep in self._keys.values())

    def has(self, endpoint: str) -> bool:
        return endpoint.encode() in self._keys

    def provision(self, endpoint: str, *, replace: bool = False) -> dict[str, str]:
        _check_endpoint(endpoint)
        with self._lock:
            if self.has(endpoint) and not replace:
                raise Conflict(f"device '{endpoint}' already has credentials; revoke them first "
                               "or ask to replace them")
            material = {"endpoint": endpoint, "psk_identity": endpoint,
                        "psk_key_hex": secrets.token_bytes(16).hex()}
            path = self.root / f"{endpoint}.json"
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(material, fh)
            self._keys[endpoint.encode()] = (bytes.fromhex(material["psk_key_hex"]), endpoint)
        return material

    def revoke(self, endpoint: str) -> None:
        with self._lock:
            if self._keys.pop(endpoint.encode(), None) is None:
                raise NotFound(f"device '{endpoint}' has no credentials")
            (self.root / f"{endpoint}.json").unlink(missing_ok=True)


def write_psk(path: Path, material: dict[str, str]) -> Path:
    """A device's copy of its PSK (identity and key), mode 0600, as ``--psk FILE`` reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"identity": material["psk_identity"], "key_hex": material["psk_key_hex"]}, fh)
    return path


def _check_endpoint(endpoint: str) -> None:
    if not endpoint or not all(c.isalnum() or c in "-_.:" for c in endpoint) or len(endpoint) > 128:
        raise InvalidInput(f"'{endpoint}' is not a valid endpoint name (letters, digits, -_.:)")

"""The service's signing key: every OS image and inference module it sends is signed.

The key is made at first start and kept in ``data_dir/keys/signing-ed25519.pem``
(mode 600). Devices get the public key with their credentials. Rotating it:
stop the service, move the file away, start it (a new key is made), and provision
each device's credentials again (``POST /devices/{ep}/credentials {"replace": true}``),
so each learns the new key; packages signed before stay verifiable only by devices
that still hold the old one.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tinymlaas.edge.signing import MAGIC, key_id

KEY_FILE = "keys/signing-ed25519.pem"


class Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
        self.key_id = key_id(self.public_key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Signer:
        path = data_dir / KEY_FILE
        if path.is_file():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            return cls(key)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return cls(key)

    @property
    def public_key_b64(self) -> str:
        """The public key as devices are given it."""
        return base64.b64encode(self.public_key).decode()

    def sign(self, payload: bytes) -> bytes:
        """The signed envelope of ``payload`` (deterministic: Ed25519)."""
        return MAGIC + self.key_id + self._key.sign(self.key_id + payload) + payload

"""Signed packages: what a device checks before it installs an OS image or a module.

A signed package is an envelope around the artifact::

    b"TMLS1\\n" | key id (8 bytes) | Ed25519 signature (64 bytes) | payload

The signature covers the key id and the payload. The service signs with its key
(:mod:`tinymlaas.signing`); a device holds the service's public key (its *trust*,
provisioned with its credentials) and refuses a package that is unsigned, signed
by another key, or altered — before anything is written to its flash.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

MAGIC = b"TMLS1\n"
KEY_ID_BYTES = 8
SIGNATURE_BYTES = 64
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + SIGNATURE_BYTES


class SignatureError(ValueError):
    """The package is unsigned, signed by a key this device does not trust, or altered."""


def key_id(public_key: bytes) -> bytes:
    """A short name of a public key: the first bytes of its SHA-256."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def read_trust(path: Path) -> bytes:
    """A public key file as provisioned: base64 of the raw 32-byte Ed25519 key."""
    raw = base64.b64decode(path.read_text().strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"{path} does not hold a 32-byte Ed25519 public key")
    return raw


def verify(envelope: bytes, trust: bytes) -> bytes:
    """The payload of a package signed by the holder of ``trust``; SignatureError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not envelope.startswith(MAGIC) or len(envelope) < HEADER_BYTES:
        raise SignatureError("the package is not signed")
    kid = envelope[len(MAGIC):len(MAGIC) + KEY_ID_BYTES]
    signature = envelope[len(MAGIC) + KEY_ID_BYTES:HEADER_BYTES]
    payload = envelope[HEADER_BYTES:]
    if kid != key_id(trust):
        raise SignatureError(f"the package is signed by key {kid.hex()}, "
                             f"not the trusted {key_id(trust).hex()}")
    try:
        Ed25519PublicKey.from_public_bytes(trust).verify(signature, kid + payload)
    except InvalidSignature:
        raise SignatureError("the package's signature does not match its content") from None
    return payload


def unwrap(path: Path, trust: bytes | None) -> None:
    """Check a downloaded package and leave only its payload at ``path``.

    Without a trust key (a device run without device security) the envelope is
    removed unchecked, so the same packages serve both kinds of device.
    """
    data = path.read_bytes()
    if trust is not None:
        payload = verify(data, trust)
    elif data.startswith(MAGIC):
        payload = data[HEADER_BYTES:]
    else:
        return
    tmp = path.with_name(path.name + ".unwrapped")
    tmp.write_bytes(payload)
    os.replace(tmp, path)

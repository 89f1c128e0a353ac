"""Signed packages: the service signs, a device that trusts its key takes only what it signed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinymlaas.edge.signing import HEADER_BYTES, SignatureError, key_id, unwrap, verify
from tinymlaas.signing import KEY_FILE, Signer


def test_the_key_is_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    first = Signer.load_or_create(tmp_path)
    assert os.stat(tmp_path / KEY_FILE).st_mode & 0o777 == 0o600
    assert os.stat((tmp_path / KEY_FILE).parent).st_mode & 0o777 == 0o700
    assert Signer.load_or_create(tmp_path).public_key == first.public_key
    assert first.sign(b"image") == first.sign(b"image")  # Ed25519 is deterministic: same package hash


def test_a_device_takes_what_the_service_signed_and_nothing_else(tmp_path: Path) -> None:
    signer, other = Signer.load_or_create(tmp_path / "a"), Signer.load_or_create(tmp_path / "b")
    package = signer.sign(b"the OS image")
    assert verify(package, signer.public_key) == b"the OS image"
    with pytest.raises(SignatureError, match="not signed"):
        verify(b"the OS image", signer.public_key)
    with pytest.raises(SignatureError, match=f"not the trusted {key_id(signer.public_key).hex()}"):
        verify(other.sign(b"the OS image"), signer.public_key)
    tampered = bytearray(package)
    tampered[HEADER_BYTES + 3] ^= 1
    with pytest.raises(SignatureError, match="does not match"):
        verify(bytes(tampered), signer.public_key)
    forged_id = bytearray(other.sign(b"x"))
    forged_id[6:14] = key_id(signer.public_key)  # claims the trusted key
    with pytest.raises(SignatureError, match="does not match"):
        verify(bytes(forged_id), signer.public_key)


def test_unwrap_leaves_the_payload_or_refuses_and_leaves_nothing_new(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path)
    path = tmp_path / "download"
    path.write_bytes(signer.sign(b"payload"))
    unwrap(path, signer.public_key)
    assert path.read_bytes() == b"payload"
    path.write_bytes(b"unsigned")
    with pytest.raises(SignatureError):
        unwrap(path, signer.public_key)
    path.write_bytes(signer.sign(b"payload"))
    unwrap(path, None)  # a device without device security takes the envelope off unchecked
    assert path.read_bytes() == b"payload"

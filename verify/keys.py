"""Key unwrapping (scrypt + AES-256-GCM) and id computation (section 4)."""

from __future__ import annotations

import os

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import FatalIntegrity, UsageError, WrongPassphrase
from .format import AAD_KEY, SEAL_OVERHEAD, FormatError, KeyFile, parse_key_file


class SealError(Exception):
    """``Open`` failed: tag mismatch or too short."""


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """``Open(K, sealed, aad)``: nonce ‖ ciphertext ‖ tag -> plaintext."""
    if len(sealed) < SEAL_OVERHEAD:
        raise SealError("sealed object shorter than nonce + tag")
    try:
        return AESGCM(key).decrypt(bytes(sealed[:12]), bytes(sealed[12:]), aad)
    except InvalidTag:
        raise SealError("GCM tag mismatch") from None


def seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
    """``Seal(K, plaintext, aad)`` (used by test writers)."""
    nonce = nonce or os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def derive_kek(passphrase: str, kf: KeyFile) -> bytes:
    """``scrypt(passphrase, salt, n, r, p, dklen=32)``."""
    return Scrypt(salt=kf.salt, length=32, n=kf.n, r=kf.r, p=kf.p).derive(passphrase.encode("utf-8"))


class Crypto:
    """Ids and ``Open`` for one repository; ``master_key`` None means unencrypted."""

    def __init__(self, master_key: bytes | None = None) -> None:
        if master_key is not None and len(master_key) != 64:
            raise ValueError("master key must be 64 bytes")
        self.encrypted = master_key is not None
        self.enc_key = master_key[:32] if master_key else b""
        self.id_key = master_key[32:] if master_key else b""

    def id(self, data: bytes) -> bytes:
        """Chunk/tree-node id: BLAKE3, keyed with IdKey when encrypted."""
        if self.encrypted:
            return blake3.blake3(data, key=self.id_key).digest()
        return blake3.blake3(data).digest()

    def open(self, stored: bytes, aad: bytes) -> bytes:
        """Plaintext of a stored object (identity when unencrypted)."""
        if not self.encrypted:
            return stored
        return open_sealed(self.enc_key, stored, aad)


def unwrap_master_key(key_files: list[bytes], passphrase: str | None) -> bytes:
    """Try every key file; return the 64-byte master key.

    Raises WrongPassphrase when some key file parses but none opens, FatalIntegrity when
    there is no usable key file at all, UsageError when no passphrase was given.
    """
    if passphrase is None:
        raise UsageError(
            "repository is encrypted: set DRBDBACKUP_PASSWORD or pass --password-file"
        )
    parsed = []
    for data in key_files:
        try:
            parsed.append(parse_key_file(data))
        except FormatError:
            continue
    if not parsed:
        raise FatalIntegrity("encrypted repository has no readable key file under keys/")
    for kf in parsed:
        try:
            return open_sealed(derive_kek(passphrase, kf), kf.data, AAD_KEY)
        except SealError:
            continue
    raise WrongPassphrase()

"""Keys, sealing and ids (format.md section 4). Pure functions over bytes."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

NONCE_LEN = 12
TAG_LEN = 16
SEAL_OVERHEAD = NONCE_LEN + TAG_LEN
KEY_AAD = b"drbdbackup-key-v1"
TOC_AAD = b"drbdbackup-toc-v1"
INDEX_AAD = b"drbdbackup-index-v1"
GENERATION_AAD = b"drbdbackup-generation-v1"
ZERO_ID = bytes(32)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1


class OpenFailed(Exception):
    """A sealed object did not authenticate (wrong key or tampered)."""


@dataclass(frozen=True)
class MasterKey:
    """EncKey for AES-256-GCM and IdKey for keyed BLAKE3."""

    enc_key: bytes
    id_key: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        raw = os.urandom(64)
        return cls(raw[:32], raw[32:])

    def raw(self) -> bytes:
        return self.enc_key + self.id_key


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || AES-256-GCM(ciphertext || tag)."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of seal; raises OpenFailed on any mismatch."""
    if len(sealed) < SEAL_OVERHEAD:
        raise OpenFailed("sealed object too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], aad)
    except InvalidTag:
        raise OpenFailed("authentication failed") from None


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def wrap_master_key(master: MasterKey, passphrase: str, created: str) -> dict:
    """Build a key file (JSON object) wrapping `master` with `passphrase`."""
    salt = os.urandom(16)
    kek = _kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return {
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(seal(kek, master.raw(), KEY_AAD)).decode(),
        "created": created,
    }


def unwrap_master_key(keyfile: dict, passphrase: str) -> MasterKey:
    """Open a key file; raises OpenFailed for a wrong passphrase."""
    if keyfile.get("kdf") != "scrypt":
        raise OpenFailed(f"unsupported kdf {keyfile.get('kdf')!r}")
    salt = base64.b64decode(keyfile["salt"])
    kek = _kek(passphrase, salt, int(keyfile["n"]), int(keyfile["r"]), int(keyfile["p"]))
    raw = open_sealed(kek, base64.b64decode(keyfile["data"]), KEY_AAD)
    if len(raw) != 64:
        raise OpenFailed("master key has the wrong length")
    return MasterKey(raw[:32], raw[32:])


class Hasher:
    """Computes ids: BLAKE3, keyed with IdKey when the repository is encrypted."""

    def __init__(self, id_key: bytes | None) -> None:
        self.id_key = id_key
        self._zero_ids: dict[int, bytes] = {}

    def id(self, data: bytes | memoryview) -> bytes:
        if self.id_key is None:
            return blake3.blake3(data).digest()
        return blake3.blake3(data, key=self.id_key).digest()

    def zero_id(self, length: int) -> bytes:
        """The id of `length` zero bytes (cached), used to detect zero chunks by digest."""
        zid = self._zero_ids.get(length)
        if zid is None:
            zid = self._zero_ids[length] = self.id(bytes(length))
        return zid


def plain_hash(data: bytes) -> bytes:
    """Unkeyed BLAKE3 (pack ids, index ids)."""
    return blake3.blake3(data).digest()

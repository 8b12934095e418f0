"""Keys, sealing and ids (format.md section 4). Pure functions over bytes."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from drbdbackup.repo.records import load_json_object

NONCE_LEN = 12
TAG_LEN = 16
SEAL_OVERHEAD = NONCE_LEN + TAG_LEN
KEY_AAD = b"drbdbackup-key-v1"
TOC_AAD = b"drbdbackup-toc-v1"
INDEX_AAD = b"drbdbackup-index-v1"
GENERATION_AAD = b"drbdbackup-generation-v1"
ZERO_ID = bytes(32)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
SCRYPT_MAX_N, SCRYPT_MAX_R, SCRYPT_MAX_P = 1 << 20, 32, 16  # format.md sections 5 and 17
SCRYPT_MAX_MEMORY = 256 << 20  # 128 * n * r bytes
SCRYPT_MAX_WORK = 1 << 23  # n * r * p (writers use 2^18)


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


class KeyFileError(ValueError):
    """A key file is malformed or asks for scrypt parameters beyond the reader limits."""


def _scrypt_param(keyfile: dict[str, Any], key: str, maximum: int) -> int:
    value = keyfile.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise KeyFileError(f"key file: scrypt {key} must be an integer in [1, {maximum}]")
    return value


def _b64_field(keyfile: dict[str, Any], key: str, lengths: range) -> bytes:
    value = keyfile.get(key)
    if not isinstance(value, str) or len(value) > 4 * lengths.stop:
        raise KeyFileError(f"key file: {key} must be a base64 string")
    try:
        out = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII string
        raise KeyFileError(f"key file: {key} is not base64") from None
    if len(out) not in lengths:
        raise KeyFileError(f"key file: {key} has the wrong length")
    return out


def check_key_file(keyfile: dict[str, Any]) -> tuple[int, int, int, bytes, bytes]:
    """The scrypt parameters, salt and sealed key of a well-formed key file (no derivation);
    raises KeyFileError (a ValueError) for a malformed file or parameters above the reader
    limits (n = 2^20, r = 32, p = 16), OpenFailed for a kdf other than scrypt."""
    if not isinstance(keyfile, dict):
        raise KeyFileError("key file is not a JSON object")
    if keyfile.get("kdf") != "scrypt":
        raise OpenFailed(f"unsupported kdf {str(keyfile.get('kdf'))[:40]!r}")
    n = _scrypt_param(keyfile, "n", SCRYPT_MAX_N)
    if n < 2 or n & (n - 1):
        raise KeyFileError("key file: scrypt n must be a power of two >= 2")
    r = _scrypt_param(keyfile, "r", SCRYPT_MAX_R)
    p = _scrypt_param(keyfile, "p", SCRYPT_MAX_P)
    if 128 * n * r > SCRYPT_MAX_MEMORY or n * r * p > SCRYPT_MAX_WORK:
        raise KeyFileError(f"key file: scrypt n={n} r={r} p={p} needs more memory or work than "
                           "readers allow")
    salt = _b64_field(keyfile, "salt", range(8, 65))
    sealed = _b64_field(keyfile, "data", range(64 + SEAL_OVERHEAD, 64 + SEAL_OVERHEAD + 1))
    return n, r, p, salt, sealed


def unwrap_master_key(keyfile: dict | bytes, passphrase: str) -> MasterKey:
    """Open a key file (its JSON bytes, or the parsed object); raises OpenFailed for a wrong
    passphrase and KeyFileError (see `check_key_file`) before any key derivation runs."""
    if isinstance(keyfile, bytes | bytearray):
        keyfile = load_json_object(bytes(keyfile), "key file")
    n, r, p, salt, sealed = check_key_file(keyfile)
    kek = _kek(passphrase, salt, n, r, p)
    raw = open_sealed(kek, sealed, KEY_AAD)
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

"""drbdbackup's key file reader (format.md sections 4.1 and 17). scrypt itself is replaced by a
fast stand-in here (its parameters are what is fuzzed, and they are checked before it runs).
Documented errors: ValueError (KeyFileError, JsonObjectError), OpenFailed (wrong passphrase).
"""

import hashlib
import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import crypto

import _common
import _revert_product

LIMIT_MEMORY, LIMIT_WORK = 256 << 20, 1 << 23


def fast_kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if 128 * n * r > LIMIT_MEMORY or n * r * p > LIMIT_WORK or n > 1 << 20:
        raise _common.BoundBreach(f"scrypt would run with n={n} r={r} p={p}")
    return hashlib.sha256(passphrase.encode() + salt).digest()


crypto._kek = fast_kek


def test_one_input(data: bytes) -> None:
    try:
        crypto.unwrap_master_key(data, "fuzz")
    except (ValueError, crypto.OpenFailed) as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_product.revert)
    sys.exit(0)

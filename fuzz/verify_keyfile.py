"""drbdverify's key file reader (verify/format.py parse_key_file, verify/keys.py unwrap). scrypt
is replaced by a fast stand-in (the parameters are checked before it runs). Documented errors:
the verify errors (FormatError, WrongPassphrase, FatalIntegrity: VerifyError).
"""

import hashlib
import sys

import atheris

with atheris.instrument_imports(include=["verify"]):
    from verify import keys
    from verify.errors import VerifyError

import _common
import _revert_verify

LIMIT_MEMORY, LIMIT_WORK = 256 << 20, 1 << 23


def fast_kek(passphrase: str, kf: object) -> bytes:
    n, r, p = kf.n, kf.r, kf.p  # type: ignore[attr-defined]
    if 128 * n * r > LIMIT_MEMORY or n * r * p > LIMIT_WORK or n > 1 << 20:
        raise _common.BoundBreach(f"scrypt would run with n={n} r={r} p={p}")
    return hashlib.sha256(passphrase.encode() + kf.salt).digest()  # type: ignore[attr-defined]


keys.derive_kek = fast_kek


def test_one_input(data: bytes) -> None:
    try:
        keys.unwrap_master_key([data], "fuzz")
    except VerifyError as exc:
        _common.one_line_str(exc)


if __name__ == "__main__":
    _common.run(test_one_input, "json", _revert_verify.revert)
    sys.exit(0)

"""Key files `keys/<keyid>` (format.md section 4.1): several passphrases for one master key.

Each key file wraps the same master key with its own passphrase. Changing a passphrase
rewrites only that key file, in one atomic put under the same name: a crash leaves either the
old or the new file, so the old or the new passphrase opens it, never neither. The last key
file is never removed. The paper copy of the master key is plain text made for people.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass

from drbdbackup.errors import IntegrityError, ObjectNotFound, UsageError, WrongPassword
from drbdbackup.repo import testpause
from drbdbackup.repo.backend import Backend
from drbdbackup.repo.capped import read_capped
from drbdbackup.repo.crypto import (
    MasterKey,
    OpenFailed,
    check_key_file,
    unwrap_master_key,
    wrap_master_key,
)
from drbdbackup.repo.records import iso, load_json_object, now
from drbdbackup.repo.repository import KEY_NAME_RE

TEST_PAUSE_ENV = "DRBDBACKUP_TEST_KEY_PAUSE"  # tests only: "<step>:<seconds>", see _pause


@dataclass
class KeyInfo:
    """One key file as `key list` shows it (never its salt or wrapped key)."""

    key_id: str
    created: str | None
    kdf: str | None
    opens: bool = False  # with the passphrase given
    damaged: str | None = None

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def key_names(backend: Backend) -> list[str]:
    """The key files (names of the format only), sorted."""
    return sorted(n for n in backend.list("keys/") if KEY_NAME_RE.match(n))


def key_id_of(name: str) -> str:
    return name.removeprefix("keys/")


def name_of(key_id: str) -> str:
    name = f"keys/{key_id}"
    if not KEY_NAME_RE.match(name):
        raise UsageError(f"invalid key id {key_id[:80]!r}: 32 lower-case hex characters (see key list)")
    return name


def _try_open(backend: Backend, name: str, passphrase: str) -> tuple[MasterKey | None, KeyInfo]:
    info = KeyInfo(key_id_of(name), None, None)
    try:
        raw = read_capped(backend, name, "key file")
        doc = load_json_object(raw, "key file")
        info.created = str(doc.get("created"))[:64] if doc.get("created") is not None else None
        info.kdf = f"{doc.get('kdf')} n={doc.get('n')} r={doc.get('r')} p={doc.get('p')}"[:80]
        master = unwrap_master_key(doc, passphrase)
    except OpenFailed:
        return None, info
    except ObjectNotFound:
        info.damaged = "disappeared while being read"
        return None, info
    except ValueError as exc:  # too large, too deep, malformed, absurd scrypt parameters
        info.damaged = str(exc)[:200]
        return None, info
    info.opens = True
    return master, info


def describe_keys(backend: Backend, passphrase: str) -> list[KeyInfo]:
    """Every key file, each saying whether `passphrase` opens it or why it is damaged."""
    return [_try_open(backend, name, passphrase)[1] for name in key_names(backend)]


def find_key(backend: Backend, passphrase: str) -> tuple[str, MasterKey]:
    """The first key file `passphrase` opens: (its name, the master key); WrongPassword if none."""
    names = key_names(backend)
    if not names:
        raise IntegrityError("repository is encrypted but has no key files")
    for name in names:
        master, _info = _try_open(backend, name, passphrase)
        if master is not None:
            return name, master
    raise WrongPassword("wrong passphrase: no key file of this repository opens with it")


def _pause(step: str) -> None:
    """Test hook: with DRBDBACKUP_TEST_KEY_PAUSE=<step>:<seconds>, say so on stderr and sleep at
    that step, so a test can kill the process there. Does nothing otherwise."""
    want = os.environ.get(TEST_PAUSE_ENV, "")
    if want.partition(":")[0] == step:
        testpause.pause(f"test hook: paused at {step}", float(want.partition(":")[2] or 30))


def _encode(master: MasterKey, passphrase: str) -> bytes:
    if not passphrase:
        raise UsageError("the new passphrase is empty")
    return json.dumps(wrap_master_key(master, passphrase, iso(now()))).encode()


def refuse_known(backend: Backend, passphrase: str) -> None:
    """A passphrase that already opens a key file would only add a copy."""
    for name in key_names(backend):
        if _try_open(backend, name, passphrase)[0] is not None:
            raise UsageError(f"that passphrase already opens key {key_id_of(name)}")


def add_key(backend: Backend, master: MasterKey, passphrase: str) -> str:
    """A new key file wrapping `master` with `passphrase` (create-exclusive); returns its id."""
    data = _encode(master, passphrase)
    name = f"keys/{secrets.token_hex(16)}"
    backend.put(name, data, exclusive=True)
    return key_id_of(name)


def rewrite_key(backend: Backend, name: str, master: MasterKey, passphrase: str) -> None:
    """Replace key file `name` by one wrapping `master` with `passphrase`: one atomic put of
    the same name, so the old file stays whole until the new one has replaced it."""
    data = _encode(master, passphrase)
    _pause("before-write")
    backend.put(name, data)
    _pause("after-write")


def remove_key(backend: Backend, name: str) -> None:
    """Delete key file `name`, unless no other readable key file would remain."""
    names = key_names(backend)
    if name not in names:
        raise UsageError(f"no key {key_id_of(name)} in this repository (see key list)")
    others = []
    for other in names:
        if other != name:
            try:  # a key file that could open with some passphrase (nothing derived here)
                check_key_file(load_json_object(read_capped(backend, other, "key file"), "key file"))
                others.append(other)
            except (ValueError, OpenFailed, ObjectNotFound):
                continue
    if not others:
        raise UsageError(f"key {key_id_of(name)} is the last key of this repository: add another "
                         "key first (without a key file the repository cannot be opened)")
    backend.delete(name)


# ---- the paper copy --------------------------------------------------------------------------

PAPER_TITLE = "drbdbackup master key, paper copy"
BYTES_PER_LINE = 16


def _line_check(number: int, data: bytes) -> str:
    return hashlib.sha256(bytes([number]) + data).hexdigest()[:4]


def _key_check(repository_id: str, raw: bytes) -> str:
    return hashlib.sha256(repository_id.encode() + raw).hexdigest()[:16]


def paper_copy(repository_id: str, master: MasterKey) -> str:
    """The master key as text to print and keep offline (format.md section 4.1): per line its
    number, 16 bytes in groups of 2 and a 4-hex check of that line; then a check of the whole."""
    raw = master.raw()
    lines = [PAPER_TITLE, f"repository {repository_id}"]
    for i in range(0, len(raw), BYTES_PER_LINE):
        number = i // BYTES_PER_LINE + 1
        chunk = raw[i:i + BYTES_PER_LINE]
        groups = " ".join(chunk[j:j + 2].hex() for j in range(0, len(chunk), 2))
        lines.append(f"{number}: {groups}  {_line_check(number, chunk)}")
    lines.append(f"check {_key_check(repository_id, raw)}")
    return "\n".join(lines) + "\n"


_LINE_RE = re.compile(r"^\s*(\d+):\s*((?:[0-9a-f]{4}\s*){8})\s+([0-9a-f]{4})\s*$")


def parse_paper(text: str) -> tuple[str, MasterKey]:
    """Read a paper copy back (typed in again); raises UsageError naming the first wrong line."""
    repository_id, raw, check = None, b"", None
    for line in text.lower().splitlines():
        if line.startswith("repository "):
            repository_id = line.split()[1]
        elif line.startswith("check "):
            check = line.split()[1]
        elif m := _LINE_RE.match(line):
            number, data = int(m.group(1)), bytes.fromhex("".join(m.group(2).split()))
            if number != len(raw) // BYTES_PER_LINE + 1 or _line_check(number, data) != m.group(3):
                raise UsageError(f"paper key: line {number} does not match its check (a typo?)")
            raw += data
    if repository_id is None or check is None or len(raw) != 64:
        raise UsageError("paper key: incomplete (needs the repository line, 4 key lines and the check)")
    if _key_check(repository_id, raw) != check:
        raise UsageError("paper key: the final check does not match")
    return repository_id, MasterKey(raw[:32], raw[32:])

"""Key management: list, add, remove, change a passphrase, export a paper copy of the master
key. Each runs in `operation` (which opens the repository with the current passphrase, so a
wrong one fails there, exit 2) and writes a `key` audit entry naming the action and the key id,
never a passphrase or key. Changes that could race (remove, passwd) hold the exclusive lock."""

from __future__ import annotations

from typing import Any

from drbdbackup.errors import UsageError
from drbdbackup.ops.session import LockMode, RepositoryRef, Session, operation
from drbdbackup.repo import keyfiles


def _encrypted(s: Session) -> None:
    if s.repo.enc_key is None:
        raise UsageError("repository is not encrypted: it has no keys")


def _current(ref: RepositoryRef) -> str:
    if not ref.password:
        raise UsageError("key commands need the current passphrase: set DRBDBACKUP_PASSWORD or "
                         "--password-file")
    return ref.password


def _new(passphrase: str | None) -> str:
    if not passphrase:
        raise UsageError("the new passphrase is missing: set DRBDBACKUP_NEW_PASSWORD or "
                         "--new-password-file")
    return passphrase


def list_keys(ref: RepositoryRef) -> list[dict[str, Any]]:
    """Every key file: id, created, kdf, whether the current passphrase opens it, damage."""
    with operation(ref, "key", lock=LockMode.SHARED) as s:
        _encrypted(s)
        return [k.to_dict() for k in keyfiles.describe_keys(s.repo.backend, _current(ref))]


def add_key(ref: RepositoryRef, new_password: str | None) -> dict[str, Any]:
    """A new key file for `new_password`, wrapping the master key the current one opens."""
    new = _new(new_password)
    with operation(ref, "key", lock=LockMode.SHARED) as s:
        _encrypted(s)
        backend = s.repo.backend
        _name, master = keyfiles.find_key(backend, _current(ref))
        keyfiles.refuse_known(backend, new)
        key_id = keyfiles.add_key(backend, master, new)
        s.succeeded("key", {"action": "add", "key_id": key_id})
        return {"action": "add", "key_id": key_id}


def change_passphrase(ref: RepositoryRef, new_password: str | None) -> dict[str, Any]:
    """Rewrite the key file the current passphrase opens for `new_password` (atomically)."""
    new = _new(new_password)
    with operation(ref, "key", lock=LockMode.EXCLUSIVE) as s:
        _encrypted(s)
        name, master = keyfiles.find_key(s.repo.backend, _current(ref))
        keyfiles.rewrite_key(s.repo.backend, name, master, new)
        key_id = keyfiles.key_id_of(name)
        s.succeeded("key", {"action": "passwd", "key_id": key_id})
        return {"action": "passwd", "key_id": key_id}


def remove_key(ref: RepositoryRef, key_id: str | None) -> dict[str, Any]:
    """Delete one key file (never the last one)."""
    if not key_id:
        raise UsageError("key remove needs the id of the key to remove (see key list)")
    name = keyfiles.name_of(key_id)
    with operation(ref, "key", lock=LockMode.EXCLUSIVE) as s:
        _encrypted(s)
        keyfiles.remove_key(s.repo.backend, name)
        s.succeeded("key", {"action": "remove", "key_id": key_id})
        return {"action": "remove", "key_id": key_id}


def export_paper(ref: RepositoryRef) -> dict[str, Any]:
    """The paper copy of the master key (format.md section 4.1); audited."""
    with operation(ref, "key", lock=LockMode.SHARED) as s:
        _encrypted(s)
        name, master = keyfiles.find_key(s.repo.backend, _current(ref))
        text = keyfiles.paper_copy(s.repo.id, master)
        s.succeeded("key", {"action": "export", "format": "paper",
                            "key_id": keyfiles.key_id_of(name)})
        return {"action": "export", "repository_id": s.repo.id, "paper": text}

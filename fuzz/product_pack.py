"""drbdbackup's pack reader (format.md sections 6 and 17): header, trailer, TOC, then every blob
the TOC lists, decoded with the repository's limits.

Input: selector byte (chunk size and fanout, _common.config_of), then a whole pack (unsealed).
Documented errors: PackFormatError, BlobError. Oracle: each plaintext within the format's bound.
"""

import sys

import atheris

with atheris.instrument_imports(include=["drbdbackup"]):
    from drbdbackup.repo import blob, pack

import _common
import _revert_product

HEADER = 1  # selector


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    chunk_size, fanout = _common.config_of(data[0])
    raw = data[1:]
    try:
        entries = pack.split_pack(raw, None, chunk_size=chunk_size, fanout=fanout)
    except pack.PackFormatError as exc:
        _common.one_line_str(exc)
        return
    for e in entries:
        stored = raw[e.offset : e.offset + e.length]
        limit = blob.max_plain_length(e.kind, chunk_size, fanout)
        try:
            plain = blob.decode_blob(stored, e.id, None, e.plain_length, limit=limit)
        except blob.BlobError as exc:
            _common.one_line_str(exc)
            continue
        _common.hold(len(plain), _common.format_max_plain(e.kind, chunk_size, fanout), "blob")


if __name__ == "__main__":
    _common.run(test_one_input, "binary", _revert_product.revert, header=HEADER)
    sys.exit(0)

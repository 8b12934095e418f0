"""report/signing.py: canonical form, the three containers, one-byte edits (pure, in-process)."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drbdbackup.report import signing
from drbdbackup.report.html import render_html
from drbdbackup.report.signing import InvalidReport

BODY = {"report": "x", "repository_id": "r" * 64, "audit_chain_head": "h" * 64,
        "note": "<script>&</script> ü", "n": [1, 2.5, None, True]}


def _html(signed: signing.Signed, key: Ed25519PrivateKey) -> bytes:
    page = b"<!doctype html><html><body><p>report</p>" + signing.embedded_block(signed) + b"</body></html>\n"
    return page + signing.trailer(signed, page, key, html=True)


def _pdf(signed: signing.Signed, key: Ed25519PrivateKey) -> bytes:
    page = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    return page + signing.trailer(signed, page, key, html=False)


def _check(raw: bytes, key: Ed25519PrivateKey) -> None:
    signing.verify_container(signing.split_container(raw), key.public_key())


def test_canonical_is_html_safe_and_stable() -> None:
    c = signing.canonical(BODY)
    assert b"<" not in c and b">" not in c and b"&" not in c and b'": ' not in c and b", " not in c
    assert c.isascii()
    assert json.loads(c) == BODY and signing.canonical(json.loads(c)) == c


@pytest.mark.parametrize("make", [lambda s, k: s.document(), _html, _pdf], ids=["json", "html", "pdf"])
def test_every_format_verifies_and_every_edit_fails(make) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    signed = signing.sign_body(BODY, key)
    raw = make(signed, key)
    _check(raw, key)
    # another key: fails, naming the fingerprints
    with pytest.raises(InvalidReport, match="another key"):
        signing.verify_container(signing.split_container(raw), Ed25519PrivateKey.generate().public_key())
    # one byte edited at every position of these small files (XOR 0xFF or a flipped low bit,
    # alternating: the low bit is what slips through base64 padding)
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0xFF if pos % 2 else 0x01
        with pytest.raises(InvalidReport):
            _check(bytes(bad), key)


def test_a_report_signed_by_another_key_but_claiming_ours_fails() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = signing.sign_body(BODY, theirs)
    body = {**forged.body, "signer": {"algorithm": "Ed25519",
                                      "public_key_sha256": signing.fingerprint(ours.public_key())}}
    raw = signing.Signed(body, forged.signature).document()
    with pytest.raises(InvalidReport, match="does not match its content"):
        _check(raw, ours)


def test_unsigned_and_foreign_files() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidReport, match="not signed"):
        _check(signing.Signed(BODY).document(), key)
    with pytest.raises(InvalidReport, match="canonical"):
        _check(json.dumps({**json.loads(signing.sign_body(BODY, key).document())}, indent=1).encode(), key)
    with pytest.raises(InvalidReport, match="no signed report trailer"):
        _check(b"<html>hello</html>", key)
    # the HTML trailer of one report under another report's page fails
    a, b = signing.sign_body(BODY, key), signing.sign_body({**BODY, "n": 1}, key)
    page = _html(a, key)
    swapped = page[: page.index(b"<!--\n%drbdbackup")] + signing.trailer(b, page[: page.index(b"<!--\n%d")], key, True)
    with pytest.raises(InvalidReport, match="does not embed"):
        _check(swapped, key)


def test_rendered_html_verifies_and_random_edits_fail() -> None:
    key = Ed25519PrivateKey.generate()
    from tests.report.test_build import body

    signed = signing.sign_body(body(), key)
    page = render_html(signed.body, signing.embedded_block(signed))
    raw = page + signing.trailer(signed, page, key, html=True)
    _check(raw, key)
    rng = random.Random(5)
    for pos in [0, len(raw) - 1, *rng.sample(range(len(raw)), 200)]:
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        with pytest.raises(InvalidReport):
            _check(bytes(bad), key)


def test_keys() -> None:
    priv, pub = signing.new_key_pair()
    k = signing.load_private(priv, "k")
    assert signing.fingerprint(k.public_key()) == signing.fingerprint(signing.load_public(pub, "p"))
    from drbdbackup.errors import UsageError

    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        signing.load_private(pub, "p")
    with pytest.raises(UsageError, match="not a PEM public key"):
        signing.load_public(b"garbage", "g")


def test_base64_slack_bits_are_an_edit_too() -> None:
    """The last base64 character before `==` carries 4 unused bits: changing them keeps the
    decoded signature, and must still fail (strict base64)."""
    key = Ed25519PrivateKey.generate()
    signed = signing.sign_body(BODY, key)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for raw in (signed.document(), _html(signed, key), _pdf(signed, key)):
        text = raw.decode()
        i = text.rindex("==") - 1  # the JSON form's or the trailer's last padded group
        slack = alphabet[alphabet.index(text[i]) ^ 1]
        bad = (text[:i] + slack + text[i + 1:]).encode()
        assert bad != raw
        with pytest.raises(InvalidReport):
            _check(bad, key)

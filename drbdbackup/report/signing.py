"""Ed25519 signatures over the canonical JSON report, and the three signed containers.

Canonical form: `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`
with `<`, `>` and `&` written as `\\u003c`, `\\u003e`, `\\u0026` (so it can sit in an HTML
script block unchanged). The *payload* is the canonical form of the report body, which holds
`signer` = {algorithm, public_key_sha256}; the signature is Ed25519 over the payload bytes.

- JSON: the file is the canonical form of the body plus `signature` = {algorithm,
  public_key_sha256, value (base64)}, then one newline. A file that is not exactly canonical
  fails (so no byte can change without failing).
- HTML / PDF: the document embeds the signed JSON (HTML: the `drbdbackup-signed` script block)
  and ends with a trailer (see `TRAILER_*`) carrying the signed JSON (base64) and a second
  signature over `DOC_DOMAIN || sha256(payload) hex || "\\n" || every byte before the trailer`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drbdbackup.errors import IntegrityError, UsageError

ALGORITHM = "Ed25519"
TRAILER_START = b"\n%drbdbackup-signed-report "
TRAILER_DOC = b"\n%drbdbackup-document-signature "
TRAILER_END = b"\n%drbdbackup-end\n"
HTML_OPEN, HTML_CLOSE = b"<!--", b"-->\n"
DOC_DOMAIN = b"drbdbackup-document-v1\n"
_TRAILER_RE = re.compile(rb"\n%drbdbackup-signed-report ([A-Za-z0-9+/=]+)\n%drbdbackup-document-"
                         rb"signature ([A-Za-z0-9+/=]+)\n%drbdbackup-end\n(?:-->\n)?\Z")


class InvalidReport(IntegrityError):
    """The report does not verify."""


def b64decode_strict(text: str | bytes) -> bytes:
    """Base64 that re-encodes to exactly `text` (the padding bits of the last character could
    otherwise change without changing the bytes); ValueError otherwise."""
    raw = text.encode() if isinstance(text, str) else text
    data = base64.b64decode(raw, validate=True)
    if base64.b64encode(data) != raw:
        raise ValueError("not canonical base64")
    return data


def canonical(obj: Any) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def fingerprint(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private(pem: bytes, path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path} is not an Ed25519 private key")
    return key


def load_public(pem: bytes, path: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise UsageError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path} is not an Ed25519 public key")
    return key


def new_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh Ed25519 key."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


@dataclass(frozen=True)
class Signed:
    """The report body and (when signed) its signature, as stored in every format."""

    body: dict[str, Any]
    signature: bytes | None = None

    @property
    def payload(self) -> bytes:
        return canonical(self.body)

    def document(self) -> bytes:
        """The JSON format's bytes (and what HTML and PDF embed)."""
        obj = dict(self.body)
        if self.signature is not None:
            obj["signature"] = {**self.body["signer"],
                                "value": base64.b64encode(self.signature).decode()}
        return canonical(obj) + b"\n"


def sign_body(body: dict[str, Any], key: Ed25519PrivateKey | None) -> Signed:
    if key is None:
        return Signed(body)
    body = {**body, "signer": {"algorithm": ALGORITHM, "public_key_sha256": fingerprint(key.public_key())}}
    return Signed(body, key.sign(canonical(body)))


def doc_message(payload: bytes, prefix: bytes) -> bytes:
    return DOC_DOMAIN + hashlib.sha256(payload).hexdigest().encode() + b"\n" + prefix


def trailer(signed: Signed, prefix: bytes, key: Ed25519PrivateKey, html: bool) -> bytes:
    """What follows `prefix` (the HTML or PDF bytes) in a signed document."""
    doc_sig = key.sign(doc_message(signed.payload, prefix))
    body = (TRAILER_START + base64.b64encode(signed.document()) + TRAILER_DOC
            + base64.b64encode(doc_sig) + TRAILER_END)
    return HTML_OPEN + body + HTML_CLOSE if html else body


def parse_document(raw: bytes) -> Signed:
    """A JSON-format file -> Signed; InvalidReport when it is not exactly canonical."""
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidReport("the signed report is not valid JSON") from None
    if not isinstance(obj, dict) or canonical(obj) + b"\n" != raw:
        raise InvalidReport("the signed report is not in canonical form (edited?)")
    sig = obj.pop("signature", None)
    if sig is None:
        raise InvalidReport("the report is not signed")
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM or not isinstance(sig.get("value"), str):
        raise InvalidReport("the report's signature field is malformed")
    try:
        value = b64decode_strict(sig["value"])
    except (binascii.Error, ValueError):
        raise InvalidReport("the report's signature is not base64") from None
    if obj.get("signer") != {k: v for k, v in sig.items() if k != "value"}:
        raise InvalidReport("the signature's key fingerprint differs from the signed one")
    return Signed(obj, value)


@dataclass(frozen=True)
class Container:
    """What a file holds: the signed report, and for HTML/PDF the document signature."""

    kind: str  # json | html | pdf
    signed: Signed
    prefix: bytes = b""
    doc_signature: bytes | None = None


def split_container(raw: bytes) -> Container:
    """Recognize the format and take the signed parts out; InvalidReport when absent."""
    if raw.startswith(b"{"):
        return Container("json", parse_document(raw))
    kind = "pdf" if raw.startswith(b"%PDF-") else "html"
    m = _TRAILER_RE.search(raw)
    if not m:
        raise InvalidReport(f"no signed report trailer at the end of this {kind} file")
    start = m.start()
    if kind == "html":
        if not raw[:start].endswith(HTML_OPEN):
            raise InvalidReport("the html trailer is not inside a comment")
        start -= len(HTML_OPEN)
    try:
        doc, doc_sig = b64decode_strict(m.group(1)), b64decode_strict(m.group(2))
    except (binascii.Error, ValueError):
        raise InvalidReport("the trailer is not base64") from None
    return Container(kind, parse_document(doc), raw[:start], doc_sig)


def verify_container(c: Container, pub: Ed25519PublicKey) -> None:
    """Raise InvalidReport with one line saying why the container does not verify."""
    fp = fingerprint(pub)
    if c.signed.body.get("signer", {}).get("public_key_sha256") != fp:
        raise InvalidReport(f"signed with another key (fingerprint "
                            f"{str(c.signed.body.get('signer', {}).get('public_key_sha256'))[:16]}…, "
                            f"expected {fp[:16]}…)")
    assert c.signed.signature is not None
    try:
        pub.verify(c.signed.signature, c.signed.payload)
    except InvalidSignature:
        raise InvalidReport("the report's signature does not match its content") from None
    if c.kind == "json":
        return
    assert c.doc_signature is not None
    try:
        pub.verify(c.doc_signature, doc_message(c.signed.payload, c.prefix))
    except InvalidSignature:
        raise InvalidReport(f"the {c.kind} document's signature does not match its bytes") from None
    if c.kind == "html" and embedded_block(c.signed) not in c.prefix:
        raise InvalidReport("the html document does not embed the signed report")


def embedded_block(signed: Signed) -> bytes:
    """The HTML script block with the signed JSON."""
    return (b'<script type="application/json" id="drbdbackup-signed">'
            + signed.document().rstrip(b"\n") + b"</script>")

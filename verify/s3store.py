"""The verifier's S3 reader (boto3): ranged GETs, single PUTs, If-None-Match for exclusive puts.

Endpoint and keys come from the usual AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import EnvironmentFailure, UsageError
from .store import ObjectMissing


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class _S3Reader:
    """ObjectReader over one S3 object (size from HEAD, ranged GETs)."""

    def __init__(self, store: S3Store, name: str) -> None:
        self.store, self.name = store, name
        try:
            head = store.client.head_object(Bucket=store.bucket, Key=store.key(name))
        except Exception as exc:  # noqa: BLE001 - translated
            raise store.error(exc, name) from None
        self.size = int(head["ContentLength"])

    def pread(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        end = min(offset + length, self.size) - 1
        try:
            obj = self.store.client.get_object(
                Bucket=self.store.bucket, Key=self.store.key(self.name), Range=f"bytes={offset}-{end}"
            )
            return obj["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self.store.error(exc, self.name) from None

    def close(self) -> None:
        pass


class S3Store:
    """A repository under s3://bucket/prefix."""

    def __init__(self, url: str) -> None:
        try:
            import boto3
        except ImportError:
            raise UsageError("drbdverify: s3:// repositories need boto3 (pip install boto3)") from None
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise UsageError(f"drbdverify: invalid S3 location {url!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = url
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint)

    def key(self, name: str) -> str:
        return self.prefix + name

    def error(self, exc: Exception, name: str) -> Exception:
        if _code(exc) in ("NoSuchKey", "404", "NotFound"):
            return ObjectMissing(name)
        return EnvironmentFailure(f"S3 error on {name}: {_code(exc) or type(exc).__name__}")

    def list(self, prefix: str) -> list[str]:
        out: list[str] = []
        want = self.key(prefix.rstrip("/") + "/")
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=want):
                out.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, prefix) from None
        return sorted(n for n in out if not n.endswith(".tmp"))

    def get(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, name) from None

    def open(self, name: str) -> _S3Reader:
        return _S3Reader(self, name)

    def put_atomic(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)
        except Exception as exc:  # noqa: BLE001
            raise self.error(exc, name) from None

    def put_exclusive(self, name: str, data: bytes) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            return False
        except Exception as exc:  # noqa: BLE001
            if not isinstance(self.error(exc, name), ObjectMissing):
                raise self.error(exc, name) from None
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, IfNoneMatch="*")
        except Exception as exc:  # noqa: BLE001
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self.error(exc, name) from None
        return True

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
        except Exception as exc:  # noqa: BLE001
            err = self.error(exc, name)
            if not isinstance(err, ObjectMissing):
                raise err from None

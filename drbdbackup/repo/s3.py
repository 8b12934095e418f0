"""S3 backend (boto3): one object per name under a prefix; endpoint and keys from the usual AWS
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from drbdbackup.errors import BackendError, ObjectExists, ObjectNotFound, UsageError


class S3Backend:
    """Puts are single PUTs (atomic in S3); create-exclusive uses If-None-Match: *."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.location = f"s3://{bucket}/{self.prefix}"
        self._staging = tempfile.mkdtemp(prefix="drbdbackup-s3-")

    @classmethod
    def from_url(cls, url: str) -> S3Backend:
        try:
            import boto3
        except ImportError:
            raise UsageError("s3:// repositories need boto3: pip install 'drbdbackup[s3]'") from None
        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"invalid S3 location {url!r}: use s3://bucket/prefix")
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL")
        client = boto3.client("s3", endpoint_url=endpoint)
        return cls(bucket, prefix, client)

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _err(self, exc: Exception, name: str) -> Exception:
        code = _code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(f"object not found: {name}")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return ObjectExists(f"object exists: {name}")
        if code in ("NoSuchBucket",):
            return BackendError(f"S3 bucket {self.bucket} does not exist")
        return BackendError(f"S3 error on {name}: {code or type(exc).__name__}")

    def get(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore errors are translated
            raise self._err(exc, name) from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=self._key(name), Range=f"bytes={offset}-{offset + length - 1}"
            )
            return resp["Body"].read()
        except Exception as exc:  # noqa: BLE001
            if _code(exc) == "InvalidRange":  # the range starts at or past the end (416)
                return b""
            raise self._err(exc, name) from None

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(name), "Body": data}
        if exclusive:
            if self.exists(name):
                raise ObjectExists(f"object exists: {name}")
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, name) from None

    def put_file(self, name: str, path: str) -> None:
        try:
            self.client.upload_file(path, self.bucket, self._key(name))
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, name) from None
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:  # noqa: BLE001
            err = self._err(exc, name)
            if not isinstance(err, ObjectNotFound):
                raise err from None

    def list(self, prefix: str) -> list[str]:
        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    out.append(obj["Key"][len(self.prefix) :])
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, prefix) from None
        return sorted(out)

    def size(self, name: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(name))["ContentLength"])
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, name) from None

    def mtime(self, name: str) -> float:
        """LastModified as the S3 server reports it (the cluster's cycle clock)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, name) from None
        return float(head["LastModified"].timestamp())

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except ObjectNotFound:
            return False
        return True

    def staging_dir(self) -> str:
        return self._staging


def _code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ("" for any other exception)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

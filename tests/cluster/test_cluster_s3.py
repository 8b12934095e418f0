"""The claim race and the fence through S3 (moto's server): If-None-Match: * decides."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from drbdbackup.cluster.names import ClusterKey
from drbdbackup.errors import ObjectNotFound
from drbdbackup.repo.s3 import S3Backend

from .helpers import coordinator
from .test_cluster_race import ROUNDS, _race

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")


class MtimeS3Backend(S3Backend):
    """S3Backend plus `mtime` (LastModified), the proposed Backend addition."""

    def mtime(self, name: str) -> float:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:  # noqa: BLE001
            raise ObjectNotFound(name) from exc
        return float(head["LastModified"].timestamp())


class ConditionalOnlyS3Backend(MtimeS3Backend):
    """Exclusive puts without S3Backend's exists() pre-check: only If-None-Match decides."""

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        if not exclusive:
            return super().put(name, data)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data,
                                   IfNoneMatch="*")
        except Exception as exc:  # noqa: BLE001
            raise self._err(exc, name) from None


@pytest.fixture(scope="module")
def s3() -> Iterator[MtimeS3Backend]:
    from tests.s3server import moto_s3

    with moto_s3("cluster") as env:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                              region_name=env["AWS_DEFAULT_REGION"])
        client.put_object(Bucket="cluster", Key="probe", Body=b"1", IfNoneMatch="*")
        try:
            client.put_object(Bucket="cluster", Key="probe", Body=b"2", IfNoneMatch="*")
        except Exception as exc:  # noqa: BLE001 - expected: 412 PreconditionFailed
            assert "PreconditionFailed" in str(exc) or "412" in str(exc)
        else:
            pytest.skip("this moto does not honour If-None-Match: *")
        yield MtimeS3Backend("cluster", f"t{os.getpid()}", client)


@pytest.mark.parametrize("conditional_only", [False, True])
def test_s3_threads_race_exactly_one_wins(s3: MtimeS3Backend, conditional_only: bool) -> None:
    backend = s3
    if conditional_only:
        backend = ConditionalOnlyS3Backend(s3.bucket, s3.prefix + "raw", s3.client)
    wins = _race(backend, 8, ROUNDS)  # type: ignore[arg-type]
    assert all(wins[("claim", r)] == 1 and wins[("fence", r)] == 1 for r in range(ROUNDS)), wins


def test_s3_store_clock_and_exclusive_check(s3: MtimeS3Backend) -> None:
    a = coordinator(s3, "s3-a", wall_offset=-600.0)
    b = coordinator(s3, "s3-b", wall_offset=+600.0)
    a.start()
    b.start()
    assert abs(a.store_now() - b.store_now()) < 3.0  # LastModified has 1 s resolution
    claim = a.try_claim(ClusterKey.volume("s3.vol.0"), 1_800_000_000, 0)
    assert claim is not None
    assert b.try_claim(ClusterKey.volume("s3.vol.0"), 1_800_000_000, 0) is None

"""The same checks against real services in containers (MinIO, a LINSTOR controller), when a
Docker engine is available. This machine class has only the Docker client, so they skip here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli_json, files_equal, make_mixed_image, run_cli


def _docker_reason() -> str | None:
    try:
        import docker
    except ImportError:
        return "the docker Python package (testcontainers) is not installed"
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine to run containers
        return f"no Docker engine reachable ({type(exc).__name__}); testcontainers cannot start MinIO/LINSTOR"
    return None


REASON = _docker_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def test_minio_repository_roundtrip(tmp_path: Path) -> None:
    from testcontainers.minio import MinioContainer

    img = tmp_path / "v.img"
    make_mixed_image(img, 8)
    with MinioContainer() as minio:
        client = minio.get_client()
        client.make_bucket("drbdbackup")
        cfg = minio.get_config()
        env = {
            "AWS_ENDPOINT_URL": f"http://{cfg['endpoint']}",
            "AWS_ACCESS_KEY_ID": cfg["access_key"],
            "AWS_SECRET_ACCESS_KEY": cfg["secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        repo = "s3://drbdbackup/r"
        run_cli("init", "--repo", repo, env=env)
        cli_json("backup", "--repo", repo, "--file", str(img), "--volume-id", "v", env=env)
        out = tmp_path / "o"
        run_cli("restore", "--repo", repo, "--volume-id", "v", "--target", str(out), env=env)
        assert files_equal(out, img)


def test_real_linstor_controller_is_reachable() -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    from drbdbackup.linstor.client import Controller

    with DockerContainer("quay.io/piraeusdatastore/piraeus-server:latest").with_command(
        "startController"
    ).with_exposed_ports(3370) as ctr:
        wait_for_logs(ctr, "Controller initialized", timeout=120)
        uri = f"linstor://{ctr.get_container_host_ip()}:{ctr.get_exposed_port(3370)}"
        with Controller(uri) as ctl:
            assert ctl.controller_version().startswith("1.")

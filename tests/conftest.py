"""Shared fixtures: real servers on loopback and a temporary Dagster instance."""

from __future__ import annotations

import uuid

import pytest

from tests.servers import S3Server, seaweedfs


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch) -> S3Server:
    """Point boto3 at the test server through the standard environment variables."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_env.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    """Artifact storage on each backend: a local folder, then a prefix in the test S3 server."""
    from resources.storage import StorageResource

    if request.param == "local":
        return StorageResource(root=str(tmp_path / "data"))
    bucket = request.getfixturevalue("s3_bucket")
    return StorageResource(root=f"s3://{bucket}/prefix")


@pytest.fixture(scope="session")
def postgres_server():
    from tests.servers import postgres

    with postgres() as server:
        yield server


@pytest.fixture(autouse=True)
def isolated_ledger(tmp_path, monkeypatch):
    """Every test gets its own ledger database, never the repository's .data/."""
    monkeypatch.setenv("SKUVID_LEDGER_URL", f"sqlite:///{tmp_path}/ledger.sqlite")

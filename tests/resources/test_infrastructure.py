"""What counts as the machinery failing (retried) and what as the content failing (not retried)."""

import dagster as dg
import sqlalchemy as sa

from resources.infrastructure import describe_error, is_infrastructure_error
from resources.storage import StorageError, StorageUnavailable
from tests.servers import free_port


def test_a_database_that_does_not_answer_is_infrastructure_and_named():
    engine = sa.create_engine(f"postgresql+psycopg2://skuvid@127.0.0.1:{free_port()}/ledger",
                              connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            raise AssertionError("nothing listens on that port")
    except sa.exc.OperationalError as error:
        wrapped = RuntimeError("booking the charge failed")
        wrapped.__cause__ = error
        assert is_infrastructure_error(error) and is_infrastructure_error(wrapped)
        assert describe_error(error).startswith("ledger database unreachable: connection to server at \"127.0.0.1\"")


def test_content_failures_are_not_retried():
    assert is_infrastructure_error(StorageUnavailable("storage unreachable: the S3 store at ..."))
    assert is_infrastructure_error(ConnectionRefusedError())
    for error in (ValueError("unreadable packshot"), StorageError("s3://b/k: NoSuchKey"), dg.Failure("failed QA")):
        assert not is_infrastructure_error(error)
    assert describe_error(dg.Failure(description="clip: failed QA")) == "clip: failed QA"

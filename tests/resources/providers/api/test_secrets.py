# ruff: noqa: F811 - the fixtures imported from api_fixtures come back as test arguments
"""A provider that echoes the request's headers (keys, bearer tokens, Kling's JWT) in its 500 answers:
nothing written anywhere may carry them."""

import logging
import re

import pytest

from devkit.emulators import EchoHeaders
from resources.api_client.errors import ProviderError
from resources.providers.api.kling import KlingToken
from resources.redaction import scrub_secrets
from resources.storage import StorageResource
from tests.resources.providers.api.api_fixtures import case, make_request  # noqa: F401 - fixtures

JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{5,}")


def credential_values(case) -> list[str]:
    values = list(case.secrets)
    if case.name == "kling":
        values.append(KlingToken(case.emulator.access_key, case.emulator.secret_key, 1800).headers()
                      ["Authorization"].removeprefix("Bearer ")[:40])
    else:
        values += [f"Bearer {case.emulator.api_key}", f"Key {case.emulator.api_key}"]
    return values


def test_echoed_credentials_are_written_nowhere(case, caplog):
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("skuvid.tests.api").info
    errors = []
    # Mid-poll: retried and logged each time; on the create request: an ambiguous answer, kept as the reason.
    case.emulator.inject("status", EchoHeaders(500), EchoHeaders(503))
    result = case.provider().render_clip(make_request(), log)
    case.emulator.inject("submit", EchoHeaders(500))
    try:
        case.provider().render_clip(make_request(attempt=2), log)
    except ProviderError as error:
        errors.append(str(error))
    storage = StorageResource(root=str(case.storage_root))
    storage.write_json("skus/SKU-1/h/record.json", {"cost": result.cost.to_dict(), "errors": errors})

    assert "request_headers" in caplog.text  # the echoed bodies did reach the log, scrubbed
    written = [caplog.text.encode(), *(path.read_bytes() for path in case.storage_root.rglob("*") if path.is_file())]
    assert any(path.name.startswith("ledger.sqlite") for path in case.storage_root.rglob("*"))
    for blob in written:
        assert not JWT.search(blob)
        for value in credential_values(case):
            assert value.encode() not in blob


@pytest.mark.parametrize(
    "text",
    [
        'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJhayJ9.c2lnbmF0dXJl',
        '{"Authorization": "Key 1234abcd-5678:deadbeefcafe"}',
        "basic auth Basic dXNlcjpwYXNzd29yZA==",
        "cut off eyJhbGciOiJIUzI1NiIsInR5cCI6",
        "the raw s3cr3t-value alone",
    ],
)
def test_scrubbing_removes_every_kind_of_credential(text):
    scrubbed = scrub_secrets(text, ["s3cr3t-value"])
    for secret in ("eyJ", "1234abcd", "dXNlcjpw", "s3cr3t"):
        assert secret not in scrubbed
    assert "***" in scrubbed
